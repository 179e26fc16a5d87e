"""Data capture for the inference endpoint: sampled requests and their predictions, buffered, flushed to S3.

Each execution environment keeps one in-memory buffer. A sampled request appends a reference to its (already
parsed) rows and predictions: a few microseconds, no copy, no I/O. The buffer is flushed inside an invocation, by
:meth:`CaptureBuffer.maybe_flush`, once it holds ``max_rows`` rows or its oldest row is ``max_seconds`` old, and by
:meth:`CaptureBuffer.flush` when a local server shuts down. A flush writes one gzip JSON Lines object per model and
UTC hour (the format and keys of :mod:`serverless_mlops.store.capture_format`), so a drift check that reads a window's hourly
prefixes finds every row of that window; beside it, a second, smaller object holds the same rows' predictions without
their features (:mod:`serverless_mlops.store.prediction_columns`), which the quality check reads instead. A flush
thus makes two PUTs per model and hour, at once (the predictions object on a thread of its own, joined before the
flush returns), so a flushing request waits for the slower of the two rather than for both: a predictions object
whose capture object failed is never read (a reader pairs them by name), and the rows are written again, both objects.

A flush runs on a request's path, so it must never make that request wait long: the endpoint gives the buffer a
sink on a budgeted S3 client (``MLOPS_CAPTURE_FLUSH_BUDGET_MS``, 400 ms: one attempt, timeouts that add up to the
budget, see :mod:`serverless_mlops.aws`), stops at its first failed write (a flush writes one object per model and
hour, so it may make several), and is skipped in a request whose alias check just failed. A failed predictions write
loses nothing (the quality check then reads the capture object): it is reported like a failed flush and ends the
flush there, its rows not written again.
A failed write never fails the request: it is reported (``on_failure``, one ``CaptureFlushFailures`` count), the
rows are kept for the next attempt, and the next attempt backs off: ``max_seconds`` after the first failure, twice
that after the second, up to ``backoff_max_seconds`` (a success returns to the normal thresholds), so a failing S3
costs one budget-bounded request per interval, not every request. While writes fail, the buffer holds at most
``2 * max_rows`` rows: beyond that the oldest requests' rows are dropped as new ones arrive and reported
(``dropped``, the ``CaptureRowsDropped`` count), so memory stays bounded however long S3 stays down. A write that
timed out may still have been stored by S3; its rows are then written again by the next flush (under another key),
which a drift check reads as duplicates: a rare small bias, preferred to losing rows.
"""

from __future__ import annotations

import functools
import gzip
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from serverless_mlops.aws import backoff
from serverless_mlops.serving.prediction_ids import default_ids
from serverless_mlops.store.artifacts import encryption_args
from serverless_mlops.store.capture_format import capture_key, timestamp
from serverless_mlops.store.prediction_columns import FORMAT, PREDICTIONS_SUFFIX, predictions_key

RowsKind = Literal["records", "rows", "columns"]
FailureCallback = Callable[[str, int, str], None]  # (what: "flush" | "dropped", rows, reason)


