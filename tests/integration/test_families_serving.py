"""Gradient-boosted models through the inference handler: trained, registered on moto, promoted and served; the
handler answers what the registered ONNX graph answers, which matches the fitted estimator (tests/unit/
test_gradient_boosting.py), for each task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serverless_mlops.model.fit import train
from tests.helpers.families import TASKS, family_frame, family_spec
from tests.helpers.inference import Clock, call, endpoint, handler_for, moto_backends, onnx_outputs, register

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

HGB = {
    "binary_classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass_classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}


@pytest.mark.parametrize("task", TASKS)
def test_a_hist_gradient_boosting_model_serves_its_onnx_answers(tmp_path: Path, task: str) -> None:
    spec = family_spec(tmp_path, task, HGB[task], {"max_iter": 40, "max_depth": 5})
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
