"""Read a window of captured inference rows (S3 objects or a local file) into columns for the drift check.

Rows become numpy columns as they are read, a chunk of lines at a time, so a million rows cost their numbers
(~8 bytes a numeric value, a counter per categorical feature), not a million dicts. A chunk is decoded in one call
by msgspec into typed structs (about three times faster than ``json.loads`` into dicts); only when that fails is
it re-read line by line (``capture.decode_records``), which accepts what the contract allows and names the line
of a malformed row. An object that cannot be read is reported by name and skipped as a whole; the rest is still checked.

A value that is not there is data, not an error: a feature key absent from a row, ``null``, NaN, or (numeric) a
value that is not a number counts as missing; ``Column.absent`` counts, among those, the rows without the key at
all, so the check can tell "this column never arrived" from "this column was null". A number beyond the float range
(``1e999``, an integer of 400 digits, ``Infinity``) is kept as ±inf: the check counts it as out of range. A nested
value of a categorical feature becomes its JSON text, as any non-string value does.
"""

from __future__ import annotations

import gc
import io
import json
import math
import operator
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np
from msgspec import UNSET
from numpy.typing import NDArray

from serverless_mlops.errors import DataError
from serverless_mlops.store.capture_format import SUFFIX, CaptureFormatError, decode_records, timestamp, window_prefixes

READ_BYTES = 1 << 20  # compressed bytes read at a time (about 4 MB, some 8,000 rows, once inflated)
FETCH_THREADS = 8


