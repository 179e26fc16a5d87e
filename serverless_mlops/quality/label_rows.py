"""Ground-truth rows: their format, validation (:func:`parse_labels`, naming row and field), keys and writing, and the
logic of ``POST /v1/models/{name}/labels`` (:func:`receive_labels`). The layout, the rules and the reader are
:mod:`serverless_mlops.quality.labels`' (which re-exports everything here): this module lists nothing, so the inference
function, which ships it, needs to write ``ground-truth/`` and never to read or list it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.signature import Task
from serverless_mlops.store.artifacts import encryption_args
from serverless_mlops.store.capture_format import MAX_ID_LENGTH, id_problem, timestamp

if TYPE_CHECKING:
    from serverless_mlops.store.artifacts import ArtifactStore
    from serverless_mlops.store.registry import ModelVersion

GROUND_TRUTH_PREFIX = "ground-truth"
FORMATS: dict[str, Literal["csv", "jsonl"]] = {".csv": "csv", ".jsonl": "jsonl", ".csv.gz": "csv", ".jsonl.gz": "jsonl"}
COLUMNS = ("id", "label", "event_time")
REQUIRED = ("id", "label")
MAX_LABELS_PER_REQUEST = 1000
MAX_DETAILS = 50

LabelValue = str | int | float
Classes = Sequence[str] | Sequence[int] | None


@dataclass(frozen=True, slots=True)
class Label:
    """One ground-truth row: the prediction id, the label (a class as the model's ``classes`` hold it, or a float for
    a regressor), when the event happened (UTC, if given), and its received order (its position among the rows read,
    in the order that makes the last one win)."""

    id: str
    label: LabelValue
    event_time: datetime | None = None
    order: int = 0


class LabelsError(InvalidInputError):
    """Ground truth that does not validate: ``details`` names each row and field (the message, the first of them)."""

    def __init__(self, source: str, details: list[dict[str, Any]], *, lines: Sequence[int | None] = ()) -> None:
        first = details[0]
        line = lines[0] if lines else None
        where = [f"line {line}" if line is not None else f"row {first['row']}" if first["row"] is not None else None]
        if first.get("field"):
            where.append(f"field {first['field']}")
        place = ", ".join(w for w in where if w)
        more = f" (and {len(details) - 1} more problem(s))" if len(details) > 1 else ""
        super().__init__(f"{source}: {place + ': ' if place else ''}{first['problem']}{more}", details, code="invalid_labels")
        self.source = source


# -- validating one row ----------------------------------------------------------------------------------------------
def _class_text(value: str | int | float) -> str:
    """The text a class is matched by: ``1``, ``1.0`` and ``"1"`` all name class 1."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


class _LabelRule:
    """How a label is read for a task: a class among ``classes`` (classification) or a finite number (regression)."""

    def __init__(self, task: Task, classes: Classes) -> None:
        self.regression = task == "regression"
        self.classes: dict[str, LabelValue] | None = None
        if not self.regression and classes:
            self.classes = {str(c): c for c in classes}
            shown = ", ".join(repr(c) for c in list(classes)[:10]) + (", ..." if len(classes) > 10 else "")
            self.expected = f"one of the model's classes ({shown})"

    def read(self, value: Any) -> tuple[LabelValue | None, str | None]:
        """(label, None) or (None, problem)."""
        if value is None or value == "":
            return None, "the label is missing"
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return None, "a label is a class name or number (a string or a number)"
        if self.regression:
            try:
                number = float(value.strip()) if isinstance(value, str) else float(value)
            except (ValueError, OverflowError):
                return None, "a regressor's label is a number"
            if not math.isfinite(number):
                return None, "a regressor's label is a finite number"
            return number, None
        text = _class_text(value.strip() if isinstance(value, str) else value)
        if self.classes is None:  # a classifier registered without its classes: the label as given
            return (value if isinstance(value, str | int) else text), None
        if text not in self.classes:
            return None, f"not {self.expected}"
        return self.classes[text], None


