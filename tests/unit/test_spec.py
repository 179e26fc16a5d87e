"""Model specs: every kind of bad spec is one SpecError naming the file, the field and what was expected.

Also the estimator checks that need scikit-learn (``resolve_estimator``), the example specs, and how a spec's relative
data path is resolved.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from serverless_mlops.errors import MlopsError, SpecError
from serverless_mlops.model.fit import resolve_estimator
from serverless_mlops.model.spec import FeatureKind, Metric, ModelSpec, Task, load_spec, parse_spec
from tests.helpers.specs import EXAMPLE_NAMES, MODELS

VALID: dict[str, Any] = {
    "name": "toy-model",
    "description": "a small regression for tests",
    "task": "regression",
    "target": "y",
    "features": [
        {"name": "age", "type": "numeric", "range": [0, 120]},
        {"name": "sex", "type": "categorical", "categories": ["a", "b"]},
        {"name": "bmi"},
    ],
    "estimator": {"class": "sklearn.linear_model.Ridge", "params": {"alpha": 1.0}},
    "data": {"uri": "data/toy.csv"},
    "evaluation": {"metric": "rmse"},
}


def valid_document() -> dict[str, Any]:
    return copy.deepcopy(VALID)


def write_spec(folder: Path, document: Any, name: str = "toy.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def spec_error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


# --- a valid spec ------------------------------------------------------------------------------------------------


def test_valid_spec_loads_with_its_values_and_defaults(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, valid_document()))

    assert spec.name == "toy-model"
    assert spec.task is Task.REGRESSION
    assert spec.evaluation.metric is Metric.RMSE
    assert [f.name for f in spec.features] == ["age", "sex", "bmi"]
    assert spec.numeric_features == ["age", "bmi"]
    assert spec.categorical_features == ["sex"]
    assert spec.feature("bmi").type is FeatureKind.NUMERIC  # the default kind
    assert spec.feature("age").range == (0.0, 120.0)
    assert spec.feature("sex").categories == ["a", "b"]
    assert spec.estimator.class_ == "sklearn.linear_model.Ridge"
    assert spec.estimator.params == {"alpha": 1.0}
    assert 0.0 < spec.split.test_size < 1.0
    assert spec.drift.schedule == "rate(1 day)"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_specs_load_and_point_at_existing_data(name: str) -> None:
    spec = load_spec(MODELS / f"{name}.yaml")

    assert spec.name == name
    data = Path(spec.data.uri)
    assert data.is_absolute()
    assert data.is_file()
    assert data.parent == (MODELS / "data").resolve()
    assert spec.evaluation.metric.for_classification == spec.task.is_classification


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_specs_estimators_resolve(name: str) -> None:
    spec = load_spec(MODELS / f"{name}.yaml")

    estimator = resolve_estimator(spec)

    assert type(estimator).__name__ == spec.estimator.class_name
    params = estimator.get_params(deep=False)
    for key, value in spec.estimator.params.items():
        assert params[key] == value


# --- data paths --------------------------------------------------------------------------------------------------


def test_relative_data_path_resolves_against_the_spec_folder_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(tmp_path / "project" / "specs", valid_document())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    spec = load_spec(Path("..") / "project" / "specs" / "toy.yaml")

    assert spec.data.uri == str((tmp_path / "project" / "specs" / "data" / "toy.csv").resolve())


def test_parent_relative_data_path_is_normalised(tmp_path: Path) -> None:
    document = valid_document()
    document["data"]["uri"] = "../shared/toy.csv"

    spec = load_spec(write_spec(tmp_path / "specs", document))

    assert spec.data.uri == str((tmp_path / "shared" / "toy.csv").resolve())


@pytest.mark.parametrize("uri", ["s3://bucket/training/toy.csv", "/srv/data/toy.csv"])
def test_absolute_and_s3_data_paths_are_kept_as_written(tmp_path: Path, uri: str) -> None:
    document = valid_document()
    document["data"]["uri"] = uri

    assert load_spec(write_spec(tmp_path, document)).data.uri == uri


def test_parse_spec_without_base_dir_leaves_the_path_alone() -> None:
    assert parse_spec(valid_document()).data.uri == "data/toy.csv"


@pytest.mark.parametrize(
    ("uri", "declared", "expected"),
    [
        ("data/toy.csv", None, "csv"),
        ("data/toy.parquet", None, "parquet"),
        ("s3://bucket/toy.PQ", None, "parquet"),
        ("data/toy.bin", "parquet", "parquet"),
        ("data/toy.parquet", "csv", "csv"),
    ],
)
def test_data_format_is_inferred_from_the_suffix_unless_declared(uri: str, declared: str | None, expected: str) -> None:
    document = valid_document()
    document["data"] = {"uri": uri} | ({"format": declared} if declared else {})

    assert parse_spec(document).data.resolved_format == expected


# --- each kind of bad spec ---------------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(*path: str, value: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _feature(index: int, **changes: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        document["features"][index].update(changes)

    return mutate


def _drop(key: str) -> Mutation:
    return lambda document: document.pop(key)


def _add_feature(**feature: Any) -> Mutation:
    return lambda document: document["features"].append(feature)


BAD_SPECS: list[Any] = [
    # (mutation, field as named in the message, what was expected)
    pytest.param(_drop("task"), "task", "required field is missing", id="missing-required-field"),
    pytest.param(_drop("evaluation"), "evaluation", "required field is missing", id="missing-required-section"),
    pytest.param(_set("colour", value="red"), "colour", "unknown field", id="unknown-top-level-field"),
    pytest.param(_set("estimator", "parameters", value={}), "estimator.parameters", "unknown field", id="unknown-nested-field"),
    pytest.param(_set("features", value="age"), "features", "valid list", id="wrong-type-list"),
    pytest.param(_set("estimator", "params", value=[1, 2]), "estimator.params", "valid dictionary", id="wrong-type-mapping"),
    pytest.param(_set("split", value={"test_size": "a lot"}), "split.test_size", "valid number", id="wrong-type-number"),
    pytest.param(_set("features", value=[]), "features", "at least 1 item", id="no-features"),
    pytest.param(_set("name", value="Toy_Model"), "name", "lower-case letters, digits and '-'", id="bad-model-name-case"),
    pytest.param(_set("name", value="1model"), "name", "starting with a letter", id="bad-model-name-leading-digit"),
    pytest.param(_set("name", value="m" * 64), "name", "at most 63 characters", id="bad-model-name-too-long"),
    pytest.param(_set("task", value="clustering"), "task", "'regression'", id="bad-task"),
    pytest.param(_set("evaluation", "metric", value="precision"), "evaluation.metric", "'rmse'", id="unknown-metric"),
    pytest.param(
        _set("evaluation", "metric", value="accuracy"),
        "evaluation.metric: 'accuracy'",
        "task 'regression'; expected one of rmse, mae, r2",
        id="metric-not-for-task",
    ),
    pytest.param(_add_feature(name="age"), "feature names", "unique; repeated: age", id="duplicate-feature"),
    pytest.param(_set("target", value="bmi"), "target: 'bmi'", "also listed as a feature", id="target-is-feature"),
    pytest.param(_feature(1, range=[0, 1]), "features[1] (sex)", "'range' applies only to numeric", id="range-on-categorical"),
    pytest.param(_feature(0, categories=["x"]), "features[0] (age)", "only to categorical", id="categories-on-numeric"),
    pytest.param(_feature(2, allow_unknown=True), "features[2] (bmi)", "only to categorical", id="allow-unknown-on-numeric"),
    pytest.param(_feature(0, range=[5, 5]), "features[0] (age)", "min < max", id="range-min-equals-max"),
    pytest.param(_feature(0, range=[10, 1]), "features[0] (age)", "min < max", id="range-min-above-max"),
    pytest.param(_feature(0, range=[1, float("inf")]), "features[0] (age)", "finite", id="range-infinite"),
    pytest.param(_feature(0, range=[1, 2, 3]), "features[0] (age).range", "at most 2 items", id="range-three-numbers"),
    pytest.param(_feature(1, categories=[]), "features[1] (sex)", "must not be empty", id="empty-categories"),
    pytest.param(_feature(1, categories=["a", "a"]), "features[1] (sex)", "unique", id="repeated-categories"),
    pytest.param(_feature(0, type="text"), "features[0] (age).type", "'categorical'", id="bad-feature-type"),
    pytest.param(
        _set("estimator", "class", value="catboost.CatBoostRegressor"), "estimator.class", "sklearn.module.Class", id="not-sklearn"
    ),
    pytest.param(
        _set("estimator", "class", value="xgboost.XGBRanker"),
        "estimator.class",
        "expected one of lightgbm.LGBMClassifier",
        id="xgboost-ranker",
    ),
    pytest.param(
        _set("estimator", "class", value="sklearn.linear_model.ridge"), "estimator.class", "sklearn.module.Class", id="lowercase-class"
    ),
    pytest.param(_set("estimator", "class", value="Ridge"), "estimator.class", "sklearn.module.Class", id="bare-class-name"),
    pytest.param(_set("drift", value={"schedule": "every day"}), "drift.schedule", "rate(1 day)", id="bad-drift-schedule"),
    pytest.param(_set("drift", value={"schedule": "rate(1 week)"}), "drift.schedule", "EventBridge", id="drift-schedule-bad-unit"),
    pytest.param(_set("drift", value={"schedule": "cron()"}), "drift.schedule", "EventBridge", id="drift-schedule-empty-cron"),
    pytest.param(_set("split", value={"test_size": 0}), "split.test_size", "greater than 0", id="test-size-zero"),
    pytest.param(_set("split", value={"test_size": -0.2}), "split.test_size", "greater than 0", id="test-size-negative"),
    pytest.param(_set("split", value={"test_size": 1}), "split.test_size", "less than 1", id="test-size-one"),
    pytest.param(_set("split", value={"test_size": 1.5}), "split.test_size", "less than 1", id="test-size-above-one"),
    pytest.param(_set("search", value={"params": {}}), "search.params", "at least 1 item", id="search-no-params"),
    pytest.param(_set("search", value={"params": {"alpha": []}}), "search.params.alpha", "at least 1 item", id="search-empty-list"),
    pytest.param(_set("search", value={"params": {"alpha": {"low": 2, "high": 1}}}), "search.params.alpha", "low < high", id="search-lo"),
    pytest.param(
        _set("search", value={"params": {"alpha": {"low": 0, "high": 1, "log": True}}}), "search.params.alpha", "low > 0", id="search-log"
    ),
    pytest.param(_set("search", value={"params": {"alpha": [1]}, "cv": 1}), "search.cv", "greater than or equal to 2", id="search-cv"),
    pytest.param(
        _set("search", value={"params": {"alpha": [1]}, "n_iter": 0}), "search.n_iter", "greater than or equal to 1", id="search-n-iter"
    ),
]


@pytest.mark.parametrize(("mutate", "field", "expected"), BAD_SPECS)
def test_bad_spec_error_names_file_field_and_expectation(tmp_path: Path, mutate: Mutation, field: str, expected: str) -> None:
    document = valid_document()
    mutate(document)
    path = write_spec(tmp_path, document)

    message = spec_error(path)

    assert message.startswith(f"{path}: invalid model spec: ")
    assert field in message
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(("mutate", "field", "expected"), BAD_SPECS)
def test_parse_spec_names_its_source(mutate: Mutation, field: str, expected: str) -> None:
    document = valid_document()
    mutate(document)

    with pytest.raises(SpecError) as info:
        parse_spec(document, source="inline spec")

    assert str(info.value).startswith("inline spec: invalid model spec: ")
    assert field in str(info.value)
    assert expected in str(info.value)


def test_every_problem_is_reported_in_one_error(tmp_path: Path) -> None:
    document = valid_document()
    del document["target"]
    document["name"] = "Bad Name"
    document["split"] = {"test_size": 2}

    message = spec_error(write_spec(tmp_path, document))

    assert "target: required field is missing" in message
    assert "name: " in message
    assert "split.test_size: " in message
    assert message.count("; ") >= 2


def test_spec_error_is_an_mlops_error(tmp_path: Path) -> None:
    with pytest.raises(MlopsError):
        load_spec(tmp_path / "absent.yaml")


@pytest.mark.parametrize("schedule", ["rate(5 minutes)", "rate(1 hour)", "rate(2 days)", "cron(0 6 * * ? *)", "  rate(1 day)  "])
def test_good_drift_schedules_are_accepted(schedule: str) -> None:
    document = valid_document()
    document["drift"] = {"schedule": schedule}

    assert parse_spec(document).drift.schedule == schedule.strip()


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("rate(0 days)", "at least 1"),
        ("rate(1 days)", "1 day"),
        ("rate(5 day)", "5 days"),
        ("cron(0 6 * * *)", "6 fields"),
        ("cron(0 6 * * * *)", "'?'"),
    ],
    ids=["rate-zero", "plural-for-one", "singular-for-many", "five-cron-fields", "cron-without-question-mark"],
)
@pytest.mark.parametrize("section", ["drift", "retraining"])
def test_schedules_eventbridge_rejects_are_refused(section: str, schedule: str, expected: str) -> None:
    document = valid_document()
    document[section] = {"schedule": schedule}

    with pytest.raises(SpecError) as info:
        parse_spec(document, source="toy.yaml")

    message = str(info.value)
    assert message.startswith(f"toy.yaml: invalid model spec: {section}.schedule: expected an EventBridge expression")
    assert expected in message


def test_bad_retraining_schedule_is_refused() -> None:
    document = valid_document()
    document["retraining"] = {"schedule": "every day"}

    with pytest.raises(SpecError, match=r"retraining\.schedule: expected an EventBridge expression"):
        parse_spec(document)


def test_retraining_schedule_is_optional_and_checked_when_given() -> None:
    assert parse_spec(valid_document()).retraining.schedule is None
    document = valid_document()
    document["retraining"] = {"schedule": "cron(0 6 ? * MON *)"}
    assert parse_spec(document).retraining.schedule == "cron(0 6 ? * MON *)"


# --- documents that are not specs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- name: toy\n- task: regression\n", "list"), ("just a sentence\n", "str"), ("42\n", "int")],
    ids=["list", "scalar-string", "scalar-number"],
)
def test_document_that_is_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(text, encoding="utf-8")

    message = spec_error(path)

    assert message.startswith(str(path))
    assert "expected a mapping at the top level" in message
    assert message.endswith(f"got {kind}")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_spec_says_so(tmp_path: Path, text: str) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(text, encoding="utf-8")

    assert spec_error(path) == f"{path}: the spec is empty; expected a model spec (a YAML mapping with name, task, features, …)"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("name: toy\ntask: regression\nfeatures: [a, b\n", 4, 1),
        ("name: toy\n  task: regression\n", 2, 7),
        ("name: toy\ntarget: y\n\ttask: regression\n", 3, 1),
    ],
    ids=["unclosed-flow-list", "bad-indentation", "tab-indentation"],
)
def test_invalid_yaml_names_line_and_column(tmp_path: Path, text: str, line: int, column: int) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(text, encoding="utf-8")

    message = spec_error(path)

    assert message.startswith(f"{path}: not valid YAML at line {line}, column {column}: ")
    assert "\n" not in message


def test_missing_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "toy.yaml"

    assert spec_error(path) == f"{path}: spec file not found"


def test_spec_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_bytes(b"name: \xff\xfe toy\n")

    message = spec_error(path)

    assert message.startswith(f"{path}: cannot read spec file")


# --- estimators (need scikit-learn) ------------------------------------------------------------------------------


def _estimator_spec(task: str, metric: str, cls: str, params: dict[str, Any] | None = None) -> ModelSpec:
    document = valid_document()
    document["task"] = task
    document["evaluation"] = {"metric": metric}
    document["estimator"] = {"class": cls, "params": params or {}}
    return parse_spec(document)


@pytest.mark.parametrize(
    ("task", "metric", "cls", "params", "field", "expected"),
    [
        pytest.param(
            "regression", "rmse", "sklearn.linear_model.NoSuchRegressor", {}, "estimator.class", "not an importable", id="no-such-class"
        ),
        pytest.param("regression", "rmse", "sklearn.nosuchmodule.Thing", {}, "estimator.class", "not an importable", id="no-such-module"),
        pytest.param(
            "binary_classification",
            "roc_auc",
            "sklearn.linear_model.Ridge",
            {},
            "estimator.class",
            "not a classifier",
            id="regressor-for-binary",
        ),
        pytest.param(
            "multiclass_classification",
            "f1",
            "sklearn.ensemble.RandomForestRegressor",
            {},
            "estimator.class",
            "not a classifier",
            id="regressor-for-multiclass",
        ),
        pytest.param(
            "regression",
            "mae",
            "sklearn.linear_model.LogisticRegression",
            {},
            "estimator.class",
            "not a regressor",
            id="classifier-for-regression",
        ),
        pytest.param(
            "regression",
            "r2",
            "sklearn.preprocessing.StandardScaler",
            {},
            "estimator.class",
            "not a regressor",
            id="transformer-not-estimator",
        ),
        pytest.param("regression", "rmse", "sklearn.pipeline.Pipeline", {}, "estimator.class", "without arguments", id="needs-arguments"),
        pytest.param("regression", "rmse", "sklearn.linear_model.Ridge", {"alhpa": 1.0}, "estimator.params", "alhpa", id="unknown-param"),
        pytest.param(
            "regression", "rmse", "sklearn.linear_model.Ridge", {"alpha": -1.0}, "estimator.params", "'alpha'", id="param-out-of-range"
        ),
        pytest.param(
            "regression", "rmse", "sklearn.linear_model.Ridge", {"alpha": "1.0"}, "estimator.params", "'alpha'", id="param-wrong-type"
        ),
        pytest.param(
            "binary_classification",
            "f1",
            "sklearn.linear_model.LogisticRegression",
            {"penalty": "l7"},
            "estimator.params",
            "'penalty'",
            id="param-bad-choice",
        ),
    ],
)
def test_resolve_estimator_errors_name_the_field(
    task: str, metric: str, cls: str, params: dict[str, Any], field: str, expected: str
) -> None:
    spec = _estimator_spec(task, metric, cls, params)

    with pytest.raises(SpecError) as info:
        resolve_estimator(spec, "models/toy.yaml")

    message = str(info.value)
    assert message.startswith(f"models/toy.yaml: {field}: ")
    assert expected in message
    assert "\n" not in message


def test_resolve_estimator_lists_every_unknown_param() -> None:
    spec = _estimator_spec("regression", "rmse", "sklearn.linear_model.Ridge", {"zeta": 1, "bogus": 2, "alpha": 0.5})

    with pytest.raises(SpecError, match=r"estimator\.params: unknown parameter\(s\) bogus, zeta for Ridge"):
        resolve_estimator(spec)


def test_resolve_estimator_applies_params_and_seeds_random_state() -> None:
    spec = _estimator_spec("multiclass_classification", "f1", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 7})

    params = resolve_estimator(spec).get_params(deep=False)

    assert params["n_estimators"] == 7
    assert params["random_state"] == spec.split.seed


def test_resolve_estimator_keeps_an_explicit_random_state() -> None:
    spec = _estimator_spec("regression", "rmse", "sklearn.tree.DecisionTreeRegressor", {"random_state": 7})

    assert resolve_estimator(spec).get_params(deep=False)["random_state"] == 7
