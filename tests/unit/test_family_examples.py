"""The gradient-boosting example specs: models/affairs.yaml (HistGradientBoosting, native categorical splits on both
occupations, a hyperparameter search, statsmodels' fair data) and models/breast-cancer-lightgbm.yaml (LightGBM)."""

from __future__ import annotations

import pytest

from serverless_mlops.model.fit import train
from serverless_mlops.model.spec import Search
from tests.helpers.specs import example_spec


def test_the_affairs_example_trains_with_native_categories_and_a_search() -> None:
    spec = example_spec("affairs")
    assert spec.estimator.class_ == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert spec.categorical_features == ["occupation", "occupation_husb"]
    assert spec.search is not None
    # the example's search, made small: one candidate per listed value of max_leaf_nodes is enough to exercise it here
    spec = spec.model_copy(update={"search": Search.model_validate({"params": {"max_leaf_nodes": [7, 15]}, "n_iter": 2, "cv": 2})})
    record = train(spec).record
    assert record.parity.passed
    assert record.train_rows + record.holdout_rows == 6366
    assert spec.evaluation.floor is not None
    assert record.metrics["roc_auc"] >= spec.evaluation.floor
    assert record.search is not None
    assert record.params["max_leaf_nodes"] in (7, 15)


def test_the_lightgbm_breast_cancer_example_trains_with_parity() -> None:
    pytest.importorskip("lightgbm")
    spec = example_spec("breast-cancer-lightgbm")
    assert spec.estimator.class_ == "lightgbm.LGBMClassifier"
    record = train(spec).record
    assert record.parity.passed
    assert record.parity.max_abs_diff < 1e-6  # the float32-floored thresholds: every split decides as LightGBM's
    assert spec.evaluation.floor is not None
    assert record.metrics["roc_auc"] >= spec.evaluation.floor
