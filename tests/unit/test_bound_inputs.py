"""Small all-numeric requests run on inputs bound once (onnx_model._BoundRun): the answers are exactly what
``session.run`` gives for the same rows, whatever the row count, the order of requests or the threads asking."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np
import pytest

from serverless_mlops.model.data import load_dataset
from serverless_mlops.model.fit import TrainedModel, train
from serverless_mlops.serving.onnx_model import BOUND_MAX_ROWS, OnnxModel
from tests.helpers.specs import example_spec


@pytest.fixture(scope="module")
def frames() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in ("breast-cancer", "wine", "diabetes"):
        spec = example_spec(name)
        frame = load_dataset(spec).frame
        out[name] = [
            {f.name: (row[f.name] if f.type.value == "categorical" else float(row[f.name])) for f in spec.features}
            for _, row in frame.iterrows()
        ]
    return out


def _model(trained_models: dict[str, TrainedModel], name: str) -> OnnxModel:
    trained = trained_models[name]
    return OnnxModel(trained.record.signature, trained.onnx_bytes)


def _expected(model: OnnxModel, records: list[dict[str, Any]]) -> tuple[list[Any], list[list[float]] | None]:
    """What session.run gives for ``records``, post-processed as the model does (float64, 7 places)."""
    feeds = {
        f.input_name: np.array([[r[f.name]] for r in records], dtype=object if f.kind == "categorical" else np.float32)
        for f in model.signature.features
    }
    outputs = model.session.run(None, feeds)
    named = dict(zip([o.name for o in model.session.get_outputs()], outputs, strict=True))
    signature = model.signature
    if signature.is_classification:
        assert signature.label_output is not None
        probabilities = (
            named[signature.probabilities_output].astype(np.float64).round(7).tolist() if signature.probabilities_output else None
        )
        return named[signature.label_output].ravel().tolist(), probabilities
    assert signature.value_output is not None
    return named[signature.value_output].astype(np.float64).ravel().round(7).tolist(), None


@pytest.mark.parametrize("name", ["breast-cancer", "wine"])
def test_every_row_count_answers_exactly_as_session_run(
    trained_models: dict[str, TrainedModel], frames: dict[str, list[dict[str, Any]]], name: str
) -> None:
    model = _model(trained_models, name)
    records = frames[name]
    start = 0
    for _ in range(2):  # twice over: a binding made by an earlier request of the same size must see the new rows
        for rows in range(1, BOUND_MAX_ROWS + 3):
            window = records[start : start + rows]
            start += rows
            result = model.predict_records(window)
            assert (result.predictions, result.probabilities) == _expected(model, window), f"{rows} row(s) from {start - rows}"
    assert sorted(model._bound) == list(range(1, BOUND_MAX_ROWS + 1)), "one binding per small row count, none for larger requests"


def test_a_binding_in_use_leaves_the_request_to_session_run(
    trained_models: dict[str, TrainedModel], frames: dict[str, list[dict[str, Any]]]
) -> None:
    model = _model(trained_models, "breast-cancer")
    first, second = frames["breast-cancer"][:1], frames["breast-cancer"][200:201]
    assert model.predict_records(first).predictions == _expected(model, first)[0]
    bound = model._bound[1]
    with bound._lock:  # another thread is running on it
        result = model.predict_records(second)
    assert (result.predictions, result.probabilities) == _expected(model, second)
    assert _expected(model, first) != _expected(model, second), "the two rows must be told apart"


def test_threads_sharing_a_model_each_get_their_own_rows_answer(
    trained_models: dict[str, TrainedModel], frames: dict[str, list[dict[str, Any]]]
) -> None:
    model = _model(trained_models, "breast-cancer")
    records = frames["breast-cancer"]
    expected = [_expected(model, [record]) for record in records[:120]]
    wrong: list[int] = []

    def work(offset: int) -> None:
        for i in range(offset, offset + 120 * 3):
            index = i % 120
            result = model.predict_records([records[index]])
            if (result.predictions, result.probabilities) != expected[index]:
                wrong.append(index)

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_model_with_categorical_inputs_runs_through_session_run(
    trained_models: dict[str, TrainedModel], frames: dict[str, list[dict[str, Any]]]
) -> None:
    model = _model(trained_models, "diabetes")
    for rows in (1, 3):
        window = frames["diabetes"][:rows]
        result = model.predict_records(window)
        assert (result.predictions, result.probabilities) == _expected(model, window)
    assert model._bound == {}


def test_batch_matrices_answer_as_records_do(trained_models: dict[str, TrainedModel], frames: dict[str, list[dict[str, Any]]]) -> None:
    model = _model(trained_models, "breast-cancer")
    for rows in (1, BOUND_MAX_ROWS + 5):
        window = frames["breast-cancer"][:rows]
        wide = np.array([[r[name] for r in window] for name in model.signature.feature_names], dtype=np.float64)
        labels, probabilities = model.predict_matrix(wide)
        assert probabilities is not None
        assert (labels.tolist(), probabilities.tolist()) == _expected(model, window)


def test_a_classifier_with_string_labels_answers_through_session_run() -> None:
    """onnxruntime 1.32 crashes the process copying a bound string output to numpy: such a model never binds."""
    spec = example_spec("wine")
    data = load_dataset(spec)
    frame = data.frame.copy()
    frame[spec.target] = frame[spec.target].map(lambda label: f"cultivar-{label}")
    trained = train(spec, dataset=dataclasses.replace(data, frame=frame))
    model = OnnxModel(trained.record.signature, trained.onnx_bytes)
    assert {o.name: o.type for o in model.session.get_outputs()}[model.signature.label_output or ""] == "tensor(string)"
    records = [{f.name: float(row[f.name]) for f in spec.features} for _, row in frame.head(3).iterrows()]

    result = model.predict_records(records[:1])
    assert (result.predictions, result.probabilities) == _expected(model, records[:1])
    assert str(result.predictions[0]).startswith("cultivar-")
    assert model._bound == {}
