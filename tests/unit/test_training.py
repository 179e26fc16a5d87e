"""Training: pipelines per estimator family, ONNX conversion, the parity gate, metrics, profile, run folders."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from serverless_mlops.errors import MlopsError, ParityError
from serverless_mlops.model.data import load_dataset
from serverless_mlops.model.fit import TrainedModel, build_pipeline, check_parity, resolve_estimator, train
from serverless_mlops.model.profile import SAMPLE_ROWS, load_profile
from serverless_mlops.model.spec import ModelSpec
from tests.helpers.specs import EXAMPLE_NAMES, example_spec


def _with_estimator(spec: ModelSpec, cls: str, params: dict[str, object] | None = None) -> ModelSpec:
    return spec.model_copy(update={"estimator": spec.estimator.model_copy(update={"class_": cls, "params": params or {}})})


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_train_with_parity_and_task_metrics(trained_models: dict[str, TrainedModel], name: str) -> None:
    record = trained_models[name].record
    assert record.parity.passed
    assert record.parity.max_abs_diff <= record.parity.tolerance
    assert record.parity.rows == record.holdout_rows > 0
    expected = {"rmse", "mae", "r2"} if record.task == "regression" else {"accuracy", "f1", "roc_auc"}
    assert set(record.metrics) == expected
    floor = example_spec(name).evaluation.floor
    metric = example_spec(name).evaluation.metric
    assert floor is not None
    assert record.metrics[metric.value] >= floor if metric.higher_is_better else record.metrics[metric.value] <= floor
    assert len(record.data_sha256) == 64
    assert record.train_rows + record.holdout_rows == len(load_dataset(example_spec(name)).frame)


def test_onnx_graph_has_one_input_per_feature_and_plain_tensor_outputs(trained_models: dict[str, TrainedModel]) -> None:
    wine = trained_models["wine"]
    graph = onnx.load_from_string(wine.onnx_bytes).graph
    assert [n.op_type for n in graph.node if n.op_type == "ZipMap"] == []
    session = ort.InferenceSession(wine.onnx_bytes, providers=["CPUExecutionProvider"])
    assert [o.type for o in session.get_outputs()] == ["tensor(int64)", "tensor(float)"]
    signature = wine.record.signature
    assert [i.name for i in session.get_inputs()] == [f.input_name for f in signature.features]
    # skl2onnx sanitizes names; the signature keeps the mapping.
    mapping = {f.name: f.input_name for f in signature.features}
    assert mapping["od280/od315_of_diluted_wines"] == "od280_od315_of_diluted_wines"
    assert trained_models["breast-cancer"].record.signature.features[0].input_name == "mean_radius"


def test_categorical_feature_is_a_string_input_with_learnt_categories(trained_models: dict[str, TrainedModel]) -> None:
    diabetes = trained_models["diabetes"]
    sex = next(f for f in diabetes.record.signature.features if f.name == "sex")
    assert sex.kind == "categorical"
    assert sex.categories == ["a", "b"]
    session = ort.InferenceSession(diabetes.onnx_bytes, providers=["CPUExecutionProvider"])
    assert {i.name: i.type for i in session.get_inputs()}["sex"] == "tensor(string)"
    age = next(f for f in diabetes.record.signature.features if f.name == "age")
    assert age.range == (0.0, 120.0)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_onnx_reproduces_an_independent_sklearn_refit_on_every_holdout_row(trained_models: dict[str, TrainedModel], name: str) -> None:
    """The parity promise (docs/specs-and-training.md, 'Training and packaging'), checked without the product's own
    report or helpers: refit scikit-learn here as training does (same split, seed, estimator and preprocessing, rebuilt
    from the spec), then run the packaged ONNX model on the same holdout rows: identical labels and probabilities
    within 1e-4 (regression values within 1e-4, relative above 1), on every row."""
    import importlib

    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    spec = example_spec(name)
    trained = trained_models[name]
    frame = load_dataset(spec).frame
    y = frame[spec.target].to_numpy()
    # training's split: stratified for classification (every example class has >= 2 rows), the spec's seed
    assert not spec.task.is_classification or np.unique(y, return_counts=True)[1].min() >= 2
    train_rows, holdout = train_test_split(
        frame, test_size=spec.split.test_size, random_state=spec.split.seed, stratify=y if spec.task.is_classification else None
    )
    assert (len(train_rows), len(holdout)) == (trained.record.train_rows, trained.record.holdout_rows)
    # training's estimator: the spec's class and params, random_state = the seed unless the spec sets it
    estimator = getattr(importlib.import_module(spec.estimator.module), spec.estimator.class_name)(**spec.estimator.params)
    if "random_state" in estimator.get_params(deep=False) and "random_state" not in spec.estimator.params:
        estimator.set_params(random_state=spec.split.seed)
    numeric: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
    if not spec.estimator.class_.startswith(("sklearn.ensemble.", "sklearn.tree.")):
        numeric.append(("scale", StandardScaler()))
    columns: list[tuple[str, object, list[str]]] = [("numeric", Pipeline(numeric), spec.numeric_features)]
    if spec.categorical_features:
        declared = [list(spec.feature(c).categories or []) for c in spec.categorical_features]
        encoder = OneHotEncoder(categories=declared, handle_unknown="ignore", sparse_output=False)
        columns.append(("categorical", encoder, spec.categorical_features))
    features = spec.numeric_features + spec.categorical_features
    pipeline = Pipeline([("preprocess", ColumnTransformer(columns)), ("estimator", estimator)])
    pipeline.fit(train_rows[features], train_rows[spec.target].to_numpy())

    # the served model receives float32; scikit-learn gets the same values widened back to float64
    as_served = holdout[features].copy()
    for column in spec.numeric_features:
        as_served[column] = as_served[column].to_numpy(np.float32).astype(np.float64)
    session = ort.InferenceSession(trained.onnx_bytes, providers=["CPUExecutionProvider"])
    kinds = {i.name: i.type for i in session.get_inputs()}
    feeds = {
        f.input_name: (
            holdout[f.name].to_numpy(np.float32) if kinds[f.input_name] == "tensor(float)" else holdout[f.name].to_numpy(str).astype(object)
        ).reshape(-1, 1)
        for f in trained.record.signature.features
    }
    outputs = session.run(None, feeds)
    rows = len(holdout)
    assert rows == trained.record.holdout_rows > 0
    if spec.task.is_classification:
        labels, probabilities = outputs[0].ravel(), outputs[1].astype(np.float64)
        expected_probabilities = pipeline.predict_proba(as_served)
        assert probabilities.shape == expected_probabilities.shape == (rows, len(pipeline.classes_))
        assert labels.tolist() == pipeline.predict(as_served).tolist()
        assert np.abs(probabilities - expected_probabilities).max() <= 1e-4
    else:
        values, expected = outputs[0].ravel().astype(np.float64), pipeline.predict(as_served).astype(np.float64)
        assert values.shape == expected.shape == (rows,)
        assert (np.abs(values - expected) <= 1e-4 * np.maximum(1.0, np.abs(expected))).all()


def test_scale_free_estimators_get_no_scaler_and_linear_ones_do() -> None:
    wine = example_spec("wine")
    forest = build_pipeline(wine, resolve_estimator(wine))
    numeric = forest.named_steps["preprocess"].transformers[0][1]
    assert [name for name, _ in numeric.steps] == ["impute"]
    linear = _with_estimator(wine, "sklearn.linear_model.LogisticRegression", {"max_iter": 2000})
    numeric = build_pipeline(linear, resolve_estimator(linear)).named_steps["preprocess"].transformers[0][1]
    assert [name for name, _ in numeric.steps] == ["impute", "scale"]


def test_parity_failure_is_refused_with_the_rows_that_differ() -> None:
    """A scaler in front of a forest is the known trap: float32 scaled values land across split thresholds."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from serverless_mlops.model.fit import _signature, _to_onnx, open_session

    spec = example_spec("wine")
    frame = load_dataset(spec).frame
    pipeline = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numeric", StandardScaler(), spec.numeric_features)])),
            ("estimator", RandomForestClassifier(n_estimators=100, random_state=0)),
        ]
    ).fit(frame[spec.numeric_features], frame[spec.target])
    onnx_bytes = _to_onnx(spec, pipeline)
    session = open_session(onnx_bytes)
    signature = _signature(spec, pipeline, session)
    holdout = frame.iloc[::2]  # every other data row: the message must name rows of the data file, not of the holdout
    with pytest.raises(ParityError, match=r"wine: ONNX does not match scikit-learn on \d+ of 89 holdout rows \(data rows \d+") as caught:
        check_parity(spec, pipeline, signature, session, holdout)
    rows = [int(r) for r in str(caught.value).split("data rows ")[1].split(";")[0].replace(" …", "").split(", ")]
    assert all(r % 2 == 1 for r in rows)  # 1-based numbers of rows 0, 2, 4, … of the file
    assert "not packaged" in str(caught.value)


