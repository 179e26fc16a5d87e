"""Read a window of captured inference rows (S3 objects or a local file) into columns for the drift check.

Rows become numpy columns as they are read, a chunk of lines at a time, so a million rows cost their numbers
(~8 bytes a numeric value, a counter per categorical feature), not a million dicts. A chunk is parsed with one
``json.loads`` call; only when that fails is it re-read line by line (``capture.decode_records``) to name the
line. An object that cannot be read is reported by name and skipped as a whole; the rest is still checked.
"""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from serverless_mlops.capture import REQUIRED_FIELDS, SUFFIX, CaptureFormatError, decode_records, timestamp, window_prefixes
from serverless_mlops.errors import DataError

CHUNK_LINES = 20_000
FETCH_THREADS = 8
_REQUIRED = frozenset(REQUIRED_FIELDS)


@dataclass
class Column:
    """One feature's (or the prediction's) current values: floats (NaN = missing) or category counts."""

    kind: str
    parts: list[NDArray[np.float64]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    missing: int = 0

    def values(self) -> NDArray[np.float64]:
        return np.concatenate(self.parts) if self.parts else np.zeros(0)

    def merge(self, other: Column) -> None:
        self.parts.extend(other.parts)
        self.counts.update(other.counts)
        self.missing += other.missing


@dataclass(frozen=True)
class SkippedSource:
    source: str
    error: str


@dataclass
class CurrentData:
    """What a window of captured rows holds, column by column."""

    rows: int
    columns: dict[str, Column]
    prediction: Column
    versions: dict[int, int]
    sources: list[str]
    skipped: list[SkippedSource]


class _Batch:
    """Columns for the rows of one source; merged into the result only when the whole source read cleanly."""

    def __init__(self, kinds: Mapping[str, str], prediction_kind: str) -> None:
        self.rows = 0
        self.columns = {name: Column(kind) for name, kind in kinds.items()}
        self.prediction = Column(prediction_kind)
        self.versions: Counter[int] = Counter()


def _add_values(column: Column, values: list[Any]) -> None:
    if column.kind == "numeric":
        try:
            array = np.array(values, dtype=np.float64)  # None becomes NaN
        except (TypeError, ValueError):
            array = np.array([_as_float(v) for v in values], dtype=np.float64)
        column.missing += int(np.isnan(array).sum())
        column.parts.append(array)
        return
    counts = Counter(values)
    column.missing += counts.pop(None, 0)
    column.counts.update({key if isinstance(key, str) else json.dumps(key): count for key, count in counts.items()})


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def _parse_chunk(lines: list[str], source: str, first_line: int) -> list[dict[str, Any]]:
    """A chunk of JSON lines (blank ones included) as row dicts; a bad chunk is re-read line by line to name the line."""
    try:
        rows = json.loads("[" + ",".join(line for line in lines if not line.isspace()) + "]")
        if all(type(row) is dict and row.keys() >= _REQUIRED and type(row["features"]) is dict for row in rows):
            return rows  # type: ignore[no-any-return]
    except json.JSONDecodeError:
        pass
    try:
        return list(decode_records("".join(lines).encode("utf-8"), source))
    except CaptureFormatError as exc:
        raise CaptureFormatError(source, exc.problem, None if exc.line is None else exc.line + first_line - 1) from exc


def _read_stream(stream: IO[bytes], source: str, batch: _Batch, since: str | None, until: str | None) -> None:
    head = stream.read(2)
    stream.seek(0)
    raw: IO[bytes] = gzip.GzipFile(fileobj=stream, mode="rb") if head == b"\x1f\x8b" else stream  # type: ignore[assignment]
    text = io.TextIOWrapper(raw, encoding="utf-8")
    first = 1
    chunk: list[str] = []
    try:
        for line in text:
            if not line.endswith("\n"):
                line += "\n"  # noqa: PLW2901 - the last line may lack its newline
            chunk.append(line)
            if len(chunk) >= CHUNK_LINES:
                _add_rows(batch, _parse_chunk(chunk, source, first), since, until)
                first += len(chunk)
                chunk = []
        if chunk:
            _add_rows(batch, _parse_chunk(chunk, source, first), since, until)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CaptureFormatError(source, f"not gzip JSON Lines ({exc})") from exc


def _add_rows(batch: _Batch, rows: list[dict[str, Any]], since: str | None, until: str | None) -> None:
    if since is not None and until is not None:
        rows = [row for row in rows if since <= str(row["ts"]) < until]
    if not rows:
        return
    features = [row["features"] for row in rows]
    for name, column in batch.columns.items():
        _add_values(column, [f.get(name) for f in features])
    _add_values(batch.prediction, [row["prediction"] for row in rows])
    batch.versions.update(row["version"] for row in rows if isinstance(row["version"], int))
    batch.rows += len(rows)


class CaptureReader:
    """Collects columns from capture sources; ``kinds`` maps feature name → numeric|categorical."""

    def __init__(self, kinds: Mapping[str, str], prediction_kind: str, *, start: datetime | None = None, end: datetime | None = None):
        self.kinds = dict(kinds)
        self.prediction_kind = prediction_kind
        self.since = timestamp(start) if start is not None else None
        self.until = timestamp(end) if end is not None else None
        self.result = CurrentData(
            rows=0,
            columns={name: Column(kind) for name, kind in self.kinds.items()},
            prediction=Column(prediction_kind),
            versions={},
            sources=[],
            skipped=[],
        )

    def add(self, stream: IO[bytes], source: str) -> None:
        """Read one source; a malformed one is recorded in ``skipped`` (named, with the line) and left out."""
        batch = _Batch(self.kinds, self.prediction_kind)
        try:
            _read_stream(stream, source, batch, self.since, self.until)
        except CaptureFormatError as exc:
            self.result.skipped.append(SkippedSource(source, str(exc)))
            return
        result = self.result
        result.sources.append(source)
        result.rows += batch.rows
        for name, column in batch.columns.items():
            result.columns[name].merge(column)
        result.prediction.merge(batch.prediction)
        for version, count in batch.versions.items():
            result.versions[version] = result.versions.get(version, 0) + count


def read_file(path: str | Path, kinds: Mapping[str, str], prediction_kind: str) -> CurrentData:
    """Every row of one local capture file (gzip or plain JSON Lines), with no window filter."""
    path = Path(path)
    reader = CaptureReader(kinds, prediction_kind)
    try:
        with path.open("rb") as handle:
            reader.add(handle, str(path))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: capture file not found") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a directory; expected a capture file (JSON Lines, optionally gzip)") from exc
    return reader.result


