"""The inference core: inputs are validated against the signature before ONNX sees them; predictions match ONNX."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.data import load_dataset
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.onnx_model import OnnxModel
from tests.helpers.specs import example_spec


@pytest.fixture(scope="module")
def diabetes(trained_models: dict[str, TrainedModel]) -> OnnxModel:
    trained = trained_models["diabetes"]
    return OnnxModel(trained.record.signature, trained.onnx_bytes)


@pytest.fixture(scope="module")
def wine(trained_models: dict[str, TrainedModel]) -> OnnxModel:
    trained = trained_models["wine"]
    return OnnxModel(trained.record.signature, trained.onnx_bytes)


def _records(name: str, rows: int = 5) -> list[dict[str, Any]]:
    spec = example_spec(name)
    frame = load_dataset(spec).frame.head(rows)
    return [
        {f.name: (row[f.name] if f.type.value == "categorical" else float(row[f.name])) for f in spec.features}
        for _, row in frame.iterrows()
    ]


def test_predictions_equal_the_onnx_graph(trained_models: dict[str, TrainedModel], wine: OnnxModel) -> None:
    records = _records("wine", 20)
    result = wine.predict_records(records)
    session = ort.InferenceSession(trained_models["wine"].onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {f.input_name: np.array([[r[f.name]] for r in records], dtype=np.float32) for f in wine.signature.features}
    labels, probabilities = session.run(None, feeds)
    assert result.predictions == labels.tolist()
    assert result.probabilities is not None
    assert np.allclose(result.probabilities, probabilities, atol=1e-6)


def test_rows_in_signature_order_give_the_same_answer(diabetes: OnnxModel) -> None:
    records = _records("diabetes")
    rows = [[r[name] for name in diabetes.signature.feature_names] for r in records]
    assert diabetes.predict_rows(rows) == diabetes.predict_records(records)
    assert diabetes.predict_records(records).probabilities is None


def _problems(model: OnnxModel, records: list[Any]) -> list[dict[str, Any]]:
    with pytest.raises(InvalidInputError) as caught:
        model.predict_records(records)
    return caught.value.details


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("bmi", math.nan, "finite"),
        ("bmi", math.inf, "finite"),
        ("bmi", -math.inf, "finite"),
        ("bmi", "32.1", "expected a number, got string"),
        ("bmi", True, "expected a number, got boolean"),
        ("bmi", None, "expected a number, got null"),
        ("bmi", [1.0], "expected a number, got array"),
        ("age", 150.0, "outside the allowed range [0.0, 120.0]"),
        ("age", -1, "outside the allowed range"),
        ("bmi", 10**400, "finite"),
        ("bmi", 1e39, "outside the float32 range"),
        ("sex", "c", "unknown category"),
        ("sex", 1, "expected a string, got integer"),
    ],
)
def test_each_bad_value_is_named_by_row_and_field(diabetes: OnnxModel, field: str, value: Any, problem: str) -> None:
    records = _records("diabetes", 3)
    records[2][field] = value
    details = _problems(diabetes, records)
    assert len(details) == 1
    assert details[0]["row"] == 2
    assert details[0]["field"] == field
    assert problem in details[0]["problem"]


def test_problems_never_echo_the_value(diabetes: OnnxModel) -> None:
    records = _records("diabetes", 1)
    records[0]["sex"] = "secret-patient-name"
    records[0]["bmi"] = "also-secret"
    details = _problems(diabetes, records)
    assert len(details) == 2
    assert "secret" not in repr(details)


def test_missing_features_and_non_objects_are_reported(diabetes: OnnxModel) -> None:
    records: list[Any] = _records("diabetes", 2)
    del records[0]["s6"]
    records.append([1, 2, 3])
    details = _problems(diabetes, records)
    assert {"row": 0, "field": "s6", "problem": "missing"} in details
    assert any(d["row"] == 2 and d["field"] is None and "expected an object" in d["problem"] for d in details)


def test_wrong_row_width_in_signature_order(diabetes: OnnxModel) -> None:
    with pytest.raises(InvalidInputError) as caught:
        diabetes.predict_rows([[1.0, "a"]])
    assert "expected 10 values in signature order, got 2" in caught.value.details[0]["problem"]


def test_empty_requests_are_refused(diabetes: OnnxModel) -> None:
    with pytest.raises(InvalidInputError, match="no instances"):
        diabetes.predict_records([])
    with pytest.raises(InvalidInputError, match="no inputs"):
        diabetes.predict_rows([])


def test_details_are_capped(diabetes: OnnxModel) -> None:
    records = [{"bmi": math.nan} for _ in range(500)]
    details = _problems(diabetes, records)
    assert 0 < len(details) <= 50


def test_unknown_categories_pass_when_the_spec_allows_them(trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["diabetes"]
    features = [f.model_copy(update={"allow_unknown": True}) if f.name == "sex" else f for f in trained.record.signature.features]
    model = OnnxModel(trained.record.signature.model_copy(update={"features": features}), trained.onnx_bytes)
    records = _records("diabetes", 1)
    records[0]["sex"] = "unseen"
    (value,) = model.predict_records(records).predictions
    assert math.isfinite(value)


def test_the_serving_module_imports_no_training_libraries() -> None:
    """The inference path must stay small and never unpickle: check in a fresh interpreter."""
    import subprocess

    code = (
        "import sys, serverless_mlops.serving.onnx_model, serverless_mlops.store.lifecycle, serverless_mlops.store.registry; "
        "bad = sorted(m for m in ('sklearn', 'scipy', 'pickle', 'joblib', 'skl2onnx', 'pandas') if m in sys.modules); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # numpy and boto3 import the standard library's pickle module themselves; nothing here unpickles a model
    leaked = [m for m in out.stdout.strip().split(",") if m and m != "pickle"]
    assert leaked == []


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutations=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["age", "sex", "bmi", "s6", "extra"]), _json_values), max_size=4),
    drops=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["age", "sex", "bmi"])), max_size=2),
)
def test_any_payload_either_predicts_or_is_refused_with_details(
    diabetes: OnnxModel, mutations: list[tuple[int, str, Any]], drops: list[tuple[int, str]]
) -> None:
    records = _records("diabetes", 3)
    for row, field, value in mutations:
        records[row][field] = value
    for row, field in drops:
        records[row].pop(field, None)
    try:
        result = diabetes.predict_records(records)
    except InvalidInputError as exc:
        assert exc.details
        assert all({"row", "field", "problem"} <= set(d) for d in exc.details)
    else:
        assert len(result.predictions) == 3
        assert all(math.isfinite(v) for v in result.predictions)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_json_values, max_size=12), min_size=1, max_size=3))
def test_any_rows_payload_either_predicts_or_is_refused(diabetes: OnnxModel, rows: list[list[Any]]) -> None:
    try:
        result = diabetes.predict_rows(rows)
    except InvalidInputError as exc:
        assert exc.details
    else:
        assert len(result.predictions) == len(rows)