def encode(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Rows → one gzip JSON Lines object, the format of :func:`serverless_mlops.store.capture_format.encode_records`, written by
    msgspec at gzip level 1: about 1.5 ms instead of 22 ms for 1,000 rows of 20 features, a cost one request pays.
    Non-finite numbers (which validation keeps out of features) would be written as null, never as invalid JSON."""
    return gzip.compress(_encoder().encode_lines(rows), compresslevel=1, mtime=0)


def encode_predictions(model: str, captured: Sequence[_Captured]) -> bytes:
    """The predictions object of ``captured`` (one model's requests): gzip JSON, columns (see
    :mod:`serverless_mlops.store.prediction_columns`), by the same encoder and gzip level as the capture rows."""
    ts: list[str] = []
    versions: list[int] = []
    sizes: list[int] = []
    widths: list[int] = []
    ids: list[str] = []
    predictions: list[Any] = []
    probabilities: list[float] = []
    for item in captured:
        ts.append(timestamp(datetime.fromtimestamp(item.at, UTC)))
        versions.append(item.version)
        sizes.append(item.size)
        ids.extend(item.ids)
        predictions.extend(item.predictions)
        served = item.probabilities
        width = len(served[0]) if served else 0
        if served and all(len(row) == width for row in served):
            for row in served:
                probabilities.extend(row)
        else:  # none (a regressor), or rows of different lengths (never served): the reader reads the capture rows
            width = 0
        widths.append(width)
    columns = {
        "format": FORMAT,
        "model": model,
        "ts": ts,
        "version": versions,
        "rows": sizes,
        "width": widths,
        "id": ids,
        "prediction": predictions,
        "probabilities": probabilities,
    }
    return gzip.compress(_encoder().encode(columns), compresslevel=1, mtime=0)


@functools.cache
def _encoder() -> Any:
    import msgspec  # on first flush, not on the cold-start path

    return msgspec.json.Encoder()


class CaptureSink(Protocol):
    def put(self, key: str, data: bytes) -> None: ...


class S3CaptureSink:
    """Writes capture objects to the artifact bucket with the same server-side encryption as the artifacts."""

    def __init__(self, bucket: str, s3: Any, *, kms_key_id: str | None = None) -> None:
        self.bucket = bucket
        self.s3 = s3
        self.kms_key_id = kms_key_id

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType="application/json" if key.endswith(PREDICTIONS_SUFFIX) else "application/x-ndjson",
            ContentEncoding="gzip",
            **encryption_args(self.kms_key_id),
        )


@dataclass(frozen=True)
class _Captured:
    """One sampled request, kept as the request gave it; turned into capture lines only when flushed."""

    at: float
    model: str
    version: int
    request_id: str | None
    names: Sequence[str]
    kind: RowsKind
    data: Sequence[Any]
    predictions: Sequence[Any]
    ids: Sequence[str]
    shadow: tuple[int, Sequence[Any]] | None = None  # (version, predictions) of the alias's shadow, if it scored these rows
    probabilities: Sequence[Sequence[float]] | None = None  # a classifier's served probabilities, the model's class order

    @property
    def size(self) -> int:
        return len(self.predictions)

    def lines(self) -> list[dict[str, Any]]:
        ts = timestamp(datetime.fromtimestamp(self.at, UTC))
        names = self.names
        if self.kind == "records":
            width = len(names)  # a validated record holds every feature: if it holds nothing else, keep it as is
            features: Sequence[Mapping[str, Any]] = [
                record if len(record) == width else {name: record[name] for name in names} for record in self.data
            ]
        elif self.kind == "rows":
            features = [dict(zip(names, row, strict=True)) for row in self.data]
        else:
            features = [dict(zip(names, row, strict=True)) for row in zip(*self.data, strict=True)]
        lines = [
            {
                "ts": ts,
                "request_id": self.request_id,
                "id": prediction_id,
                "model": self.model,
                "version": self.version,
                "features": row,
                "prediction": prediction,
            }
            for row, prediction, prediction_id in zip(features, self.predictions, self.ids, strict=True)
        ]
        if self.shadow is not None:
            version, predictions = self.shadow
            for line, prediction in zip(lines, predictions, strict=True):
                line["shadow"] = {"version": version, "prediction": prediction}
        if self.probabilities is not None:  # the quality check's CBPE reads them instead of re-running the model
            for line, served in zip(lines, self.probabilities, strict=True):
                line["probabilities"] = served
        return lines


class _Write:
    """One object written on a thread of its own while the caller writes another; :meth:`outcome` waits for it (so
    no thread outlives the flush) and gives what it raised, if anything."""

    def __init__(self, sink: CaptureSink, key: str, data: bytes) -> None:
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(sink, key, data), name="capture-predictions", daemon=True)
        self._thread.start()

    def _run(self, sink: CaptureSink, key: str, data: bytes) -> None:
        try:
            sink.put(key, data)
        except Exception as exc:
            self._error = exc

    def outcome(self) -> Exception | None:
        self._thread.join()
        return self._error


class CaptureBuffer:
    """The per-execution-environment capture buffer (see the module docstring). Thread-safe."""

    def __init__(
        self,
        sink: Callable[[], CaptureSink],
        *,
        max_rows: int = 1000,
        max_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        on_failure: FailureCallback | None = None,
        backoff_max_seconds: float = 300.0,
    ) -> None:
        self._sink = sink
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._failures = 0  # consecutive failed flushes
        self._clock = clock
        self._on_failure = on_failure
        self._pending: list[_Captured] = []
        self._rows = 0
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        return self._rows

    def add(
        self,
        model: str,
        version: int,
        request_id: str | None,
        names: Sequence[str],
        kind: RowsKind,
        data: Sequence[Any],
        predictions: Sequence[Any],
        *,
        ids: Sequence[str] | None = None,
        shadow: tuple[int, Sequence[Any]] | None = None,
        probabilities: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Keep a validated request's rows (``records``: objects by feature name; ``rows``: arrays in signature
        order; ``columns``: one array per feature), its predictions, their ids (the endpoint's; default
        ``{request_id}-{index}``), if a shadow scored them ``(shadow version, its predictions)``, and for a classifier
        the probabilities it served (written with each row). The caller must not mutate them later."""
        if ids is None:
            ids = default_ids(request_id, len(predictions))
        captured = _Captured(self._clock(), model, version, request_id, names, kind, data, predictions, ids, shadow, probabilities)
        with self._lock:
            self._pending.append(captured)
            self._rows += captured.size
            dropped = self._trim() if self._failures else 0
        if dropped:
            self._report("dropped", dropped, f"the buffer holds at most {2 * self.max_rows} rows while S3 writes fail")

    def due(self, now: float | None = None) -> bool:
        if not self._pending:
            return False
        now = self._clock() if now is None else now
        if now < self._retry_at:
            return False
        return self._rows >= self.max_rows or now - self._pending[0].at >= self.max_seconds

    def maybe_flush(self) -> list[str]:
        """Flush if the buffer is full or old enough (called on every invocation); the keys written."""
        return self.flush() if self.due() else []

    def flush(self, sink: CaptureSink | None = None) -> list[str]:
        """Write everything buffered now, one capture object per model and UTC hour, each followed by its predictions
        object, to ``sink`` (default: the buffer's own, budgeted for a request's path; a server shutting down passes a
        patient one); the capture keys written. Never raises."""
        with self._lock:
            batch, self._pending, self._rows = self._pending, [], 0
        if not batch:
            return []
        groups: dict[tuple[str, str], list[_Captured]] = {}
        for captured in batch:
            groups.setdefault((captured.model, f"{captured.at // 3600:.0f}"), []).append(captured)
        written: list[str] = []
        failed: list[_Captured] = []
        stopped = False  # a predictions write failed: S3 is failing this request, the rest waits for the next attempt
        for (model, _hour), items in groups.items():
            if failed or stopped:  # S3 just failed this request: keep the other objects for the next attempt, not wait on it again
                failed.extend(items)
                continue
            key = capture_key(model, datetime.fromtimestamp(items[0].at, UTC))
            rows = sum(item.size for item in items)
            try:
                data = encode([line for captured in items for line in captured.lines()])
                columns = encode_predictions(model, items)
            except Exception as exc:  # e.g. a lone surrogate in a string: it would fail on every retry
                self._report("dropped", rows, f"cannot encode the rows: {type(exc).__name__}: {exc}")
                continue
            target = sink or self._sink()
            beside = _Write(target, predictions_key(key), columns)  # both writes at once: one wait
            try:
                target.put(key, data)
            except Exception as exc:
                failed.extend(items)
                self._report("flush", rows, f"{type(exc).__name__}: {exc}")
                beside.outcome()  # it does not matter: a predictions object alone is never read
                continue
            written.append(key)
            problem = beside.outcome()
            if problem is not None:  # the capture object holds the rows: the quality check reads it instead
                stopped = True
                reason = f"{type(problem).__name__}: {problem}"
                self._report("flush", rows, f"predictions object (the capture object was written): {reason}")
        if failed:
            self._keep_for_retry(failed)
        else:
            self._failures = 0
        return written

    def _keep_for_retry(self, failed: list[_Captured]) -> None:
        with self._lock:
            self._failures += 1
            self._retry_at = self._clock() + backoff(self.max_seconds, self._failures, max(self.backoff_max_seconds, self.max_seconds))
            self._pending = sorted(failed + self._pending, key=lambda captured: captured.at)
            self._rows = sum(captured.size for captured in self._pending)
            dropped = self._trim()
        if dropped:
            self._report("dropped", dropped, f"the buffer holds at most {2 * self.max_rows} rows while S3 writes fail")

    def _trim(self) -> int:
        """Drop the oldest requests' rows beyond ``2 * max_rows``, never the newest request (caller holds the lock);
        the rows dropped."""
        dropped = 0
        while len(self._pending) > 1 and self._rows > 2 * self.max_rows:
            oldest = self._pending.pop(0)
            self._rows -= oldest.size
            dropped += oldest.size
        return dropped

    def _report(self, what: str, rows: int, reason: str) -> None:
        if self._on_failure is not None:
            self._on_failure(what, rows, reason)