def test_parity_report_is_honest_for_a_matching_model(trained_models: dict[str, TrainedModel]) -> None:
    record = trained_models["diabetes"].record
    # regression values are compared with a tolerance relative to their size (float32 carries ~7 digits)
    assert 0 < record.parity.max_abs_diff < 1e-3
    assert record.parity.labels_identical is None
    assert trained_models["wine"].record.parity.labels_identical is True


@pytest.mark.parametrize(
    ("model", "estimator", "params"),
    [
        ("wine", "sklearn.ensemble.GradientBoostingClassifier", {"n_estimators": 20}),
        ("wine", "sklearn.tree.DecisionTreeClassifier", {}),
        ("wine", "sklearn.ensemble.ExtraTreesClassifier", {"n_estimators": 20}),
        ("wine", "sklearn.neighbors.KNeighborsClassifier", {}),
        ("wine", "sklearn.svm.SVC", {"probability": True}),
        ("wine", "sklearn.neural_network.MLPClassifier", {"max_iter": 500}),
        ("breast-cancer", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20}),
        ("diabetes", "sklearn.ensemble.RandomForestRegressor", {"n_estimators": 20}),
        ("diabetes", "sklearn.ensemble.GradientBoostingRegressor", {"n_estimators": 20}),
        ("diabetes", "sklearn.linear_model.LinearRegression", {}),
        ("diabetes", "sklearn.linear_model.Lasso", {"alpha": 0.1}),
        ("diabetes", "sklearn.tree.DecisionTreeRegressor", {}),
    ],
)
def test_supported_estimators_convert_with_parity(model: str, estimator: str, params: dict[str, object]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = train(_with_estimator(example_spec(model), estimator, params))
    assert trained.record.parity.passed
    assert trained.record.estimator == estimator


@pytest.mark.parametrize(
    ("model", "estimator"), [("wine", "sklearn.semi_supervised.LabelPropagation"), ("diabetes", "sklearn.kernel_ridge.KernelRidge")]
)
def test_unconvertible_estimator_fails_with_a_one_line_reason(model: str, estimator: str) -> None:
    """skl2onnx has no converter for these; the error names the estimator and what to do, and packages nothing."""
    name = estimator.rsplit(".", 1)[1]
    with pytest.raises(
        MlopsError, match=rf"cannot convert {name} to ONNX with skl2onnx .*nothing was packaged: choose an estimator"
    ) as caught:
        train(_with_estimator(example_spec(model), estimator))
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 400


def test_profile_describes_features_predictions_and_keeps_a_reference_sample(trained_models: dict[str, TrainedModel]) -> None:
    profile = load_profile(trained_models["diabetes"].profile_bytes)
    spec = example_spec("diabetes")
    assert set(profile["features"]) == {f.name for f in spec.features}
    bmi = profile["features"]["bmi"]
    assert bmi["kind"] == "numeric"
    assert bmi["quantile_edges"] == sorted(bmi["quantile_edges"])
    assert len(bmi["quantile_edges"]) == 11
    assert sum(bmi["histogram"]["counts"]) == profile["rows"] == trained_models["diabetes"].record.train_rows
    assert bmi["missing_share"] == 0.0
    assert bmi["min"] <= bmi["mean"] <= bmi["max"]
    sex = profile["features"]["sex"]
    assert sex["kind"] == "categorical"
    assert set(sex["frequencies"]) == {"a", "b"}
    assert sum(sex["frequencies"].values()) == pytest.approx(1.0)
    assert profile["prediction"]["kind"] == "numeric"
    sample = profile["sample"]
    assert sample["rows"] == min(profile["rows"], SAMPLE_ROWS)
    assert all(len(values) == sample["rows"] for values in sample["features"].values())
    assert len(sample["prediction"]) == sample["rows"]


def test_classifier_profile_has_a_label_distribution(trained_models: dict[str, TrainedModel]) -> None:
    profile = load_profile(trained_models["wine"].profile_bytes)
    assert profile["prediction"]["kind"] == "categorical"
    assert set(profile["prediction"]["frequencies"]) == {"0", "1", "2"}


def test_run_folder_round_trips(tmp_path: Path, trained_models: dict[str, TrainedModel]) -> None:
    original = trained_models["wine"]
    folder = original.write(tmp_path / "wine")
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "profile.json.gz", "run.json"]
    again = TrainedModel.read(folder)
    assert again.record == original.record
    assert again.onnx_bytes == original.onnx_bytes


def test_reading_a_folder_that_is_not_a_run_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MlopsError, match=r"not a training run folder \(missing run.json\)"):
        TrainedModel.read(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "profile.json.gz").write_bytes(b"")
    with pytest.raises(MlopsError, match=r"run.json: unreadable run record"):
        TrainedModel.read(tmp_path)


def test_training_is_reproducible_with_the_spec_seed() -> None:
    spec = example_spec("wine")
    first, second = train(spec), train(spec)
    assert first.record.metrics == second.record.metrics
    assert first.onnx_bytes == second.onnx_bytes
    assert first.record.run_id != second.record.run_id


def test_lineage_records_code_version_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MLOPS_CODE_VERSION", "abc1234")
    monkeypatch.setenv("MLOPS_USER", "alice")
    record = train(example_spec("diabetes")).record
    assert record.code_version == "abc1234"
    assert record.trained_by == "alice"
    assert record.spec["name"] == "diabetes"
    assert record.spec["estimator"]["class"] == "sklearn.linear_model.Ridge"
