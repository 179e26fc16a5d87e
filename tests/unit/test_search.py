"""A spec's hyperparameter search: RandomizedSearchCV inside Train, scored by the spec's metric, the chosen params and
every candidate's cv scores in the run record and the lineage, and refused up front when it would outlast Train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serverless_mlops.errors import MlopsError, SpecError
from serverless_mlops.model.fit import build_pipeline, resolve_estimator, train
from serverless_mlops.model.search import TRAIN_TIMEOUT_ENV, candidates, distributions, scoring, search
from serverless_mlops.model.spec import Metric, ModelSpec, Search
from serverless_mlops.store.lifecycle import lineage_of
from tests.helpers.families import family_spec
from tests.helpers.specs import example_spec


def _searching(spec: ModelSpec, estimator: str, params: dict[str, Any], searched: dict[str, Any]) -> ModelSpec:
    return spec.model_copy(
        update={
            "estimator": spec.estimator.model_copy(update={"class_": estimator, "params": params}),
            "search": Search.model_validate(searched),
        }
    )


def test_a_search_picks_params_records_cv_scores_and_packages_the_best() -> None:
    spec = _searching(
        example_spec("breast-cancer"),
        "sklearn.linear_model.LogisticRegression",
        {"max_iter": 2000},
        {"params": {"C": {"low": 0.01, "high": 10.0, "log": True}, "fit_intercept": [True, False]}, "n_iter": 4, "cv": 3},
    )
    record = train(spec).record
    assert record.parity.passed
    result = record.search
    assert result is not None
    assert (result.scoring, result.cv, len(result.candidates)) == ("roc_auc", 3, 4)
    assert 0.01 <= result.best_params["C"] <= 10.0
    assert result.best_score == max(c.mean_score for c in result.candidates)
    assert {c.params["C"] for c in result.candidates} >= {result.best_params["C"]}
    # the lineage names the params the packaged model was trained with: the spec's, overridden by the search's
    assert record.params == {"max_iter": 2000, **result.best_params}
    lineage = lineage_of(record)
    assert lineage.params == record.params
    assert lineage.search is not None
    assert lineage.search["best_params"] == result.best_params


@pytest.mark.parametrize(
    ("task", "metric", "expected"),
    [
        ("binary_classification", "f1", "f1"),
        ("multiclass_classification", "f1", "f1_macro"),
        ("multiclass_classification", "roc_auc", "roc_auc_ovr"),
        ("multiclass_classification", "accuracy", "accuracy"),
        ("regression", "rmse", "neg_root_mean_squared_error"),
        ("regression", "mae", "neg_mean_absolute_error"),
        ("regression", "r2", "r2"),
    ],
)
def test_the_search_scores_by_the_specs_metric(tmp_path: Path, task: str, metric: str, expected: str) -> None:
    estimator = "sklearn.tree.DecisionTreeRegressor" if task == "regression" else "sklearn.tree.DecisionTreeClassifier"
    spec = family_spec(tmp_path, task, estimator, {}, search={"params": {"max_depth": {"low": 2, "high": 6}}, "n_iter": 2, "cv": 2})
    spec = spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"metric": Metric(metric)})})
    record = train(spec).record
    assert record.search is not None
    assert record.search.scoring == expected
    assert 2 <= record.search.best_params["max_depth"] <= 6
    if expected.startswith("neg_"):
        assert record.search.best_score < 0  # errors are negated: the search maximizes


def test_binary_f1_scores_the_last_class_as_positive() -> None:
    spec = example_spec("breast-cancer")
    scorer, name = scoring(
        spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"metric": Metric.F1})}), np.array(["b", "a"])
    )
    assert name == "f1"
    assert scorer._kwargs == {"pos_label": "b"}


def test_a_search_that_would_outlast_the_train_step_is_refused_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _searching(
        example_spec("wine"), "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20}, {"params": {"max_depth": [2, 4, 8]}, "cv": 5}
    )
    monkeypatch.setenv(TRAIN_TIMEOUT_ENV, "0.001")
    with pytest.raises(MlopsError) as caught:
        train(spec)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("wine: search: 3 candidates × 5 folds + the refit is 16 fits of about ")
    assert "more than the Train step's 0 s; lower search.n_iter or search.cv" in message
    assert "'Swapping the Train step'" in message


def test_the_search_budget_defaults_to_lambdas_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    from serverless_mlops.model.search import train_timeout_seconds

    monkeypatch.delenv(TRAIN_TIMEOUT_ENV, raising=False)
    assert train_timeout_seconds() == 900
    monkeypatch.setenv(TRAIN_TIMEOUT_ENV, "120")
    assert train_timeout_seconds() == 120


def test_a_searched_parameter_the_estimator_lacks_names_the_field() -> None:
    spec = _searching(example_spec("diabetes"), "sklearn.linear_model.Ridge", {}, {"params": {"depth": [1, 2]}})
    with pytest.raises(SpecError, match=r"^models/diabetes.yaml: search.params: unknown parameter\(s\) depth for Ridge$"):
        resolve_estimator(spec, "models/diabetes.yaml")


def test_a_failing_candidate_fails_the_search_with_one_line() -> None:
    spec = _searching(example_spec("diabetes"), "sklearn.linear_model.Ridge", {}, {"params": {"solver": ["auto", "lbfgs"]}, "n_iter": 2})
    pipeline = build_pipeline(spec, resolve_estimator(spec))
    from serverless_mlops.model.data import load_dataset

    frame = load_dataset(spec).frame
    features = spec.numeric_features + spec.categorical_features
    with pytest.raises(MlopsError, match=r"^diabetes: search failed: ") as caught:
        search(spec, pipeline, frame[features], frame[spec.target].to_numpy(), timeout_seconds=600)  # lbfgs needs positive=True
    assert "\n" not in str(caught.value)


def test_distributions_draw_within_their_ranges() -> None:
    searched = Search.model_validate(
        {
            "params": {
                "a": {"low": 2, "high": 5},
                "b": {"low": 1, "high": 1000, "log": True},
                "c": {"low": 0.5, "high": 1.5},
                "d": {"low": 1e-4, "high": 1e-1, "log": True},
                "e": ["x", "y"],
            }
        }
    )
    drawn = distributions(searched)
    rng = np.random.default_rng(0)
    a = [drawn["estimator__a"].rvs(random_state=rng) for _ in range(200)]
    b = [drawn["estimator__b"].rvs(random_state=rng) for _ in range(200)]
    c = [drawn["estimator__c"].rvs(random_state=rng) for _ in range(200)]
    d = [drawn["estimator__d"].rvs(random_state=rng) for _ in range(200)]
    assert set(a) == {2, 3, 4, 5}
    assert all(isinstance(v, int) and 1 <= v <= 1000 for v in b)
    assert sum(v < 32 for v in b) > 60  # log-uniform: half the draws below sqrt(1000)
    assert all(0.5 <= v <= 1.5 for v in c)
    assert all(1e-4 <= v <= 1e-1 for v in d)
    assert drawn["estimator__e"] == ["x", "y"]


def test_a_grid_smaller_than_n_iter_fits_each_combination_once() -> None:
    assert candidates(Search.model_validate({"params": {"a": [1, 2], "b": [1, 2, 3]}, "n_iter": 20})) == 6
    assert candidates(Search.model_validate({"params": {"a": [1, 2], "b": {"low": 0, "high": 1}}, "n_iter": 20})) == 20
