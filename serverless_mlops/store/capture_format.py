"""Captured inference data: the one format the inference Lambda writes and the drift check reads.

Objects live in the artifact bucket under ``capture/{model}/{yyyy}/{mm}/{dd}/{hh}/`` (UTC hour of capture), one
gzip-compressed JSON Lines object per flush, named ``{yyyymmddThhmmss}-{id}.jsonl.gz``. Each line is one row::

    {"ts": "2026-11-25T21:04:05.123Z", "request_id": "...", "id": "...-0", "model": "diabetes", "version": 3,
     "features": {"age": 52.0, "sex": "a", ...}, "prediction": 151.2}

``prediction`` is the label for classifiers and the value for regressors. ``id`` is the row's prediction id, the one
the response returned and ground truth names (:func:`id_problem` is the rule it follows: the caller's own, or
``{request id}-{row index}``); rows captured before prediction ids existed have none, so readers must not require it.
A row the alias's shadow also scored has an optional ``"shadow": {"version": 4, "prediction": 148.9}`` (what the
shadow version predicted; never returned to the caller), which ``mlops shadow report`` compares with ``prediction``.
A classifier's row also holds ``probabilities``, the per-class probabilities it served (the model's class order), which
the quality check's CBPE reads; regressors' rows and rows captured before it have none.
Nothing here imports numpy or boto3, so the inference path stays light.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from serverless_mlops.errors import DataError

CAPTURE_PREFIX = "capture"
SUFFIX = ".jsonl.gz"
REQUIRED_FIELDS = ("ts", "model", "version", "features", "prediction")
ID_FIELD = "id"  # the prediction id (optional in old rows)
MAX_ID_LENGTH = 128


def id_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a prediction id, or None: a non-empty string of at most
    :data:`MAX_ID_LENGTH` printable characters (no control characters or line breaks, so it fits a CSV cell and a log
    line as it is). Shared by the endpoint (caller-supplied ids) and ground truth (labels name predictions by id)."""
    if not isinstance(value, str):
        return "an id is a string"
    if not value:
        return "an id must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"an id is at most {MAX_ID_LENGTH} characters; got {len(value)}"
    if not value.isprintable():
        return "an id holds printable characters only (no control characters, tabs or line breaks)"
    return None


SHADOW_FIELD = "shadow"  # optional: {"version": int, "prediction": ...}


class CaptureFormatError(DataError):
    """A capture object that cannot be read; names the object and the 1-based line."""

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"capture file {where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


def hour_prefix(model: str, when: datetime) -> str:
    """The prefix that holds everything captured for ``model`` during the UTC hour of ``when``."""
    when = when.astimezone(UTC)
    return f"{CAPTURE_PREFIX}/{model}/{when:%Y/%m/%d/%H}/"


def capture_key(model: str, when: datetime, batch_id: str | None = None) -> str:
    """The key of one flushed batch captured at ``when``."""
    when = when.astimezone(UTC)
    return f"{hour_prefix(model, when)}{when:%Y%m%dT%H%M%S}-{batch_id or uuid.uuid4().hex}{SUFFIX}"


def window_prefixes(model: str, start: datetime, end: datetime) -> list[str]:
    """The hourly prefixes that cover ``[start, end)``; rows are filtered by their own ``ts`` after reading."""
    if end <= start:
        raise ValueError(f"capture window must end after it starts ({start.isoformat()} .. {end.isoformat()})")
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour < end:
        prefixes.append(hour_prefix(model, hour))
        hour += timedelta(hours=1)
    return prefixes


def timestamp(when: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: sortable as text."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def encode_records(records: Iterable[Mapping[str, Any]]) -> bytes:
    """Rows → one gzip JSON Lines object (compact separators; NaN and infinities are refused)."""
    lines = (json.dumps(record, separators=(",", ":"), allow_nan=False) for record in records)
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=6, mtime=0)


def decode_records(data: bytes, source: str) -> Iterator[dict[str, Any]]:
    """Read a capture object (gzip or plain JSON Lines); raises ``CaptureFormatError`` naming ``source`` and line."""
    try:
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CaptureFormatError(source, f"not gzip JSON Lines ({exc})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaptureFormatError(source, f"invalid JSON ({exc.msg})", number) from exc
        if not isinstance(row, dict):
            raise CaptureFormatError(source, "expected a JSON object", number)
        missing = [name for name in REQUIRED_FIELDS if name not in row]
        if missing:
            raise CaptureFormatError(source, f"missing {', '.join(missing)}", number)
        if not isinstance(row["features"], dict):
            raise CaptureFormatError(source, "'features' must be an object", number)
        shadow = row.get(SHADOW_FIELD)
        if shadow is not None and not (
            isinstance(shadow, dict)
            and isinstance(shadow.get("version"), int)
            and not isinstance(shadow["version"], bool)
            and "prediction" in shadow
        ):
            raise CaptureFormatError(source, "'shadow' must be an object with an integer 'version' and a 'prediction'", number)
        yield row
