"""The inference Lambda's entry point: the HTTP API (payload 2.0) app, composed of the v1 routes
(:mod:`functions.inference.routes_v1`) and the Open Inference Protocol routes (:mod:`functions.inference.routes_v2`),
answering errors through one map (:mod:`functions.inference.error_map`), with the standard decorator stack
(:mod:`functions.inference.telemetry`).

Every decision is :class:`serverless_mlops.serving.endpoint.Endpoint`'s, parsing the request included
(:mod:`serverless_mlops.serving.request_parsing`). Settings are read, and the endpoint built, on the first request,
not at import. Payload values never reach a log (``repr=False`` on payload fields, no event logging, no response
capture in traces). The OpenAPI document is at ``GET /openapi.json``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from functions.inference import error_map, snapstart
from functions.inference.routes_labels import labels_router
from functions.inference.routes_v1 import document_v1, v1_router
from functions.inference.routes_v2 import API_VERSION, v2_router
from functions.inference.telemetry import PowertoolsTelemetry, logger, metrics, obs, record_latency, served_version, start_request
from serverless_mlops.errors import InvalidInputError
from serverless_mlops.serving.endpoint import Endpoint, EndpointProvider
from serverless_mlops.serving.request_parsing import JSON, VERSION_HEADER, check_body, json_body
from serverless_mlops.settings import ConfigurationError

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

TITLE = "serverless-mlops inference"
# The OpenAPI document's description (a contract: docs/openapi.json holds it as written)
DESCRIPTION = """Predictions from registered scikit-learn models, served as verified ONNX by serverless-mlops.

Routes: ``POST /v1/models/{name}/predict`` (``?version=`` or ``?alias=``, default alias ``production``; each row's
prediction id in ``ids``), ``POST /v1/models/{name}/labels`` (ground truth by prediction id, up to 1,000 a request), and the Open
Inference Protocol (KServe V2): ``POST /v2/models/{name}[/versions/{v}]/infer``, ``GET /v2/models/{name}[/versions/{v}]``,
``GET /v2/models/{name}[/versions/{v}]/ready``, ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2``.

Every client mistake is a 4xx ``{"error": CODE, "message", "details": [{"row", "field", "problem"}]}``. Whatever
cannot be answered because the registry or S3 failed (a model that cannot load, a registry read that timed out or
was refused, on any route) is a 503 in the same shape with ``Retry-After``, never a 500. Payload values never appear
in answers or logs.
"""


@functools.cache
def default_endpoint() -> Endpoint:
    """The execution environment's endpoint, built from the environment on the first request."""
    return Endpoint.from_env(telemetry=PowertoolsTelemetry())


_encoder = msgspec.json.Encoder()


def json_text(value: Any) -> str:
    """Serialize an answer (already JSON-shaped by response validation): msgspec, about 10× faster than the
    resolver's default ``json.dumps``; non-ASCII text stays UTF-8 rather than ``\\u`` escapes."""
    return _encoder.encode(value).decode()


def build_api(endpoint: EndpointProvider = default_endpoint) -> APIGatewayHttpResolver:
    """The inference HTTP API over ``endpoint`` (a provider, called on each request, so the endpoint is built lazily):
    the v1 and V2 routers, ``GET /openapi.json`` and the error map."""
    app = APIGatewayHttpResolver(
        enable_validation=True,
        debug=False,
        response_validation_error_http_code=500,
        json_body_deserializer=json_body,
        serializer=json_text,
    )
    app.include_router(v1_router(endpoint))
    app.include_router(v2_router(endpoint))
    app.include_router(labels_router(endpoint))  # issue 18: ground truth by prediction id

    @functools.cache
    def openapi_document() -> str:
        document = json.loads(app.get_openapi_json_schema(title=TITLE, version=API_VERSION, description=DESCRIPTION))
        document_v1(document)
        return json.dumps(document, indent=2)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(status_code=200, content_type=JSON, body=openapi_document())

    error_map.install(app)
    return app


def create_handler(endpoint: EndpointProvider = default_endpoint) -> Handler:
    """A Lambda handler over ``endpoint`` with the standard decorator stack (tests pass their own endpoint)."""
    app = build_api(endpoint)

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
            return error_map.plain(500, "misconfigured", str(exc))
        try:
            event = check_body(event, limit)
        except InvalidInputError as exc:
            return error_map.refused_before_routing(exc)
        start_request()
        response: dict[str, Any] = app.resolve(event, context)
        if (version := served_version()) is not None:  # which version answered: in the body's field and this header
            response.setdefault("headers", {})[VERSION_HEADER] = str(version)
        record_latency((time.perf_counter() - started) * 1000)
        return response

    return handler


lambda_handler = create_handler()
# with SnapStart, the served models are loaded before the snapshot and no client is in it (functions/inference/snapstart.py)
snapstart.register(default_endpoint)


def flush() -> list[str]:
    """Write the execution environment's buffered data capture now (``mlops serve`` calls this when it stops)."""
    if default_endpoint.cache_info().currsize == 0:
        return []
    return default_endpoint().flush()
