"""Parsing an HTTP API (payload 2.0) request into what the endpoint takes, and the client errors doing so can raise.

Before routing, :func:`check_body` enforces the body's rules (text, or base64 with ``isBase64Encoded``; at most
``MLOPS_MAX_BODY_BYTES``; JSON media type) and decodes base64, so routes see JSON text. :func:`json_body` decodes that
text, :func:`predict_query` reads ``?version=`` and ``?alias=`` into :class:`~serverless_mlops.serving.api_models.PredictQuery`,
and :func:`details_from_validation` turns pydantic-style validation errors into the error shape's details, naming the
row and field and never echoing a value.

Each error raised here is an :class:`~serverless_mlops.errors.InvalidInputError` with a stable ``code`` and details;
the handler's error map picks the status (400 malformed, 413 too large, 415 media type, 422 invalid).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from pydantic import ValidationError

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.serving.api_models import PredictQuery

JSON = "application/json"


class MalformedBodyError(InvalidInputError):
    """The body cannot be read as text: not a string, or ``isBase64Encoded`` with a body that is not base64 UTF-8 (400)."""


class PayloadTooLargeError(InvalidInputError):
    """The request is bigger than this endpoint accepts (413): too many rows, or too many bytes."""


class UnsupportedMediaTypeError(InvalidInputError):
    """The body is declared as something other than JSON (415)."""


def _body_error(cls: type[InvalidInputError], code: str, message: str) -> InvalidInputError:
    return cls(message, [{"row": None, "field": None, "problem": message}], code=code)


def _too_large(limit: int) -> InvalidInputError:
    return _body_error(PayloadTooLargeError, "body_too_large", f"the body exceeds {limit:,} bytes (MLOPS_MAX_BODY_BYTES)")


# -- the body, before routing ----------------------------------------------------------------------------------------
def check_body(event: dict[str, Any], max_body_bytes: int) -> dict[str, Any]:
    """The event to route: ``event`` itself, or a shallow copy with the base64 body decoded and a JSON content type in
    its canonical spelling. Raises :class:`MalformedBodyError`, :class:`PayloadTooLargeError` or
    :class:`UnsupportedMediaTypeError`."""
    body = event.get("body")
    if body is None:
        return event
    if not isinstance(body, str):
        raise _body_error(MalformedBodyError, "malformed_body", "the body must be text (or base64 text with isBase64Encoded)")
    if len(body) > max_body_bytes * 4 // 3 + 4:
        raise _too_large(max_body_bytes)
    changed: dict[str, Any] = {}
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
            body = raw.decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            message = "isBase64Encoded is true but the body is not base64-encoded UTF-8"
            raise _body_error(MalformedBodyError, "malformed_body", message) from exc
        changed.update(body=body, isBase64Encoded=False)
        size = len(raw)
    else:
        size = len(body) if len(body) * 4 <= max_body_bytes else len(body.encode("utf-8", "surrogatepass"))
    if size > max_body_bytes:
        raise _too_large(max_body_bytes)
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == "content-type" and isinstance(value, str):
            media = value.split(";", 1)[0].strip().lower()
            if body and media and media != JSON and not media.endswith("+json"):
                message = "send the body as JSON with Content-Type: application/json"
                raise _body_error(UnsupportedMediaTypeError, "unsupported_media_type", message)
            if not value.startswith(JSON):  # JSON in another spelling: let the parser see the canonical one
                changed["headers"] = {**{k: v for k, v in headers.items() if k.lower() != "content-type"}, "content-type": JSON}
            break
    return {**event, **changed} if changed else event


# -- the body's JSON -------------------------------------------------------------------------------------------------
_decoder = msgspec.json.Decoder()

# Python refuses to turn more than 4,300 digits into an int (a ValueError that is not a JSONDecodeError, so it was a
# 500); such a number is far beyond any float feature's range, so it becomes ±inf, which validation names by row and field
_INT_DIGITS = 4_000


def json_body(text: str) -> Any:
    """Parse a request body: msgspec reads valid JSON about 4× faster than ``json.loads``; whatever it refuses goes to
    ``json.loads``, which accepts NaN, ±Infinity and numbers beyond float range (validation then names the row and
    field) and says where malformed JSON breaks."""
    try:
        return _decoder.decode(text)
    except msgspec.MsgspecError:
        return json.loads(text, parse_int=_json_int)


def _json_int(text: str) -> int | float:
    return int(text) if len(text) <= _INT_DIGITS else float(text)


# -- the query string ------------------------------------------------------------------------------------------------
NO_QUERY = PredictQuery()


def predict_query(params: Mapping[str, str] | None, raw_query: str | None) -> PredictQuery:
    """``?version=`` and ``?alias=`` of a predict request (``params``: the event's ``queryStringParameters``;
    ``raw_query``: its ``rawQueryString``), validated by :class:`PredictQuery`, the model the OpenAPI document declares
    them from. A bad one raises :class:`InvalidInputError` (``invalid_request``) naming it.

    Read here rather than declared on the route: powertools' validation re-derives, on every request, whether each
    declared query parameter is a scalar, which cost more than the prediction itself. A request without a query
    string costs nothing here.
    """
    if not params:
        return NO_QUERY
    given = {name: params[name] for name in PredictQuery.model_fields if name in params}
    if not given:
        return NO_QUERY
    errors = [_repeated(name) for name, value in given.items() if isinstance(value, str) and "," in value and _given_twice(raw_query, name)]
    if not errors:
        try:
            return PredictQuery.model_validate(given)
        except ValidationError as exc:  # the input itself stays out of the errors (it never reaches an answer or a log)
            errors = [{"type": err["type"], "loc": ("query", *err["loc"]), "msg": err["msg"]} for err in exc.errors(include_url=False)]
    code, message, details = details_from_validation(errors)
    raise InvalidInputError(message, details, code=code)


def _given_twice(raw_query: str | None, name: str) -> bool:
    """HTTP API joins a repeated parameter's values with commas; the raw query string tells one from a literal comma."""
    return isinstance(raw_query, str) and sum(key == name for key, _ in parse_qsl(raw_query, keep_blank_values=True)) > 1