def parse_event_time(value: Any) -> tuple[datetime | None, str | None]:
    """(UTC time or None when absent, None) or (None, problem)."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        return None, "event_time is an ISO 8601 text, e.g. 2026-12-07T10:15:00Z"
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, "event_time is not ISO 8601 (e.g. 2026-12-07T10:15:00Z or 2026-12-07)"
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)), None


def _check_rows(rows: Iterable[tuple[int | None, Any]], source: str, rule: _LabelRule, *, allow_empty: bool) -> list[Label]:
    """(line, row object) pairs → labels, or :class:`LabelsError` naming each bad row (0-based) and field."""
    labels: list[Label] = []
    details: list[dict[str, Any]] = []
    lines: list[int | None] = []

    def fail(row: int, line: int | None, field_name: str | None, problem: str) -> None:
        details.append({"row": row, "field": field_name, "problem": problem})
        lines.append(line)

    index = -1
    for index, (line, row) in enumerate(rows):
        if len(details) >= MAX_DETAILS:
            break
        if not isinstance(row, Mapping):
            reason = row.reason if isinstance(row, _Unreadable) else "expected an object with id, label and (optionally) event_time"
            fail(index, line, None, reason)
            continue
        unknown = [key for key in row if key not in COLUMNS]
        if unknown:
            fail(index, line, str(unknown[0])[:64], f"unknown field (a label row has {', '.join(COLUMNS)})")
            continue
        bad = False
        if "id" not in row:
            fail(index, line, "id", "required field is missing")
            bad = True
        elif (problem := id_problem(row["id"])) is not None:
            fail(index, line, "id", problem)
            bad = True
        label, problem = rule.read(row.get("label"))
        if problem is not None:
            fail(index, line, "label", problem if "label" in row else "required field is missing")
            bad = True
        event_time, problem = parse_event_time(row.get("event_time"))
        if problem is not None:
            fail(index, line, "event_time", problem)
            bad = True
        if not bad:
            assert label is not None
            labels.append(Label(row["id"], label, event_time, len(labels)))
    if details:
        raise LabelsError(source, details[:MAX_DETAILS], lines=lines[:MAX_DETAILS])
    if index < 0 and not allow_empty:
        raise LabelsError(source, [{"row": None, "field": None, "problem": "no label rows"}])
    return labels


# -- files and payloads ----------------------------------------------------------------------------------------------
def label_format(source: str) -> Literal["csv", "jsonl"] | None:
    """``csv`` or ``jsonl`` from a name's suffix (``.csv``, ``.jsonl``, either with ``.gz``), else None."""
    lower = source.lower()
    return next((kind for suffix, kind in FORMATS.items() if lower.endswith(suffix)), None)


