"""Gradient-boosted models (HistGradientBoosting, LightGBM, XGBoost) through the inference handler: trained, registered
on moto, promoted and served; the handler answers what the registered ONNX graph answers, which matches the fitted
estimator (the parity gate; tests/unit/test_gradient_boosting.py, test_boosting_families.py), for each task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serverless_mlops.model.fit import train
from tests.helpers.families import family_frame, family_spec
from tests.helpers.inference import Clock, call, endpoint, handler_for, moto_backends, onnx_outputs, register

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

CASES = [
    ("sklearn.ensemble.HistGradientBoostingClassifier", "binary_classification", {"max_iter": 40, "max_depth": 5}),
    ("sklearn.ensemble.HistGradientBoostingClassifier", "multiclass_classification", {"max_iter": 40, "max_depth": 5}),
    ("sklearn.ensemble.HistGradientBoostingRegressor", "regression", {"max_iter": 40, "max_depth": 5}),
    ("lightgbm.LGBMClassifier", "binary_classification", {"n_estimators": 40, "verbose": -1}),
    ("lightgbm.LGBMClassifier", "multiclass_classification", {"n_estimators": 40, "verbose": -1}),
    ("lightgbm.LGBMRegressor", "regression", {"n_estimators": 40, "verbose": -1}),
    ("xgboost.XGBClassifier", "binary_classification", {"n_estimators": 40}),
    ("xgboost.XGBRegressor", "regression", {"n_estimators": 40}),
]


@pytest.mark.parametrize(("estimator", "task", "params"), CASES, ids=[f"{e.rsplit('.', 1)[1]}-{t}" for e, t, _ in CASES])
def test_a_gradient_boosted_model_serves_its_onnx_answers(tmp_path: Path, estimator: str, task: str, params: dict[str, Any]) -> None:
    pytest.importorskip(estimator.split(".", maxsplit=1)[0])
    spec = family_spec(tmp_path, task, estimator, params)
    trained = train(spec)
    frame = family_frame(task).dropna().head(6)
    rows: list[dict[str, Any]] = [
        {f.name: (row[f.name] if f.type.value == "categorical" else float(row[f.name])) for f in spec.features}
        for _, row in frame.iterrows()
    ]
    rows[0]["colour"] = "mauve"  # allow_unknown: an unknown category reaches the model and takes the missing-value way
    labels, probabilities = onnx_outputs(trained, rows)
    with moto_backends() as backends:
        register(backends, trained, "family-1", promote=True)
        status, body, _ = call(handler_for(endpoint(backends, Clock())), "POST", "/v1/models/family/predict", {"instances": rows})
    assert status == 200, body
    if spec.task.is_classification:
        assert body["predictions"] == labels
        assert probabilities is not None
        assert np.allclose(body["probabilities"], probabilities, atol=1e-6)
    else:
        assert body["predictions"] == pytest.approx(labels, rel=1e-6)
        assert body["probabilities"] is None