@dataclass
class Column:
    """One feature's (or the prediction's) current values: floats (NaN = missing) or category counts.

    ``missing`` counts the rows without a value (the key absent, null, NaN, or not a number); ``absent`` the rows,
    among those, that did not have the key at all.
    """

    kind: str
    parts: list[NDArray[np.float64]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    missing: int = 0
    absent: int = 0

    def values(self) -> NDArray[np.float64]:
        return np.concatenate(self.parts) if self.parts else np.zeros(0)

    def add(self, values: NDArray[Any]) -> None:
        """An array of one block's values: numbers (NaN = missing) or labels (None = missing), for readers that build
        columns directly (a CSV or JSON file of rows, a simulation) rather than from captured rows."""
        if self.kind == "numeric":
            self.parts.append(values.astype(np.float64, copy=False))
            self.missing += int(np.count_nonzero(np.isnan(self.parts[-1])))
            return
        counts = Counter(values.tolist())
        self.missing += counts.pop(None, 0)
        self.counts.update(counts)

    def merge(self, other: Column) -> None:
        self.parts.extend(other.parts)
        self.counts.update(other.counts)
        self.missing += other.missing
        self.absent += other.absent


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
    """Add one chunk of a column's values (``UNSET``: the row had no such key)."""
    if column.kind == "numeric":
        try:
            array = np.array(values, dtype=np.float64)  # None becomes NaN; UNSET or a string fails, so the fast path stays one call
        except (TypeError, ValueError, OverflowError):
            column.absent += sum(1 for v in values if v is UNSET)
            array = np.array([_as_float(v) for v in values], dtype=np.float64)
        column.missing += int(np.isnan(array).sum())
        column.parts.append(array)
        return
    try:
        counts = Counter(values)
    except TypeError:  # a nested value (list, object): a category named by its JSON text
        counts = Counter(json.dumps(v) if isinstance(v, list | dict) else v for v in values)
    absent = counts.pop(UNSET, 0)
    column.absent += absent
    column.missing += absent + counts.pop(None, 0)
    for key in [k for k in counts if isinstance(k, float) and math.isnan(k)]:  # each NaN is its own key: NaN != NaN
        column.missing += counts.pop(key)
    column.counts.update({key if isinstance(key, str) else json.dumps(key): count for key, count in counts.items()})


def _as_float(value: Any) -> float:
    """A number as a float (one beyond the float range as ±inf); anything else (bool, text, UNSET) is NaN: missing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        return float("inf") if value > 0 else float("-inf")


@dataclass(frozen=True)
class _Rows:
    """A chunk's rows, column-wise: one tuple of feature values per row (in ``kinds`` order), and the row fields."""

    features: list[tuple[Any, ...]]
    ts: list[str]
    predictions: list[Any]
    versions: list[Any]


class _Decoder:
    """Typed msgspec decoding of a chunk of capture lines: no dict per row, no per-row Python validation.

    Feature values decode as number, string or null, and a key the row lacks as ``UNSET``: absent and null stay
    apart at no cost (``UNSET`` fails the numeric column's one-call conversion only in a chunk that has one). Anything
    the contract allows but this does not expect (a boolean, a nested value) sends the chunk to the slower exact path
    (``capture.decode_records``), which also names the line of a malformed row.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        fields = [f"f{i}" for i in range(len(names))]
        features = msgspec.defstruct(
            "CapturedFeatures",
            [(field, float | str | None | msgspec.UnsetType, UNSET) for field in fields],
            rename=dict(zip(fields, names, strict=True)),
            forbid_unknown_fields=False,
            gc=False,
        )
        row = msgspec.defstruct("CapturedRow", [("ts", str), ("model", str), ("version", int), ("features", features), ("prediction", Any)])
        self.decoder = msgspec.json.Decoder(list[row])  # type: ignore[valid-type]
        self.values = operator.attrgetter(*fields) if len(fields) > 1 else (lambda f: (getattr(f, fields[0]),))

    def decode(self, block: bytes, source: str, first_line: int) -> _Rows:
        """Rows of ``block`` (complete lines; the first is line ``first_line`` of ``source``)."""
        try:
            rows: list[Any] = self.decoder.decode(b"[" + block.rstrip().replace(b"\n", b",") + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._exact(block, source, first_line)
        values = self.values
        return _Rows(
            features=[values(row.features) for row in rows],
            ts=[row.ts for row in rows],
            predictions=[row.prediction for row in rows],
            versions=[row.version for row in rows],
        )

    def _exact(self, block: bytes, source: str, first_line: int) -> _Rows:
        try:
            rows = list(decode_records(block, source))
        except CaptureFormatError as exc:
            raise CaptureFormatError(source, exc.problem, None if exc.line is None else exc.line + first_line - 1) from exc
        names = self.names
        return _Rows(
            features=[tuple(row["features"].get(name, UNSET) for name in names) for row in rows],
            ts=[str(row["ts"]) for row in rows],
            predictions=[row["prediction"] for row in rows],
            versions=[row["version"] for row in rows],
        )


def _blocks(stream: IO[bytes], read_bytes: int = READ_BYTES) -> Iterator[bytes]:
    """The decompressed content (gzip, any number of members, or plain) in blocks that end at a line end, inflated from
    ``read_bytes`` compressed bytes at a time."""
    head = stream.read(2)
    stream.seek(0)
    gzipped = head == b"\x1f\x8b"
    inflate = zlib.decompressobj(31)
    pending = b""
    while True:
        data = stream.read(read_bytes)
        if not data:
            break
        if gzipped:
            text = inflate.decompress(data)
            while inflate.eof and inflate.unused_data:  # the next gzip member
                rest = inflate.unused_data
                inflate = zlib.decompressobj(31)
                text += inflate.decompress(rest)
        else:
            text = data
        cut = text.rfind(b"\n")
        if cut < 0:
            pending += text
            continue
        yield pending + text[: cut + 1]
        pending = text[cut + 1 :]
    if gzipped and not inflate.eof:
        raise EOFError("compressed data ended before the end-of-stream marker was reached")
    if pending:
        yield pending + b"\n"


def _read_stream(stream: IO[bytes], source: str, batch: _Batch, decoder: _Decoder, since: str | None, until: str | None) -> None:
    first = 1
    try:
        for block in _blocks(stream):
            _add_rows(batch, decoder.decode(block, source, first), since, until)
            first += block.count(b"\n")
    except (OSError, EOFError, zlib.error) as exc:
        raise CaptureFormatError(source, f"not gzip JSON Lines ({exc})") from exc


def _add_rows(batch: _Batch, rows: _Rows, since: str | None, until: str | None) -> None:
    features, predictions, versions = rows.features, rows.predictions, rows.versions
    if since is not None and until is not None:
        keep = [i for i, ts in enumerate(rows.ts) if since <= ts < until]
        if len(keep) < len(rows.ts):
            features = [features[i] for i in keep]
            predictions = [predictions[i] for i in keep]
            versions = [versions[i] for i in keep]
    if not features:
        return
    for column, values in zip(batch.columns.values(), zip(*features, strict=True), strict=True):
        _add_values(column, list(values))
    _add_values(batch.prediction, predictions)
    batch.versions.update({v: n for v, n in Counter(versions).items() if type(v) is int})
    batch.rows += len(features)


class CaptureReader:
    """Collects columns from capture sources; ``kinds`` maps feature name → numeric|categorical."""

    def __init__(self, kinds: Mapping[str, str], prediction_kind: str, *, start: datetime | None = None, end: datetime | None = None):
        self.kinds = dict(kinds)
        self.prediction_kind = prediction_kind
        self.decoder = _Decoder(list(self.kinds))
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
        collecting = gc.isenabled()
        gc.disable()  # a block makes thousands of short-lived tuples and no cycles: the collector would only rescan them
        try:
            _read_stream(stream, source, batch, self.decoder, self.since, self.until)
        except CaptureFormatError as exc:
            self.result.skipped.append(SkippedSource(source, str(exc)))
            return
        finally:
            if collecting:
                gc.enable()
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