def _text(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise LabelsError(source, [{"row": None, "field": None, "problem": f"not UTF-8 text (or gzip of it): {exc}"}]) from exc


def _csv_rows(text: str, source: str) -> Iterator[tuple[int | None, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    try:
        for values in reader:
            if not values or values == [""]:
                continue
            if header is None:
                header = [name.strip() for name in values]
                missing = [name for name in REQUIRED if name not in header]
                unknown = [name for name in header if name not in COLUMNS]
                repeated = sorted({name for name in header if header.count(name) > 1})
                problem = (
                    f"the header lacks the column {missing[0]!r} (columns: id, label, optional event_time)"
                    if missing
                    else f"unknown column {unknown[0][:64]!r} (columns: id, label, optional event_time)"
                    if unknown
                    else f"the column {repeated[0]!r} is named twice"
                    if repeated
                    else None
                )
                if problem:
                    raise LabelsError(
                        source, [{"row": None, "field": (missing or unknown or repeated)[0][:64], "problem": problem}], lines=[1]
                    )
                continue
            if len(values) != len(header):
                yield reader.line_num, _Unreadable(f"{len(values)} value(s) for {len(header)} column(s)")
                continue
            yield reader.line_num, dict(zip(header, values, strict=True))
    except csv.Error as exc:
        raise LabelsError(source, [{"row": None, "field": None, "problem": f"not CSV: {exc}"}], lines=[reader.line_num]) from exc
    if header is None:
        raise LabelsError(
            source, [{"row": None, "field": None, "problem": "empty file: expected a header (id,label[,event_time]) and rows"}]
        )


def _jsonl_rows(text: str) -> Iterator[tuple[int | None, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            row = _Unreadable(f"invalid JSON ({getattr(exc, 'msg', type(exc).__name__)})")
        yield number, row


class _FastRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A JSON Lines label row as the fast path takes it (anything else: the slow path, which names the problem)."""

    id: str
    label: str | int | float
    event_time: str | None = None


_FAST_ROWS = msgspec.json.Decoder(_FastRow)
_FAST_CSV_HEADERS = {("id", "label"), ("id", "label", "event_time")}


def _fast_labels(ids: Sequence[Any], values: Sequence[Any], times: Sequence[Any] | None, rule: _LabelRule) -> list[Label] | None:
    """Labels from columns when every row is valid (ids checked in C-level passes, each distinct label and event time
    read once), else None: the caller then reads the rows one at a time and names each problem."""
    if not ids or not all(map(str.isprintable, ids)) or min(map(len, ids)) < 1 or max(map(len, ids)) > MAX_ID_LENGTH:
        return None
    read: dict[tuple[type, Any], LabelValue] = {}
    for key in {(type(v), v) for v in values}:
        label, problem = rule.read(key[1])
        if problem is not None:
            return None
        assert label is not None
        read[key] = label
    labels = [read[(type(v), v)] for v in values]
    when: list[datetime | None] = [None] * len(ids)
    if times is not None:
        parsed: dict[Any, datetime | None] = {}
        for value in set(times):
            moment, problem = parse_event_time(value)
            if problem is not None:
                return None
            parsed[value] = moment
        when = [parsed[t] for t in times]
    return list(map(Label, ids, labels, when, range(len(ids))))


def _fast_jsonl(text: str, rule: _LabelRule) -> list[Label] | None:
    decode = _FAST_ROWS.decode
    ids: list[str] = []
    values: list[str | int | float] = []
    times: list[str | None] = []
    try:  # a line at a time, split as the row-by-row path splits (decode_lines would take an object over two lines)
        for piece in _pieces(text):
            rows = [decode(line) for line in piece.splitlines() if line.strip()]
            ids.extend([r.id for r in rows])
            values.extend([r.label for r in rows])
            times.extend([r.event_time for r in rows])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return _fast_labels(ids, values, None if times.count(None) == len(times) else times, rule)


def _pieces(text: str, size: int = 1 << 18) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, each ending just after a line feed (or at the end): their
    lines are ``text.splitlines()``, without a string of every line and a decoded row of every line held at once."""
    start = 0
    while start < len(text):
        cut = text.find("\n", start + size)
        stop = len(text) if cut < 0 else cut + 1
        yield text[start:stop]
        start = stop


def _fast_csv(text: str, rule: _LabelRule) -> list[Label] | None:
    try:
        table = [values for values in csv.reader(io.StringIO(text, newline=""), strict=True) if values and values != [""]]
    except csv.Error:
        return None
    if not table or tuple(name.strip() for name in table[0]) not in _FAST_CSV_HEADERS:
        return None
    width = len(table[0])
    body = table[1:]
    if any(len(values) != width for values in body):
        return None
    columns = list(zip(*body, strict=True)) if body else [()] * width
    return _fast_labels(columns[0], columns[1], columns[2] if width == 3 else None, rule)


class _Unreadable:
    """A row that could not be read (JSON that does not parse, a CSV row of the wrong width), and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def parse_labels(data: bytes | str | Sequence[Any], source: str, task: Task, classes: Classes = None) -> list[Label]:
    """Validate ground truth for a model of ``task`` with ``classes``: a file's bytes or text (format from
    ``source``'s suffix: CSV with a header, or JSON Lines) or the rows of an HTTP request (a sequence of objects).
    Returns the labels in order (duplicates kept: the last wins when they are merged). Raises :class:`LabelsError`
    naming ``source``, each bad row and field: nothing is accepted from a file with a bad row."""
    rule = _LabelRule(task, classes)
    if isinstance(data, bytes | str):
        kind = label_format(source)
        if kind is None:
            problem = "a ground-truth file ends in .csv or .jsonl (optionally .gz)"
            raise LabelsError(source, [{"row": None, "field": None, "problem": problem}])
        text = _text(data, source)
        fast = _fast_csv(text, rule) if kind == "csv" else _fast_jsonl(text, rule)
        if fast is not None:  # every row valid; else the rows are read again one at a time to name each problem
            return fast
        rows = _csv_rows(text, source) if kind == "csv" else _jsonl_rows(text)
        return _check_rows(rows, source, rule, allow_empty=False)
    return _check_rows(((None, row) for row in data), source, rule, allow_empty=True)


# -- S3 layout and writing ----------------------------------------------------------------------------------
def day_prefix(model: str, when: datetime) -> str:
    """The prefix of the labels of ``model`` that arrived on the UTC day of ``when``."""
    return f"{GROUND_TRUTH_PREFIX}/{model}/{when.astimezone(UTC):%Y/%m/%d}/"


def day_prefixes(model: str, start: datetime, end: datetime) -> list[str]:
    """The day prefixes that cover ``[start, end)``, oldest first."""
    if end <= start:
        raise ValueError(f"ground-truth range must end after it starts ({start.isoformat()} .. {end.isoformat()})")
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    prefixes = []
    while day < end:
        prefixes.append(day_prefix(model, day))
        day += timedelta(days=1)
    return prefixes


def ground_truth_key(model: str, when: datetime, suffix: str = ".jsonl", batch_id: str | None = None) -> str:
    """The key of labels that arrived at ``when``: its name starts with the time to the microsecond, so keys sort
    in arrival order (and the last label wins as it should)."""
    when = when.astimezone(UTC)
    return f"{day_prefix(model, when)}{when:%Y%m%dT%H%M%S%f}Z-{batch_id or uuid.uuid4().hex}{suffix}"


def encode_labels(labels: Iterable[Label]) -> bytes:
    """Labels → JSON Lines (``event_time`` only when known), the format :func:`parse_labels` reads back."""
    lines = []
    for label in labels:
        row: dict[str, Any] = {"id": label.id, "label": label.label}
        if label.event_time is not None:
            row["event_time"] = timestamp(label.event_time)
        lines.append(json.dumps(row, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def put_ground_truth(s3: Any, bucket: str, key: str, data: bytes, *, kms_key_id: str | None = None) -> None:
    """Store one ground-truth object, encrypted like everything in the artifact bucket."""
    content_type = "text/csv" if label_format(key) == "csv" else "application/x-ndjson"
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, **encryption_args(kms_key_id))


def write_labels(
    s3: Any, bucket: str, model: str, labels: Sequence[Label], *, now: datetime | None = None, kms_key_id: str | None = None
) -> str:
    """Write validated labels as one JSON Lines object under today's prefix; its key."""
    key = ground_truth_key(model, now or datetime.now(UTC))
    put_ground_truth(s3, bucket, key, encode_labels(labels), kms_key_id=kms_key_id)
    return key


# -- the HTTP route's logic ------------------------------------------------------------------------------------------
class TooManyLabelsError(InvalidInputError):
    """More labels in one request than :data:`MAX_LABELS_PER_REQUEST` (413)."""


class LabelsTarget(Protocol):
    """Where a model's labels are checked and stored (the inference endpoint is one): the version whose task and
    classes the labels must fit (production), and the artifact store to write to, both on request-path budgets."""

    def ground_truth_target(self, name: str) -> tuple[ModelVersion, ArtifactStore]: ...


@dataclass(frozen=True)
class LabelsReceipt:
    """What a labels request stored: the model, the version that validated them, the labels and distinct ids."""

    model: str
    version: int
    received: int
    distinct_ids: int
    key: str


def receive_labels(target: LabelsTarget, name: str, rows: Sequence[Any], *, now: datetime | None = None) -> LabelsReceipt:
    """``POST /v1/models/{name}/labels``: validate ``rows`` against the production version's task and classes (every
    problem named by row and field as ``labels.{field}``), then store them as one JSON Lines object under today's
    prefix. Raises :class:`TooManyLabelsError`, :class:`LabelsError` (422), NotFoundError (no such model, or no
    production version), or lets a failed registry or S3 call through (the handler answers 503)."""
    if len(rows) > MAX_LABELS_PER_REQUEST:
        problem = f"{len(rows)} labels; a request takes at most {MAX_LABELS_PER_REQUEST:,}"
        raise TooManyLabelsError(
            f"too many labels: {problem}", [{"row": None, "field": "labels", "problem": problem}], code="too_many_labels"
        )
    entry, store = target.ground_truth_target(name)
    signature = entry.signature
    try:
        labels = parse_labels(rows, "labels", signature.task, signature.classes)
    except LabelsError as exc:
        for detail in exc.details:
            detail["field"] = f"labels.{detail['field']}" if detail["field"] else "labels"
        raise
    key = write_labels(store.s3, store.bucket, name, labels, now=now, kms_key_id=store.kms_key_id)
    return LabelsReceipt(name, entry.version, len(labels), len({label.id for label in labels}), key)
