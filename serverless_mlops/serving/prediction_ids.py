"""Prediction ids: one per predicted row, returned in the answer and written with the captured row, so a client can
report the row's label later (``POST /v1/models/{name}/labels``, or a file under ``ground-truth/``) and the quality
check can join it to the prediction.

A request may name its rows (v1: ``ids``, parallel to ``instances`` or ``inputs``; Open Inference Protocol:
``parameters.ids``, parallel to the rows of the input tensors): each id follows
:func:`serverless_mlops.store.capture_format.id_problem` (a non-empty string of at most 128 printable characters),
and the ids of one request are distinct. Otherwise the endpoint names them ``{request id}-{row index}`` (0-based),
with the HTTP API's request id, unique per request (a fresh random one when the request has none, as in a direct
call). Uniqueness across requests is the caller's business when it names its rows: the quality check keeps the last
prediction captured under an id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.store.capture_format import id_problem

MAX_DETAILS = 50


def default_ids(request_id: str | None, rows: int) -> list[str]:
    """``{request_id}-{index}`` for each row (a random request id when there is none)."""
    base = request_id or uuid.uuid4().hex
    return [f"{base}-{index}" for index in range(rows)]


def prediction_ids(given: Sequence[Any] | None, rows: int, request_id: str | None, *, field: str = "ids") -> list[str]:
    """The ids of a request's ``rows`` predictions: ``given`` after validation, or :func:`default_ids`.

    Raises :class:`InvalidInputError` (422) naming each bad row and ``field``: a count that differs from the rows', an
    id that breaks the rule, an id given twice (the later row is named)."""
    if given is None:
        return default_ids(request_id, rows)
    if len(given) != rows:
        count = f"{len(given)} id(s) for {rows} row(s): give one id per row, in the rows' order"
        raise InvalidInputError(f"invalid ids: {count}", [{"row": None, "field": field, "problem": count}])
    details: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row, value in enumerate(given):
        problem: str | None = id_problem(value)
        if problem is None and value in seen:
            problem = "this id is given to an earlier row of the request; ids are distinct within a request"
        if problem is not None:
            details.append({"row": row, "field": field, "problem": problem})
            if len(details) == MAX_DETAILS:
                break
        else:
            seen.add(value)
    if details:
        raise InvalidInputError(f"{len(details)} invalid id(s)", details)
    return list(given)
