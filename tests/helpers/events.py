"""The sample AWS events in ``tests/events/*.json`` and one helper to load and adapt them.

- ``http_api_v2_iam_post.json``: HTTP API payload 2.0, IAM-authorized, ``POST /v1/models/breast-cancer/predict``.
- ``http_api_v2_jwt_base64_post.json``: the same route with a JWT authorizer, a base64 body, mixed-case header names
  and values, and ``?alias=production``.
- ``eventbridge_scheduled.json``: an EventBridge rule's scheduled event (``detail`` an object).
- ``eventbridge_scheduler.json``: an EventBridge Scheduler event (``detail`` a JSON string).

Also the Lambda context powertools reads, and the metrics (EMF) it prints.
"""

from __future__ import annotations

import base64
import copy
import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

EVENTS = Path(__file__).resolve().parent.parent / "events"  # tests/events: the JSON samples, no code


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def load_event(
    name: str = "http_api_v2_iam_post.json",
    *,
    method: str | None = None,
    path: str | None = None,
    body: Any = None,
    raw_body: str | bytes | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A fresh copy of a sample event, adapted: ``body`` is JSON-encoded (``raw_body`` is sent as is), ``base64_body``
    encodes it as API Gateway does for binary media types; ``headers`` replace the sample's."""
    event = copy.deepcopy(_load(name))
    if method is not None:
        event["requestContext"]["http"]["method"] = method
    if path is not None:
        event["rawPath"] = path
        event["requestContext"]["http"]["path"] = path
    if query is not None:
        event["rawQueryString"] = urlencode(query)
        event["queryStringParameters"] = dict(query)
        if not query:
            event.pop("queryStringParameters")
    if headers is not None:
        event["headers"] = dict(headers)
    if body is not None or raw_body is not None:
        text: str | bytes = raw_body if raw_body is not None else json.dumps(body)
        if base64_body:
            data = text.encode("utf-8") if isinstance(text, str) else text
            event["body"], event["isBase64Encoded"] = base64.b64encode(data).decode("ascii"), True
        else:
            event["body"] = text if isinstance(text, str) else text.decode("utf-8")
            event["isBase64Encoded"] = False
    elif method == "GET":
        event.pop("body", None)
        event["isBase64Encoded"] = False
    return event


def scheduled_event(name: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of a scheduled-event sample carrying ``detail`` as its sender puts it: an object from an
    EventBridge rule, a JSON string from EventBridge Scheduler (as the sample's own ``detail`` is)."""
    event = copy.deepcopy(_load(name))
    event["detail"] = json.dumps(detail) if isinstance(event["detail"], str) else dict(detail)
    return event


def emf_records(stdout: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF records powertools printed to ``stdout`` (one JSON object a line, starting with ``_aws``)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]


class LambdaContext:
    """The attributes of Lambda's context object that powertools reads."""

    function_name = "inference"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:inference"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/inference"
    log_stream_name = "2026/11/25/[$LATEST]abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000
