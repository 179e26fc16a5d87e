"""The inference Lambda's handler on moto: predictions, errors, limits, sample events, metadata, metrics and logs.

These tests only read: they share one moto account and one endpoint (module-scoped). Tests that change the registry
or S3 (refresh, tampering, capture) are in test_inference_lifecycle.py.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from functions.inference.app import create_handler
from functions.inference.telemetry import logger
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.endpoint_settings import EndpointSettings
from serverless_mlops.settings import ConfigurationError
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.events import LambdaContext, emf_records, load_event
from tests.helpers.inference import Clock, Handler, call, endpoint, handler_for, moto_backends, onnx_outputs, records, register

BC = "/v1/models/breast-cancer/predict"
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")  # health routes publish none, on purpose


@pytest.fixture(scope="module")
def served(trained_models: dict[str, TrainedModel]) -> Iterator[Backends]:
    """breast-cancer, wine and diabetes registered as version 1 and promoted to production."""
    with moto_backends() as backends:
        for name, trained in trained_models.items():
            register(backends, trained, f"{name}-1", promote=True)
        yield backends


@pytest.fixture(scope="module")
def handler(served: Backends) -> Handler:
    return handler_for(endpoint(served, Clock()))


# -- predictions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["breast-cancer", "wine", "diabetes"])
def test_predictions_equal_the_registered_models_onnx_output(handler: Handler, trained_models: dict[str, TrainedModel], name: str) -> None:
    trained = trained_models[name]
    rows = records(name, 8)
    labels, probabilities = onnx_outputs(trained, rows)
    names = trained.record.signature.feature_names
    path = f"/v1/models/{name}/predict"

    status, by_records, _ = call(handler, "POST", path, {"instances": rows})
    assert status == 200, by_records
    assert (by_records["model"], by_records["version"]) == (name, 1)
    status, by_rows, _ = call(handler, "POST", path, {"inputs": [[r[n] for n in names] for r in rows]})
    assert status == 200, by_rows
    assert by_rows == by_records

    features = trained.record.signature.features
    tensors = [
        {
            "name": f.name,
            "shape": [len(rows)],
            "datatype": "BYTES" if f.kind == "categorical" else "FP32",
            "data": [r[f.name] for r in rows],
        }
        for f in features
    ]
    status, v2, _ = call(handler, "POST", f"/v2/models/{name}/infer", {"id": "req-7", "inputs": tensors})
    assert status == 200, v2
    assert (v2["model_name"], v2["model_version"], v2["id"]) == (name, "1", "req-7")
    single = {"name": "input-0", "shape": [len(rows), len(names)], "datatype": "BYTES", "data": [[r[n] for n in names] for r in rows]}
    status, v2_single, _ = call(handler, "POST", f"/v2/models/{name}/versions/1/infer", {"inputs": [single]})
    assert status == 200, v2_single
    assert v2_single["outputs"] == v2["outputs"]
    outputs = {o["name"]: o for o in v2["outputs"]}

    if probabilities is None:
        assert np.allclose(by_records["predictions"], labels, rtol=1e-6)
        assert by_records["probabilities"] is None
        assert np.allclose(outputs["predictions"]["data"], labels, rtol=1e-6)
        assert outputs["predictions"]["datatype"] == "FP64"
    else:
        assert by_records["predictions"] == labels
        assert np.allclose(by_records["probabilities"], probabilities, atol=1e-6)
        assert outputs["predictions"]["data"] == labels
        assert outputs["probabilities"]["shape"] == [len(rows), len(probabilities[0])]
        assert np.allclose(np.reshape(outputs["probabilities"]["data"], (len(rows), -1)), probabilities, atol=1e-6)


def test_v2_outputs_can_be_chosen(handler: Handler, trained_models: dict[str, TrainedModel]) -> None:
    rows = records("wine", 2)
    names = trained_models["wine"].record.signature.feature_names
    tensor = {"name": "x", "shape": [2, len(names)], "datatype": "FP64", "data": [r[n] for r in rows for n in names]}
    status, body, _ = call(handler, "POST", "/v2/models/wine/infer", {"inputs": [tensor], "outputs": [{"name": "predictions"}]})
    assert status == 200
    assert [o["name"] for o in body["outputs"]] == ["predictions"]


# -- unknown models and routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "code", "fragment"),
    [
        ("POST", "/v1/models/nope/predict", None, "not_found", "model 'nope' is not registered"),
        ("POST", "/v1/models/Not_A_Name/predict", None, "not_found", "is not registered"),
        ("POST", BC, {"version": "9"}, "not_found", "has no version 9"),
        ("POST", BC, {"alias": "canary"}, "not_found", "has no alias 'canary'"),
        ("POST", "/v2/models/breast-cancer/versions/7/infer", None, "not_found", "has no version 7"),
        ("GET", BC, None, "route_not_found", "no route for GET"),
        ("POST", "/v3/anything", None, "route_not_found", "see GET /openapi.json"),
    ],
)
def test_unknown_models_versions_aliases_and_routes_are_404(
    handler: Handler, method: str, path: str, query: dict[str, str] | None, code: str, fragment: str
) -> None:
    body = {"instances": records("breast-cancer", 1)} if method == "POST" and "/v1/" in path else None
    if "/infer" in path:
        body = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}
    status, error, _ = call(handler, method, path, body, query=query)
    assert status == 404
    assert error["error"] == code
    assert fragment in error["message"]
    assert set(error) == {"error", "message", "details"}


# -- client mistakes -----------------------------------------------------------------------------------------------


def test_invalid_values_name_row_and_field(handler: Handler) -> None:
    rows = records("diabetes", 3)
    rows[1]["age"] = 500.0
    rows[2]["sex"] = "unknown"
    del rows[0]["bmi"]
    status, error, _ = call(handler, "POST", "/v1/models/diabetes/predict", {"instances": rows})
    assert (status, error["error"]) == (422, "invalid_input")
    assert {(d["row"], d["field"]) for d in error["details"]} == {(0, "bmi"), (1, "age"), (2, "sex")}
    status, error, _ = call(handler, "POST", BC, raw_body='{"instances": [{"mean radius": NaN}]}')
    assert status == 422
    assert any("finite" in d["problem"] for d in error["details"])


def _with_query(raw: str, params: dict[str, str]) -> dict[str, Any]:
    """A predict event with a query string as HTTP API sends it: repeated names joined by commas in the parameters."""
    event = load_event(method="POST", path=BC, body={"instances": records("breast-cancer", 1)})
    event["rawQueryString"], event["queryStringParameters"] = raw, params
    return event


@pytest.mark.parametrize(
    ("raw", "params", "field", "problem"),
    [
        ("version=abc", {"version": "abc"}, "version", "ASCII digits"),
        ("version=0", {"version": "0"}, "version", "a whole number 1, 2, ..."),
        ("version=", {"version": ""}, "version", "ASCII digits"),
        ("version=1%2C2", {"version": "1,2"}, "version", "ASCII digits"),
        ("version=1&version=2", {"version": "1,2"}, "version", "given more than once; give version once"),
        ("alias=aaa&alias=bbb", {"alias": "aaa,bbb"}, "alias", "given more than once; give alias once"),
        ("alias=" + "x" * 65, {"alias": "x" * 65}, "alias", "at most 64 characters"),
        ("alias=bad%21name", {"alias": "bad!name"}, "alias", "letters, digits"),
        ("version=1&alias=production", {"version": "1", "alias": "production"}, "alias", "either ?version= or ?alias="),
    ],
)
def test_bad_query_parameters_are_422_naming_the_parameter(
    handler: Handler, raw: str, params: dict[str, str], field: str, problem: str
) -> None:
    response = handler(_with_query(raw, params), LambdaContext())
    error = json.loads(response["body"])
    assert (response["statusCode"], error["error"]) == (422, "invalid_request"), error
    assert [d["field"] for d in error["details"]] == [field]
    assert problem in error["details"][0]["problem"]
    for value in params.values():
        assert len(value) < 3 or value == "production" or value not in response["body"]  # a bad value is never echoed


@pytest.mark.parametrize(
    ("raw", "params"),
    [
        ("version=1", {"version": "1"}),
        ("alias=production", {"alias": "production"}),
        ("other=x&Version=abc", {"other": "x", "Version": "abc"}),  # names are case-sensitive; others are ignored
    ],
)
def test_good_and_unrelated_query_parameters_are_served(handler: Handler, raw: str, params: dict[str, str]) -> None:
    response = handler(_with_query(raw, params), LambdaContext())
    assert response["statusCode"] == 200, response["body"]
    assert (json.loads(response["body"])["model"], json.loads(response["body"])["version"]) == ("breast-cancer", 1)


def test_limits_on_rows_and_bytes(handler: Handler) -> None:
    row = records("breast-cancer", 1)[0]
    status, error, _ = call(handler, "POST", BC, {"instances": [row] * 51})
    assert (status, error["error"]) == (413, "too_many_rows")
    assert "at most 50" in error["message"]
    status, error, _ = call(handler, "POST", BC, raw_body=json.dumps({"instances": [row] * 40, "pad": "x" * 100_000}))
    assert (status, error["error"]) == (413, "body_too_large")
    status, error, _ = call(handler, "POST", BC, raw_body="[" + " " * 90_000 + "]", base64_body=True)
    assert status == 422  # under the limit once decoded; the base64 text is longer
    status, error, _ = call(handler, "POST", BC, raw_body="é" * 60_000)
    assert (status, error["error"]) == (413, "body_too_large")  # counted in bytes, not characters


def test_malformed_bodies_are_400_and_wrong_media_types_415(handler: Handler) -> None:
    event = load_event(body={"instances": []})
    event["body"], event["isBase64Encoded"] = "not base64!!", True
    response = handler(event, LambdaContext())
    assert (response["statusCode"], json.loads(response["body"])["error"]) == (400, "malformed_body")
    assert call(handler, "POST", BC, raw_body=b"\xff\xfe", base64_body=True)[1]["error"] == "malformed_body"
    assert call(handler, "POST", BC, raw_body='{"instances": [')[0:2][0] == 400
    deep = "[" * 40_000 + "]" * 40_000
    status, error, _ = call(handler, "POST", BC, raw_body=deep)
    assert (status, error["error"]) == (400, "malformed_json")
    status, error, _ = call(handler, "POST", BC, raw_body="instances=1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert (status, error["error"]) == (415, "unsupported_media_type")
    event = load_event(body={"instances": []})
    event["body"] = 12
    assert handler(event, LambdaContext())["statusCode"] == 400


def test_bodies_without_a_content_type_are_read_as_json(handler: Handler) -> None:
    status, body, _ = call(handler, "POST", BC, {"instances": records("breast-cancer", 1)}, headers={"Host": "example"})
    assert status == 200, body
    status, body, _ = call(handler, "POST", BC, raw_body="", headers={"Content-Type": "text/plain"})
    assert (status, body["details"]) == (422, [{"row": None, "field": "body", "problem": "the request body is missing"}])
    status, body, _ = call(handler, "POST", BC, raw_body="x" * 140_000, base64_body=True)
    assert (status, body["error"]) == (413, "body_too_large")  # refused before decoding


def test_sample_events_iam_jwt_base64_and_mixed_case_headers(handler: Handler) -> None:
    response = handler(load_event("http_api_v2_iam_post.json"), LambdaContext())
    error = json.loads(response["body"])
    assert (response["statusCode"], error["error"]) == (422, "invalid_input")  # the sample names one feature of 30
    assert {"row": 0, "field": "mean texture", "problem": "missing"} in error["details"]
    response = handler(load_event("http_api_v2_jwt_base64_post.json"), LambdaContext())
    assert response["statusCode"] == 422  # {"instances": []}, base64-encoded
    assert json.loads(response["body"])["details"] == [{"row": None, "field": "instances", "problem": "empty"}]
    rows = records("breast-cancer", 2)
    event = load_event("http_api_v2_jwt_base64_post.json", body={"instances": rows}, base64_body=True)
    assert event["headers"]["Content-Type"].startswith("Application/JSON")
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["version"] == 1


def test_a_misconfigured_function_answers_500_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        return EndpointSettings.from_env({"MLOPS_MAX_ROWS": "many"})

    handler = create_handler(broken)  # type: ignore[arg-type]
    response = handler(load_event(body={"instances": []}), LambdaContext())
    error = json.loads(response["body"])
    assert (response["statusCode"], error["error"]) == (500, "misconfigured")
    assert "MLOPS_MAX_ROWS" in error["message"]
    with pytest.raises(ConfigurationError):
        broken()


def test_a_deployed_function_without_its_bucket_answers_500_naming_it() -> None:
    """Inside Lambda, a missing MLOPS_BUCKET is named, not replaced by a default bucket that is someone else's."""

    def deployed() -> Any:
        return EndpointSettings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "inference", "MLOPS_TABLE": "registry"})

    response = create_handler(deployed)(load_event(body={"instances": []}), LambdaContext())  # type: ignore[arg-type]
    error = json.loads(response["body"])
    assert (response["statusCode"], error["error"]) == (500, "misconfigured")
    assert error["message"].startswith("MLOPS_BUCKET not set")