def capture_keys(s3: Any, bucket: str, model: str, start: datetime, end: datetime) -> list[str]:
    """The keys of every capture object for ``model`` in the hours that cover [start, end)."""
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in window_prefixes(model, start, end):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []) if item["Key"].endswith((SUFFIX, ".jsonl")))
    return sorted(keys)


def read_window(
    s3: Any, bucket: str, model: str, start: datetime, end: datetime, kinds: Mapping[str, str], prediction_kind: str
) -> CurrentData:
    """Every captured row of ``model`` with ``start <= ts < end``, fetched with a few threads and read in key order."""
    reader = CaptureReader(kinds, prediction_kind, start=start, end=end)
    keys = capture_keys(s3, bucket, model, start, end)

    def fetch(key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for key, data in zip(keys, _in_order(pool, fetch, keys), strict=True):
            reader.add(io.BytesIO(data), f"s3://{bucket}/{key}")
    return reader.result


def _in_order(pool: ThreadPoolExecutor, fetch: Any, keys: Iterable[str]) -> Iterator[bytes]:
    """Fetch ahead by at most twice the pool size, so memory stays bounded however many objects a window holds."""
    pending: list[Any] = []
    for key in keys:
        pending.append(pool.submit(fetch, key))
        if len(pending) > 2 * FETCH_THREADS:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()
