"""The inference Lambda: an HTTP API (payload 2.0) in front of :class:`serverless_mlops.serving.endpoint.Endpoint`.

Routes (OpenAPI document at ``GET /openapi.json``): ``POST /v1/models/{name}/predict`` (``?version=`` or
``?alias=``), and the Open Inference Protocol (KServe V2): ``POST /v2/models/{name}[/versions/{v}]/infer``,
``GET /v2/models/{name}[/versions/{v}]``, ``GET /v2/models/{name}[/versions/{v}]/ready``, ``GET /v2/health/live``,
``GET /v2/health/ready``, ``GET /v2``.

This module parses and answers; every decision is the endpoint's. Errors are mapped to answers here and only here:
every client mistake is a 4xx ``{"error": CODE, "message", "details": [{"row", "field", "problem"}]}``; whatever
cannot be answered because the registry or S3 failed (a model that cannot load, a registry read that timed out or
was refused, on any route) is a 503 in the same shape with ``Retry-After``, never a 500; payload
values never reach a log (``repr=False`` on payload fields, no event logging, no response capture in traces).
Settings are read, and the endpoint built, on the first request, not at import.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from functions.observability import observability
from serverless_mlops.aws import SERVICE_ERRORS
from serverless_mlops.errors import InvalidInputError, NotFoundError
from serverless_mlops.serving.endpoint import (
    ConfigurationError,
    Endpoint,
    ErrorResponse,
    InferRequest,
    InferResponse,
    Liveness,
    ModelMetadata,
    ModelReadiness,
    PayloadTooLargeError,
    PredictQuery,
    PredictRequest,
    PredictResponse,
    Readiness,
    UnavailableError,
    details_from_validation,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
EndpointProvider = Callable[[], Endpoint]

JSON = "application/json"
SERVICE_RETRY_AFTER = 5  # seconds, on a 503 for a failed registry or S3 call (each try costs at most a small budget)
TITLE = "serverless-mlops inference"
API_VERSION = "1.0"

obs = observability("inference")
logger, metrics = obs.logger, obs.metrics
# Health, metadata and OpenAPI requests publish no metric on purpose; powertools would warn about each of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


class PowertoolsTelemetry:
    """The endpoint's failure reports as log lines and EMF counts (``ModelLoadFailures``: service dimension only)."""

    def model_load_failed(self, model: str, reason: str) -> None:
        logger.warning("model failed to load; serving the last good version if one is loaded", extra={"model": model, "reason": reason})
        obs.count("ModelLoadFailures")

    def capture_failed(self, what: str, rows: int, reason: str) -> None:
        logger.warning(f"data capture {what}", extra={"rows": rows, "reason": reason})
        obs.count("CaptureFlushFailures" if what == "flush" else "CaptureRowsDropped", rows if what == "dropped" else 1)


@functools.cache
def default_endpoint() -> Endpoint:
    """The execution environment's endpoint, built from the environment on the first request."""
    return Endpoint.from_env(telemetry=PowertoolsTelemetry())


# -- answers ---------------------------------------------------------------------------------------------------------
def error_response(
    status: int, code: str, message: str, details: Iterable[Mapping[str, Any]] = (), headers: Mapping[str, str] | None = None
) -> Response[str]:
    """The one error shape, counted by code."""
    _count_error(code)
    body = json.dumps({"error": code, "message": message, "details": [dict(d) for d in details]})
    return Response(status_code=status, content_type=JSON, body=body, headers=dict(headers or {}))


def _count_error(code: str) -> None:
    """Errors by code: the invocation's metric record gets the ``code`` dimension (an error has no ``model``)."""
    metrics.add_dimension(name="code", value=code)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)


ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    status: {"description": text, "content": {JSON: {"model": ErrorResponse}}}
    for status, text in {
        400: "malformed body (not JSON, bad base64)",
        404: "unknown model, version, alias or route",
        413: "too many rows or bytes",
        415: "body is not JSON",
        422: "invalid request or feature values (details name row and field)",
        503: "the model, the registry or the artifact store is unavailable right now (Retry-After)",
    }.items()
}


def responses(model: type[Any], description: str) -> dict[int, OpenAPIResponse]:
    """A route's documented answers: ``model`` on success, the error shape otherwise."""
    return {200: {"description": description, "content": {JSON: {"model": model}}}, **ERROR_RESPONSES}