def _repeated(name: str) -> dict[str, Any]:
    return {"type": "repeated", "loc": ("query", name), "msg": f"given more than once; give {name} once"}


# -- validation errors from the request parser -----------------------------------------------------------------------
def details_from_validation(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
    """Pydantic-style errors (``loc``, ``type``, ``msg``) → (code, message, details), never echoing input values."""
    details: list[dict[str, Any]] = []
    code = "invalid_request"
    for err in errors[:50]:
        loc = list(err.get("loc", ()))
        kind = err.get("type", "")
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        source = loc[0] if loc else None
        path = loc[1:] if source in ("body", "query", "path", "header") else loc
        if kind == "json_invalid":
            code = "malformed_json"
            reason = (err.get("ctx") or {}).get("error", "not JSON")
            position = f" at character {path[0]}" if path and isinstance(path[0], int) else ""
            details.append({"row": None, "field": None, "problem": f"the body is not valid JSON{position}: {reason}"})
            continue
        row: int | None = None
        if len(path) >= 2 and path[0] in ("instances", "inputs", "ids", "labels") and isinstance(path[1], int):
            row = path[1]
            field: str | None = ".".join(str(p) for p in [path[0], *path[2:]])
        else:
            field = ".".join(str(p) for p in path) or (str(source) if source else None)
        if kind == "missing":
            message = "the request body is missing" if source == "body" and not path else "required field is missing"
        elif kind == "extra_forbidden":
            message = "unknown field"
        details.append({"row": row, "field": field, "problem": message})
    summary = "the request body is not valid JSON" if code == "malformed_json" else f"{len(details)} problem(s) in the request"
    return code, summary, details


def request_id(event: Mapping[str, Any]) -> str | None:
    """The HTTP API's id of this request (``requestContext.requestId``), which captured rows carry."""
    context = event.get("requestContext") or {}
    return context.get("requestId")


ROUTING_HEADER = "x-routing-key"
VERSION_HEADER = "x-model-version"


def routing_key(event: Mapping[str, Any]) -> str | None:
    """The caller's ``x-routing-key`` (HTTP API lower-cases header names), else the request's id: what a rollout
    routes by, so one caller sticks to one version (:mod:`serverless_mlops.serving.routing`)."""
    headers = event.get("headers") or {}
    return headers.get(ROUTING_HEADER) or request_id(event)
