"""The inference API's error map: every exception the routes (or the checks before routing) raise → one answer.

Every client mistake is a 4xx ``{"error": CODE, "message", "details": [{"row", "field", "problem"}]}``; whatever cannot
be answered because the registry or S3 failed (a model that cannot load, a registry read that timed out or was
refused, on any route) is a 503 in the same shape with ``Retry-After``, never a 500. Messages never echo payload
values, and an exception's own text about a failed dependency goes to the log, not to the caller. Each answer is
counted by code (``Errors``). :data:`ERROR_RESPONSES` documents the same answers in the OpenAPI document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from functions.inference.telemetry import count_error, logger
from serverless_mlops.aws import SERVICE_ERRORS
from serverless_mlops.errors import InvalidInputError, NotFoundError
from serverless_mlops.quality.label_rows import TooManyLabelsError
from serverless_mlops.serving.api_models import ErrorResponse
from serverless_mlops.serving.model_cache import UnavailableError
from serverless_mlops.serving.request_parsing import (
    JSON,
    MalformedBodyError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    details_from_validation,
)

SERVICE_RETRY_AFTER = 5  # seconds, on a 503 for a failed registry or S3 call (each try costs at most a small budget)

# A client's invalid input by class: the most specific class wins (InvalidInputError, the base, is 422)
CLIENT_STATUS: dict[type[InvalidInputError], int] = {
    MalformedBodyError: 400,
    PayloadTooLargeError: 413,
    TooManyLabelsError: 413,
    UnsupportedMediaTypeError: 415,
    InvalidInputError: 422,
}

ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    status: {"description": text, "content": {JSON: {"model": ErrorResponse}}}
    for status, text in {
        400: "malformed body (not JSON, bad base64)",
        404: "unknown model, version, alias or route",
        413: "too many rows, labels or bytes",
        415: "body is not JSON",
        422: "invalid request or feature values (details name row and field)",
        503: "the model, the registry or the artifact store is unavailable right now (Retry-After)",
    }.items()
}


def responses(model: type[Any], description: str) -> dict[int, OpenAPIResponse]:
    """A route's documented answers: ``model`` on success, the error shape otherwise."""
    return {200: {"description": description, "content": {JSON: {"model": model}}}, **ERROR_RESPONSES}


def error_response(
    status: int, code: str, message: str, details: Iterable[Mapping[str, Any]] = (), headers: Mapping[str, str] | None = None
) -> Response[str]:
    """The one error shape, counted by code."""
    count_error(code)
    body = json.dumps({"error": code, "message": message, "details": [dict(d) for d in details]})
    return Response(status_code=status, content_type=JSON, body=body, headers=dict(headers or {}))


def plain(status: int, code: str, message: str) -> dict[str, Any]:
    """An error answer built before routing (settings, body size, encoding, media type), in the same shape."""
    count_error(code)
    body = {"error": code, "message": message, "details": [{"row": None, "field": None, "problem": message}]}
    return {"statusCode": status, "headers": {"Content-Type": JSON}, "body": json.dumps(body)}


def client_status(exc: InvalidInputError) -> int:
    return next(CLIENT_STATUS[cls] for cls in type(exc).__mro__ if cls in CLIENT_STATUS)


def refused_before_routing(exc: InvalidInputError) -> dict[str, Any]:
    """The answer to a body refused before routing (see :func:`serverless_mlops.serving.request_parsing.check_body`)."""
    return plain(client_status(exc), exc.code, str(exc))


def install(app: APIGatewayHttpResolver) -> None:
    """Register the one mapping from exceptions to answers on ``app``."""

    def invalid_request(exc: RequestValidationError) -> Response[str]:
        code, message, details = details_from_validation(exc.errors())
        return error_response(400 if code == "malformed_json" else 422, code, message, details)

    def invalid_input(exc: InvalidInputError) -> Response[str]:
        return error_response(client_status(exc), exc.code, str(exc), exc.details)

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
        InvalidInputError: invalid_input,  # PayloadTooLargeError among them: CLIENT_STATUS picks the status
        NotFoundError: not_found,
        UnavailableError: unavailable,  # ModelUnavailableError among them
        **dict.fromkeys(SERVICE_ERRORS, service_failed),
        RecursionError: too_deep,
        RouteNotFoundError: no_route,
        Exception: internal,
    }
    for exception, answer in handlers.items():
        app.exception_handler(exception)(answer)