def _plain(status: int, code: str, message: str) -> dict[str, Any]:
    """An error answer built before routing (body size, encoding, media type), in the same shape."""
    _count_error(code)
    body = {"error": code, "message": message, "details": [{"row": None, "field": None, "problem": message}]}
    return {"statusCode": status, "headers": {"Content-Type": JSON}, "body": json.dumps(body)}


def prepare(event: dict[str, Any], max_body_bytes: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Check the body before routing: size, base64 (decoded here, so routes see text) and JSON media type.

    Returns the event to route (a shallow copy when it had to change) or the error answer.
    """
    body = event.get("body")
    if body is None:
        return event, None
    if not isinstance(body, str):
        return event, _plain(400, "malformed_body", "the body must be text (or base64 text with isBase64Encoded)")
    if len(body) > max_body_bytes * 4 // 3 + 4:
        return event, _too_large(max_body_bytes)
    changed: dict[str, Any] = {}
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
            body = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            return event, _plain(400, "malformed_body", "isBase64Encoded is true but the body is not base64-encoded UTF-8")
        changed.update(body=body, isBase64Encoded=False)
        size = len(raw)
    else:
        size = len(body) if len(body) * 4 <= max_body_bytes else len(body.encode("utf-8", "surrogatepass"))
    if size > max_body_bytes:
        return event, _too_large(max_body_bytes)
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == "content-type" and isinstance(value, str):
            media = value.split(";", 1)[0].strip().lower()
            if body and media and media != JSON and not media.endswith("+json"):
                return event, _plain(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json")
            if not value.startswith(JSON):  # JSON in another spelling: let the parser see the canonical one
                changed["headers"] = {**{k: v for k, v in headers.items() if k.lower() != "content-type"}, "content-type": JSON}
            break
    return ({**event, **changed} if changed else event), None


def _too_large(limit: int) -> dict[str, Any]:
    return _plain(413, "body_too_large", f"the body exceeds {limit:,} bytes (MLOPS_MAX_BODY_BYTES)")


# -- the app ---------------------------------------------------------------------------------------------------------
PREDICT_PATH = "/v1/models/{name}/predict"
_served = threading.local()


def predict_query(event: Mapping[str, Any]) -> PredictQuery:
    """``?version=`` and ``?alias=`` of a predict request, validated by :class:`PredictQuery` (the model the OpenAPI
    document declares them from); a bad one raises the same RequestValidationError, naming it, as the route's own
    parameters would.

    Read here rather than declared on the route: powertools' validation re-derives, on every request, whether each
    declared query parameter is a scalar, which cost more than the prediction itself. A request without a query
    string costs nothing here.
    """
    params = event.get("queryStringParameters")
    if not params:
        return NO_QUERY
    given = {name: params[name] for name in PredictQuery.model_fields if name in params}
    if not given:
        return NO_QUERY
    errors = [_repeated(name) for name, value in given.items() if isinstance(value, str) and "," in value and _given_twice(event, name)]
    if not errors:
        try:
            return PredictQuery.model_validate(given)
        except ValidationError as exc:  # the input itself stays out of the errors (it never reaches an answer or a log)
            errors = [{"type": err["type"], "loc": ("query", *err["loc"]), "msg": err["msg"]} for err in exc.errors(include_url=False)]
    raise RequestValidationError(errors)


NO_QUERY = PredictQuery()


def _given_twice(event: Mapping[str, Any], name: str) -> bool:
    """HTTP API joins a repeated parameter's values with commas; the raw query string tells one from a literal comma."""
    raw = event.get("rawQueryString")
    return isinstance(raw, str) and sum(key == name for key, _ in parse_qsl(raw, keep_blank_values=True)) > 1


def _repeated(name: str) -> dict[str, Any]:
    return {"type": "repeated", "loc": ("query", name), "msg": f"given more than once; give {name} once"}


def document_query(document: dict[str, Any], path: str, method: str, model: type[PredictQuery]) -> None:
    """Declare ``model``'s fields as the query parameters of ``method path`` in an OpenAPI document."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    operation = document["paths"][path][method]
    operation.setdefault("parameters", []).extend(
        {"description": field.get("description"), "required": name in required, "schema": field, "name": name, "in": "query"}
        for name, field in schema["properties"].items()
    )


def _record_served(model: str, version: int, rows: int) -> None:
    metrics.add_dimension(name="model", value=model)
    metrics.add_metric(name="Rows", unit=MetricUnit.Count, value=rows)
    metrics.add_metric(name="ModelVersion", unit=MetricUnit.NoUnit, value=version)
    _served.model = model


_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def json_body(text: str) -> Any:
    """Parse a request body: msgspec reads valid JSON about 4× faster than ``json.loads``; whatever it refuses goes to
    ``json.loads``, which accepts NaN, ±Infinity and numbers beyond float range (validation then names the row and
    field) and says where malformed JSON breaks."""
    try:
        return _decoder.decode(text)
    except msgspec.MsgspecError:
        return json.loads(text, parse_int=_json_int)


# Python refuses to turn more than 4,300 digits into an int (a ValueError that is not a JSONDecodeError, so it was a
# 500); such a number is far beyond any float feature's range, so it becomes ±inf, which validation names by row and field
_INT_DIGITS = 4_000


def _json_int(text: str) -> int | float:
    return int(text) if len(text) <= _INT_DIGITS else float(text)


def json_text(value: Any) -> str:
    """Serialize an answer (already JSON-shaped by response validation): msgspec, about 10× faster than the
    resolver's default ``json.dumps``; non-ASCII text stays UTF-8 rather than ``\\u`` escapes."""
    return _encoder.encode(value).decode()


def build_app(endpoint: EndpointProvider = default_endpoint) -> APIGatewayHttpResolver:
    """The routes over ``endpoint`` (a provider, called on each request, so the endpoint is built lazily)."""
    app = APIGatewayHttpResolver(
        enable_validation=True,
        debug=False,
        response_validation_error_http_code=500,
        json_body_deserializer=json_body,
        serializer=json_text,
    )

    def request_id() -> str | None:
        context = app.current_event.raw_event.get("requestContext") or {}
        return context.get("requestId")

    @app.post("/v1/models/<name>/predict", summary="Predict", responses=responses(PredictResponse, "predictions"), tags=["v1"])
    def predict(name: str, body: PredictRequest) -> PredictResponse:
        query = predict_query(app.current_event.raw_event)
        result = endpoint().predict(name, body, version=query.version, alias=query.alias, request_id=request_id())
        _record_served(name, result.version, len(result.predictions))
        return result

    @app.post(
        "/v2/models/<name>/infer",
        summary="Infer (Open Inference Protocol)",
        responses=responses(InferResponse, "output tensors"),
        tags=["v2"],
    )
    def infer(name: str, body: InferRequest) -> InferResponse:
        result = endpoint().infer(name, body, request_id=request_id())
        _record_served(name, int(result.model_version), len(result.outputs[0].data) if result.outputs else 0)
        return result

    @app.post(
        "/v2/models/<name>/versions/<version>/infer",
        summary="Infer with one version",
        responses=responses(InferResponse, "output tensors"),
        tags=["v2"],
    )
    def infer_version(name: str, version: str, body: InferRequest) -> InferResponse:
        result = endpoint().infer(name, body, version=version, request_id=request_id())
        _record_served(name, int(result.model_version), len(result.outputs[0].data) if result.outputs else 0)
        return result

    @app.get("/v2/models/<name>", summary="Model metadata", responses=responses(ModelMetadata, "metadata"), tags=["v2"])
    def model_metadata(name: str) -> ModelMetadata:
        return endpoint().metadata(name)

    @app.get(
        "/v2/models/<name>/versions/<version>",
        summary="Model version metadata",
        responses=responses(ModelMetadata, "metadata"),
        tags=["v2"],
    )
    def version_metadata(name: str, version: str) -> ModelMetadata:
        return endpoint().metadata(name, version=version)

    @app.get(
        "/v2/models/<name>/ready",
        summary="Model readiness (loads it)",
        responses=responses(ModelReadiness, "the model is loaded"),
        tags=["v2"],
    )
    def model_ready(name: str) -> ModelReadiness:
        return endpoint().model_ready(name)

    @app.get(
        "/v2/models/<name>/versions/<version>/ready",
        summary="Model version readiness",
        responses=responses(ModelReadiness, "the model is loaded"),
        tags=["v2"],
    )
    def version_ready(name: str, version: str) -> ModelReadiness:
        return endpoint().model_ready(name, version=version)

    @app.get("/v2/health/live", summary="Liveness", tags=["v2"])
    def live() -> Liveness:
        return Liveness(live=True)

    @app.get(
        "/v2/health/ready",
        summary="Readiness",
        responses={
            200: {"description": "ready", "content": {JSON: {"model": Readiness}}},
            503: {"description": "not ready (Retry-After)", "content": {JSON: {"model": Readiness}}},
        },
        tags=["v2"],
    )
    def ready() -> Response[Readiness]:
        readiness = endpoint().ready()
        if readiness.ready:
            return Response(status_code=200, content_type=JSON, body=readiness)
        return Response(status_code=503, content_type=JSON, body=readiness, headers={"Retry-After": str(SERVICE_RETRY_AFTER)})

    @app.get("/v2", summary="Server metadata", tags=["v2"])
    def server_metadata() -> dict[str, Any]:
        return {"name": "serverless-mlops", "version": API_VERSION, "extensions": []}

    @functools.cache
    def openapi_document() -> str:
        document = json.loads(app.get_openapi_json_schema(title=TITLE, version=API_VERSION, description=__doc__))
        document_query(document, PREDICT_PATH, "post", PredictQuery)
        return json.dumps(document, indent=2)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(status_code=200, content_type=JSON, body=openapi_document())

    # -- errors: the one mapping from exceptions to answers ------------------------------------------------------------
    def invalid_request(exc: RequestValidationError) -> Response[str]:
        code, message, details = details_from_validation(exc.errors())
        return error_response(400 if code == "malformed_json" else 422, code, message, details)

    def too_large(exc: PayloadTooLargeError) -> Response[str]:
        return error_response(413, exc.code, str(exc), exc.details)

    def invalid_input(exc: InvalidInputError) -> Response[str]:
        return error_response(422, exc.code, str(exc), exc.details)

    def not_found(exc: NotFoundError) -> Response[str]:
        return error_response(404, "not_found", str(exc))

    def unavailable(exc: UnavailableError) -> Response[str]:
        return error_response(503, exc.code, str(exc), headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})

    def service_failed(exc: Exception) -> Response[str]:
        # the exception's text can name the endpoint and the request: it goes to the log, not to the caller
        logger.warning("a registry or artifact store call failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        message = "the model registry or artifact store cannot be reached right now; try again later"
        return error_response(503, "service_unavailable", message, headers={"Retry-After": str(SERVICE_RETRY_AFTER)})

    def too_deep(exc: RecursionError) -> Response[str]:
        return error_response(400, "malformed_json", "the body is nested too deeply")

    def internal(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "the server failed to answer; the error is logged with this request's id")

    def no_route(exc: RouteNotFoundError) -> Response[str]:
        method, path = app.current_event.http_method, app.current_event.path
        return error_response(404, "route_not_found", f"no route for {method} {path[:200]}; see GET /openapi.json")

    handlers: dict[type[Exception], Callable[[Any], Response[str]]] = {
        RequestValidationError: invalid_request,
        PayloadTooLargeError: too_large,  # before InvalidInputError, its base: the most specific class wins
        InvalidInputError: invalid_input,
        NotFoundError: not_found,
        UnavailableError: unavailable,  # ModelUnavailableError among them
        **dict.fromkeys(SERVICE_ERRORS, service_failed),
        RecursionError: too_deep,
        RouteNotFoundError: no_route,
        Exception: internal,
    }
    for exception, answer in handlers.items():
        app.exception_handler(exception)(answer)
    return app


def create_handler(endpoint: EndpointProvider = default_endpoint) -> Handler:
    """A Lambda handler over ``endpoint`` with the standard decorator stack (tests pass their own endpoint)."""
    app = build_app(endpoint)

    # The correlation id is the request's id, set here rather than by correlation_id_path: powertools would evaluate
    # that JMESPath expression on every request, which costs as much as reading the key.
    @logger.inject_lambda_context(log_event=False)
    @metrics.log_metrics
    @obs.trace_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        request_context = event.get("requestContext")
        logger.set_correlation_id(request_context.get("requestId") if isinstance(request_context, dict) else None)
        try:
            limit = endpoint().settings.max_body_bytes
        except ConfigurationError as exc:
            logger.error(str(exc))
            return _plain(500, "misconfigured", str(exc))
        event, refused = prepare(event, limit)
        if refused is not None:
            return refused
        _served.model = None
        response: dict[str, Any] = app.resolve(event, context)
        if _served.model is not None:
            metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
        return response

    return handler


lambda_handler = create_handler()


def flush() -> list[str]:
    """Write the execution environment's buffered data capture now (``mlops serve`` calls this when it stops)."""
    if default_endpoint.cache_info().currsize == 0:
        return []
    return default_endpoint().flush()