def test_an_unexpected_failure_is_500_without_a_traceback(served: Backends) -> None:
    ep = endpoint(served, Clock())

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    ep.predict = explode  # type: ignore[method-assign]
    status, error, _ = call(handler_for(ep), "POST", BC, {"instances": records("breast-cancer", 1)})
    assert (status, error["error"]) == (500, "internal_error")
    assert "Traceback" not in json.dumps(error)


def test_log_lines_carry_the_request_id_as_correlation_id(served: Backends) -> None:
    ep = endpoint(served, Clock())

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    ep.predict = explode  # type: ignore[method-assign]
    handler = handler_for(ep)
    event = load_event(method="POST", path=BC, body={"instances": records("breast-cancer", 1)})
    anonymous = load_event(method="POST", path=BC, body={"instances": records("breast-cancer", 1)})
    del anonymous["requestContext"]["requestId"]
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # the Logger's handler kept the stdout of import time
    try:
        handler(event, LambdaContext())
        handler(anonymous, LambdaContext())
    finally:
        logger.registered_handler.setStream(previous)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in logged] == ["unhandled error", "unhandled error"]
    assert logged[0]["correlation_id"] == event["requestContext"]["requestId"]
    assert logged[1].get("correlation_id") is None  # not the previous request's


# -- metadata, health, OpenAPI --------------------------------------------------------------------------------------


