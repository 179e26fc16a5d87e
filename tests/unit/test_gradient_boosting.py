"""HistGradientBoosting{Classifier,Regressor}: trained, converted by serverless_mlops.model.converters, and held to the
same parity gate as every estimator (labels identical, probabilities and values within 1e-4), with native
categorical splits, missing values, categories declared but never seen and unknown ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serverless_mlops.model.converters import float32_floor
from serverless_mlops.model.data import load_dataset
from serverless_mlops.model.fit import _feeds, _signature, _to_onnx, build_pipeline, open_session, resolve_estimator, split_holdout, train
from tests.helpers.families import TASKS, edge_rows, family_spec

HGB = {
    "binary_classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass_classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
PARAMS = {"max_iter": 60, "max_depth": 6, "learning_rate": 0.2}


def _fitted(tmp_path: Path, task: str, params: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    spec = family_spec(tmp_path, task, HGB[task], params or PARAMS)
    frame = load_dataset(spec).frame
    train_frame, holdout = split_holdout(spec, frame)
    features = spec.numeric_features + spec.categorical_features
    pipeline = build_pipeline(spec, resolve_estimator(spec)).fit(train_frame[features], train_frame[spec.target].to_numpy())
    session = open_session(_to_onnx(spec, pipeline))
    return spec, pipeline, session, _signature(spec, pipeline, session), holdout


@pytest.mark.parametrize("task", TASKS)
def test_trains_converts_and_passes_parity(tmp_path: Path, task: str) -> None:
    trained = train(family_spec(tmp_path, task, HGB[task], PARAMS))
    parity = trained.record.parity
    assert parity.passed
    assert parity.tolerance == 1e-4
    # float32 thresholds rounded down decide every split as scikit-learn's float64 ones do: what is left is the sum
    # of float32 leaf values
    assert parity.max_abs_diff < (1e-5 if task != "regression" else 1e-3)
    if task == "regression":
        assert trained.record.metrics["r2"] > 0.8
    else:
        assert trained.record.metrics["accuracy"] > (0.8 if task == "binary_classification" else 0.65)


@pytest.mark.parametrize("task", TASKS)
def test_native_categorical_splits_and_missing_values_match_sklearn(tmp_path: Path, task: str) -> None:
    spec, pipeline, session, signature, holdout = _fitted(tmp_path, task)
    estimator = pipeline.named_steps["estimator"]
    # the spec's categorical features are the estimator's categorical features: its own splits, not one-hot columns
    assert estimator.is_categorical_.tolist() == [False] * 4 + [True, True]
    assert any(node["is_categorical"] for iteration in estimator._predictors for p in iteration for node in p.nodes if not node["is_leaf"])
    assert any(
        node["missing_go_to_left"] for iteration in estimator._predictors for p in iteration for node in p.nodes if not node["is_leaf"]
    )
    rows = edge_rows()
    for frame in (holdout, rows):
        outputs = session.run(None, _feeds(signature, frame))
        served = frame[spec.numeric_features + spec.categorical_features].copy()
        for name in spec.numeric_features:
            served[name] = served[name].astype(np.float32).astype(np.float64)
        if spec.task.is_classification:
            assert outputs[0].ravel().astype(str).tolist() == pipeline.predict(served).astype(str).tolist()
            assert np.abs(outputs[1] - pipeline.predict_proba(served)).max() < 1e-5
        else:
            expected = pipeline.predict(served)
            assert np.abs(outputs[0].ravel() - expected).max() < 1e-4 * np.abs(expected).max()


def test_unknown_and_missing_categories_follow_the_missing_value_direction(tmp_path: Path) -> None:
    """An unknown category, a declared one never seen in training and a missing value all reach the same leaves."""
    spec, pipeline, session, signature, _ = _fitted(tmp_path, "regression")
    rows = edge_rows().iloc[[0, 0, 0]].reset_index(drop=True)
    rows["colour"] = ["c11", "mauve", "c11"]
    rows.loc[2, "size"] = "never"
    values = session.run(None, _feeds(signature, rows))[0].ravel()
    assert values[0] == values[1]
    served = rows[spec.numeric_features + spec.categorical_features]
    assert np.abs(values - pipeline.predict(served)).max() < 1e-3


def test_a_log_link_regressor_converts(tmp_path: Path) -> None:
    trained = train(family_spec(tmp_path, "regression", HGB["regression"], {**PARAMS, "loss": "poisson"}))
    assert trained.record.parity.passed


def test_numeric_only_specs_convert_without_the_categorical_path(tmp_path: Path) -> None:
    spec = family_spec(tmp_path, "binary_classification", HGB["binary_classification"], PARAMS)
    spec = spec.model_copy(update={"features": spec.features[:4]})
    trained = train(spec)
    assert trained.record.parity.passed
    assert [f.kind for f in trained.record.signature.features] == ["numeric"] * 4


def test_a_one_leaf_tree_converts(tmp_path: Path) -> None:
    """max_depth 1 is refused by scikit-learn; min_samples_leaf larger than the data makes every tree one leaf."""
    trained = train(
        family_spec(tmp_path, "binary_classification", HGB["binary_classification"], {"max_iter": 3, "min_samples_leaf": 10_000})
    )
    assert trained.record.parity.passed


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_float32_floor_decides_every_float32_comparison_as_float64_does(value: float) -> None:
    floor = float32_floor(value)
    assert float(floor) <= value
    with np.errstate(over="ignore"):
        above = np.nextafter(floor, np.float32(np.inf))
    assert float(above) > value  # the next float32 is above: no float32 lies between floor and value
