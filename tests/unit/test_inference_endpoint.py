"""The endpoint's pure parts: settings from the environment, request models, validation errors, V2 tensors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.signature import FeatureSignature, Signature
from serverless_mlops.serving.api_models import InferRequest, PredictRequest
from serverless_mlops.serving.endpoint_settings import EndpointSettings
from serverless_mlops.serving.request_parsing import details_from_validation
from serverless_mlops.serving.v2_tensors import _flat, requested_outputs, tensors_to_rows
from serverless_mlops.settings import ConfigurationError

SIGNATURE = Signature(
    model="m",
    task="binary_classification",
    target="y",
    features=[
        FeatureSignature(name="age", input_name="age", kind="numeric"),
        FeatureSignature(name="sex", input_name="sex", kind="categorical", categories=["a", "b"]),
    ],
    label_output="label",
    probabilities_output="probabilities",
    classes=[0, 1],
)


def test_settings_defaults_and_every_variable() -> None:
    default = EndpointSettings.from_env({})
    assert (default.max_rows, default.max_body_bytes, default.refresh_seconds, default.capture_sample) == (1000, 5_000_000, 30.0, 1.0)
    assert default.models == frozenset()
    assert default.aws.bucket == "serverless-mlops-artifacts"
    env = {
        "MLOPS_BUCKET": "b-1",
        "MLOPS_TABLE": "t-1",
        "MLOPS_KMS_KEY_ID": "alias/k",
        "MLOPS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "MLOPS_MAX_ROWS": "10",
        "MLOPS_MAX_BODY_BYTES": "2048",
        "MLOPS_REFRESH_SECONDS": "5",
        "MLOPS_CAPTURE_SAMPLE": "0.25",
        "MLOPS_CAPTURE_MAX_ROWS": "50",
        "MLOPS_CAPTURE_MAX_SECONDS": "15",
        "MLOPS_MODELS": " wine, diabetes ,,",
    }
    settings = EndpointSettings.from_env(env)
    assert settings.aws.bucket == "b-1"
    assert settings.aws.table == "t-1"
    assert settings.aws.kms_key_id == "alias/k"
    assert settings.aws.endpoint_url == "http://127.0.0.1:5000"
    assert (settings.max_rows, settings.max_body_bytes, settings.refresh_seconds) == (10, 2048, 5.0)
    assert (settings.capture_sample, settings.capture_max_rows, settings.capture_max_seconds) == (0.25, 50, 15.0)
    assert settings.models == {"wine", "diabetes"}


def test_dependency_budgets_default_small_and_can_be_set() -> None:
    default = EndpointSettings.from_env({})
    assert (default.alias_check_budget_ms, default.capture_flush_budget_ms, default.model_reload_budget_ms) == (200, 400, 2000)
    assert (default.backoff_max_seconds, default.model_load_budget_ms, default.labels_budget_ms) == (300, 4000, 1000)
    env = {
        "MLOPS_MODEL_LOAD_BUDGET_MS": "6000",
        "MLOPS_ALIAS_CHECK_BUDGET_MS": "150",
        "MLOPS_CAPTURE_FLUSH_BUDGET_MS": "250",
        "MLOPS_MODEL_RELOAD_BUDGET_MS": "3000",
        "MLOPS_BACKOFF_MAX_SECONDS": "120",
        "MLOPS_LABELS_BUDGET_MS": "1500",
    }
    settings = EndpointSettings.from_env(env)
    assert settings.labels_budget_ms == 1500
    assert (settings.alias_check_budget_ms, settings.capture_flush_budget_ms, settings.model_reload_budget_ms) == (150, 250, 3000)
    assert (settings.backoff_max_seconds, settings.model_load_budget_ms) == (120, 6000)


def test_a_budgeted_client_makes_one_attempt_within_the_budget() -> None:
    from serverless_mlops.aws import budget_config

    config = budget_config(200)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    # urllib3 waits up to the connect timeout to connect and again to send, then up to the read timeout
    assert 2 * config.connect_timeout + config.read_timeout == pytest.approx(0.2)
    with pytest.raises(ValueError, match="budget_ms"):
        budget_config(0)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MLOPS_MAX_ROWS", "lots", "MLOPS_MAX_ROWS"),
        ("MLOPS_MAX_ROWS", "0", "MLOPS_MAX_ROWS"),
        ("MLOPS_MAX_BODY_BYTES", "7000000", "MLOPS_MAX_BODY_BYTES"),
        ("MLOPS_CAPTURE_SAMPLE", "1.5", "MLOPS_CAPTURE_SAMPLE"),
        ("MLOPS_MODELS", "Wine,ok", "not model names: Wine"),
        ("MLOPS_ALIAS_CHECK_BUDGET_MS", "0", "MLOPS_ALIAS_CHECK_BUDGET_MS"),
        ("MLOPS_ALIAS_CHECK_BUDGET_MS", "soon", "MLOPS_ALIAS_CHECK_BUDGET_MS"),
        ("MLOPS_CAPTURE_FLUSH_BUDGET_MS", "60000", "MLOPS_CAPTURE_FLUSH_BUDGET_MS"),
        ("MLOPS_MODEL_RELOAD_BUDGET_MS", "5", "MLOPS_MODEL_RELOAD_BUDGET_MS"),
        ("MLOPS_BACKOFF_MAX_SECONDS", "0", "MLOPS_BACKOFF_MAX_SECONDS"),
        ("MLOPS_MODEL_LOAD_BUDGET_MS", "31000", "MLOPS_MODEL_LOAD_BUDGET_MS"),
        ("MLOPS_LABELS_BUDGET_MS", "0", "MLOPS_LABELS_BUDGET_MS"),
        ("MLOPS_LABELS_BUDGET_MS", "60000", "MLOPS_LABELS_BUDGET_MS"),
    ],
)
def test_invalid_settings_name_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        EndpointSettings.from_env({name: value})


def test_predict_request_takes_exactly_one_shape_and_hides_values_from_repr() -> None:
    request = PredictRequest.model_validate({"instances": [{"age": 123456.5}]})
    assert "123456.5" not in repr(request)
    with pytest.raises(ValidationError, match="exactly one of 'instances'"):
        PredictRequest.model_validate({})
    with pytest.raises(ValidationError, match="exactly one of 'instances'"):
        PredictRequest.model_validate({"instances": [], "inputs": []})
    with pytest.raises(ValidationError, match="Extra inputs"):
        PredictRequest.model_validate({"instances": [], "signature_name": "x"})


def _errors(payload: Any) -> list[dict[str, Any]]:
    try:
        PredictRequest.model_validate(payload)
    except ValidationError as exc:
        return [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
    raise AssertionError("expected a validation error")


def test_validation_errors_become_details_with_row_and_field_never_values() -> None:
    code, message, details = details_from_validation(_errors({"instances": [{"age": 1}, "SECRET-VALUE"]}))
    assert code == "invalid_request"
    assert message == "1 problem(s) in the request"
    assert details == [{"row": 1, "field": "instances", "problem": "Input should be a valid dictionary"}]
    assert "SECRET-VALUE" not in str(details)
    _, _, details = details_from_validation(_errors({"inputs": [[1], 5], "bogus": 1}))
    assert {"row": 1, "field": "inputs", "problem": "Input should be a valid list"} in details
    assert {"row": None, "field": "bogus", "problem": "unknown field"} in details
    _, _, details = details_from_validation(_errors({"instances": [{}, {}], "ids": ["a", 7]}))
    assert details == [{"row": 1, "field": "ids", "problem": "Input should be a valid string"}]  # a prediction id, by row
    _, _, details = details_from_validation(
        [{"loc": ("body", "labels", 2), "type": "dict_type", "msg": "Input should be a valid dictionary"}]
    )
    assert details == [{"row": 2, "field": "labels", "problem": "Input should be a valid dictionary"}]  # a label row, by row
    _, _, details = details_from_validation([{"loc": ("body",), "type": "missing", "msg": "Field required"}])
    assert details == [{"row": None, "field": "body", "problem": "the request body is missing"}]
    _, _, details = details_from_validation(
        [{"loc": ("query", "version"), "type": "int_parsing", "msg": "Input should be a valid integer"}]
    )
    assert details == [{"row": None, "field": "version", "problem": "Input should be a valid integer"}]
    code, message, details = details_from_validation(
        [{"loc": ("body", 7), "type": "json_invalid", "msg": "JSON", "ctx": {"error": "Expecting value"}}]
    )
    assert (code, message) == ("malformed_json", "the request body is not valid JSON")
    assert details == [{"row": None, "field": None, "problem": "the body is not valid JSON at character 7: Expecting value"}]


def _tensor(name: str, shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def _infer(*tensors: dict[str, Any]) -> InferRequest:
    return InferRequest.model_validate({"inputs": list(tensors)})


def test_one_tensor_per_feature_becomes_columns_in_signature_order() -> None:
    request = _infer(_tensor("sex", [2, 1], "BYTES", [["a"], ["b"]]), _tensor("age", [2], "INT64", [30, 40]))
    assert tensors_to_rows(SIGNATURE, request.inputs) == ("columns", [[30, 40], ["a", "b"]], 2)


def test_a_single_tensor_becomes_rows_in_signature_order() -> None:
    request = _infer(_tensor("input-0", [2, 2], "BYTES", [[30, "a"], [40, "b"]]))
    assert tensors_to_rows(SIGNATURE, request.inputs) == ("rows", [[30, "a"], [40, "b"]], 2)


@pytest.mark.parametrize(
    ("tensors", "field", "problem"),
    [
        ([_tensor("age", [1], "FP32", [1.0])], "sex", "missing"),
        ([_tensor("age", [1], "BYTES", ["1"]), _tensor("sex", [1], "BYTES", ["a"])], "age", "datatype BYTES does not fit a numeric"),
        ([_tensor("age", [1], "FP32", [1.0]), _tensor("sex", [1], "FP32", [1.0])], "sex", "does not fit a categorical"),
        ([_tensor("age", [1, 2], "FP32", [1.0, 2.0]), _tensor("sex", [1], "BYTES", ["a"])], "age", "shape must be [N] or [N, 1]"),
        ([_tensor("age", [2], "FP32", [1.0]), _tensor("sex", [2], "BYTES", ["a", "b"])], "age", "shape holds 2 values, data has 1"),
        ([_tensor("age", [1], "FP32", [1.0]), _tensor("sex", [2], "BYTES", ["a", "b"])], "sex", "2 rows, other inputs have 1"),
        ([_tensor("age", [1], "FP32", [1.0]), _tensor("age", [1], "FP32", [1.0])], "age", "given more than once"),
        ([_tensor("x", [1], "FP32", [1.0]), _tensor("y", [1], "FP32", [1.0])], "inputs[0].name", "not an input of this model"),
        ([_tensor("x", [1, 3], "BYTES", [1, "a", 2])], "inputs[0].shape", "shape [N, 2]"),
        ([_tensor("x", [2, 2], "BYTES", [1, "a", 2])], "inputs[0].data", "shape holds 4 values, data has 3"),
        ([_tensor("x", [1, 2], "FP32", [1, 2])], "inputs[0].datatype", "categorical features"),
    ],
)
def test_tensors_that_do_not_fit_name_the_input_and_problem(tensors: list[dict[str, Any]], field: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        tensors_to_rows(SIGNATURE, _infer(*tensors).inputs)
    assert any(d["field"] == field and problem in d["problem"] for d in caught.value.details), caught.value.details


def test_bool_single_tensor_is_refused_for_numeric_models() -> None:
    numeric = SIGNATURE.model_copy(update={"features": SIGNATURE.features[:1]})
    with pytest.raises(InvalidInputError, match="does not fit"):
        tensors_to_rows(numeric, _infer(_tensor("x", [1, 1], "BOOL", [True])).inputs)


def test_nested_tensor_data_is_flattened_row_major() -> None:
    assert _flat([1, 2]) == [1, 2]
    assert _flat([[1, [2, 3]], [], [[4]], 5]) == [1, 2, 3, 4, 5]
    deep: list[Any] = [7]
    for _ in range(5000):  # deeper than Python's recursion limit: flattening must not recurse
        deep = [deep]
    assert _flat(deep) == [7]


def test_requested_outputs_are_checked() -> None:
    assert requested_outputs(SIGNATURE, None) == {"predictions", "probabilities"}
    request = InferRequest.model_validate({"inputs": [_tensor("age", [1], "FP32", [1])], "outputs": [{"name": "probabilities"}]})
    assert requested_outputs(SIGNATURE, request.outputs) == {"probabilities"}
    bad = InferRequest.model_validate({"inputs": [_tensor("age", [1], "FP32", [1])], "outputs": [{"name": "logits"}]})
    with pytest.raises(InvalidInputError) as caught:
        requested_outputs(SIGNATURE, bad.outputs)
    assert caught.value.details[0]["field"] == "outputs[0].name"


def test_columns_are_checked_before_the_model_sees_them(trained_models: dict[str, Any]) -> None:
    from serverless_mlops.serving.onnx_model import OnnxModel

    trained = trained_models["diabetes"]
    model = OnnxModel(trained.record.signature, trained.onnx_bytes)
    width = len(model.signature.features)
    with pytest.raises(InvalidInputError, match=f"expected {width} columns"):
        model.predict_columns([[1.0]])
    with pytest.raises(InvalidInputError, match="columns differ in length"):
        model.predict_columns([[1.0]] * (width - 1) + [[1.0, 2.0]])
    with pytest.raises(InvalidInputError, match="no inputs"):
        model.predict_columns([[] for _ in range(width)])
    columns = [["a"] if f.kind == "categorical" else [float("nan")] for f in model.signature.features]
    with pytest.raises(InvalidInputError) as caught:
        model.predict_columns(columns)
    assert {(d["row"], d["field"]) for d in caught.value.details} == {(0, f.name) for f in model.signature.features if f.kind == "numeric"}


def test_tracing_follows_powertools_rules_without_importing_the_xray_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.observability import observability

    obs = observability("inference")
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    assert not obs.tracing
    handler = obs.trace_handler(len)
    assert handler is len  # outside Lambda the handler is left alone
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    assert obs.tracing
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert not obs.tracing
    assert "tracer" not in obs.__dict__  # deciding never built the Tracer (whose construction imports the X-Ray SDK)


def test_inputs_that_overflow_the_model_are_refused_by_row(trained_models: dict[str, Any]) -> None:
    from serverless_mlops.serving.onnx_model import OnnxModel

    trained = trained_models["diabetes"]
    model = OnnxModel(trained.record.signature, trained.onnx_bytes)
    ok = {f.name: ("a" if f.kind == "categorical" else 50.0) for f in model.signature.features}
    huge = {f.name: ("a" if f.kind == "categorical" else (50.0 if f.range else 3.0e38)) for f in model.signature.features}
    with pytest.raises(InvalidInputError) as caught:
        model.predict_records([ok, huge, ok])
    assert caught.value.details == [
        {
            "row": 1,
            "field": None,
            "problem": "the model's output for this row is not a finite number (values far outside the training data?)",
        }
    ]