def test_metadata_health_and_openapi(handler: Handler, trained_models: dict[str, TrainedModel]) -> None:
    status, meta, _ = call(handler, "GET", "/v2/models/wine")
    assert status == 200
    assert meta["name"] == "wine"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in meta["inputs"]] == trained_models["wine"].record.signature.feature_names
    assert {i["datatype"] for i in meta["inputs"]} == {"FP32"}
    assert meta["outputs"] == [
        {"name": "predictions", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
    ]
    status, meta, _ = call(handler, "GET", "/v2/models/diabetes/versions/1")
    assert status == 200
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["sex"] == "BYTES"
    assert meta["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    assert call(handler, "GET", "/v2/models/wine/ready")[:2] == (200, {"name": "wine", "ready": True})
    assert call(handler, "GET", "/v2/models/wine/versions/1/ready")[:2] == (200, {"name": "wine", "ready": True})
    assert call(handler, "GET", "/v2/models/wine/versions/2/ready")[0] == 404
    assert call(handler, "GET", "/v2/health/live")[:2] == (200, {"live": True})
    assert call(handler, "GET", "/v2/health/ready")[:2] == (200, {"ready": True})
    assert call(handler, "GET", "/v2")[1]["name"] == "serverless-mlops"
    status, document, _ = call(handler, "GET", "/openapi.json")
    assert status == 200
    assert {"/v1/models/{name}/predict", "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"} <= set(document["paths"])
    predict = document["paths"]["/v1/models/{name}/predict"]["post"]
    assert {p["name"] for p in predict["parameters"]} == {"name", "version", "alias"}
    query = {p["name"]: p for p in predict["parameters"] if p["in"] == "query"}
    assert {name: p["required"] for name, p in query.items()} == {"version": False, "alias": False}
    assert {"type": "integer", "minimum": 1} in query["version"]["schema"]["anyOf"]
    assert {"type": "string", "maxLength": 64} in query["alias"]["schema"]["anyOf"]
    assert "alias" in query["alias"]["description"]
    assert {"400", "404", "413", "415", "422", "503"} <= set(predict["responses"])
    assert {"PredictRequest", "PredictResponse", "ErrorResponse", "InferRequest"} <= set(document["components"]["schemas"])
    undocumented = [(m, p) for p, ops in document["paths"].items() for m, op in ops.items() if "200" not in op["responses"]]
    assert undocumented == []
    assert predict["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PredictResponse"}


# -- observability -------------------------------------------------------------------------------------------------


def test_metrics_latency_rows_version_and_errors_by_code(handler: Handler, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    call(handler, "POST", BC, {"instances": records("breast-cancer", 3)})
    call(handler, "POST", "/v1/models/nope/predict", {"instances": []})
    emitted = emf_records(capsys.readouterr().out)
    served, failed = emitted[-2], emitted[-1]
    assert served["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service"]]
    assert (served["model"], served["Rows"], served["ModelVersion"]) == ("breast-cancer", [3.0], [1.0])
    assert served["Latency"][0] > 0
    assert served["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ServerlessMlops"
    assert (failed["code"], failed["Errors"]) == ("not_found", [1.0])
    assert "model" not in failed


def test_payload_values_never_reach_the_logs(
    handler: Handler, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("aws_lambda_powertools").setLevel(logging.DEBUG)
    try:
        rows = records("breast-cancer", 2)
        rows[0]["mean radius"] = 17.123456789
        rows[1]["mean texture"] = "SENTINEL-VALUE"
        call(handler, "POST", BC, {"instances": rows[:1]})
        call(handler, "POST", BC, {"instances": rows})
        call(handler, "POST", BC, {"inputs": [list(rows[0].values())]})
    finally:
        logging.getLogger("aws_lambda_powertools").setLevel(logging.NOTSET)
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        assert "17.123456789" not in text
        assert "SENTINEL-VALUE" not in text
    assert caplog.text  # the debug logs were on, so the check above means something


# -- inputs that once got a 500 (issue 15): each class, on every route it reaches ------------------------------------

HUGE = "9" * 5_000  # Python's int() refuses more than 4,300 digits with a ValueError that is not a JSONDecodeError


@pytest.mark.parametrize("sign", ["", "-"])
def test_an_integer_of_thousands_of_digits_is_a_value_out_of_range_not_a_500(handler: Handler, sign: str) -> None:
    row = json.dumps(records("diabetes", 1)[0]).replace('"age": ', f'"age": {sign}{HUGE}, "was": ', 1)
    event = load_event(method="POST", path="/v1/models/diabetes/predict", raw_body='{"instances": [' + row + "]}")
    response = handler(event, LambdaContext())
    error = json.loads(response["body"])
    assert (response["statusCode"], error["error"]) == (422, "invalid_input")
    assert {(d["row"], d["field"]) for d in error["details"]} == {(0, "age")}
    names = len(records("diabetes", 1)[0])
    data = f"{sign}{HUGE}" + ", 1.0" * (names - 1)
    tensor = '{"inputs": [{"name": "x", "shape": [1, ' + str(names) + '], "datatype": "FP64", "data": [' + data + "]}]}"
    response = handler(load_event(method="POST", path="/v2/models/diabetes/infer", raw_body=tensor), LambdaContext())
    assert response["statusCode"] == 422, response["body"]
    assert json.loads(response["body"])["error"] == "invalid_input"


@pytest.mark.parametrize("version", ["²", "١", "１", "x1", "01", "+1", " 1", "1.0", "0", "1000000000"])
@pytest.mark.parametrize(
    "route",
    ["/v2/models/breast-cancer/versions/{}/infer", "/v2/models/breast-cancer/versions/{}", "/v2/models/breast-cancer/versions/{}/ready"],
)
def test_a_path_version_is_ascii_digits_or_a_422_naming_it(handler: Handler, version: str, route: str) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]} if route.endswith("/infer") else None
    status, error, _ = call(handler, "POST" if body else "GET", route.format(version), body)
    assert status == 422, error
    assert error["error"] == "invalid_input"
    assert [d["field"] for d in error["details"]] == ["version"]
    assert "ASCII digits" in error["message"]


@pytest.mark.parametrize("version", ["1.0", "+1", " 1", "１", "١", "²", "01", "1e0"])
def test_a_query_version_is_ascii_digits_or_a_422_naming_it(handler: Handler, version: str) -> None:
    status, error, _ = call(handler, "POST", BC, {"instances": records("breast-cancer", 1)}, query={"version": version})
    assert status == 422, error
    assert [d["field"] for d in error["details"]] == ["version"]
    status, answer, _ = call(handler, "POST", BC, {"instances": records("breast-cancer", 1)}, query={"version": "1"})
    assert (status, answer["version"]) == (200, 1)
