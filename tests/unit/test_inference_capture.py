"""The capture buffer: flush thresholds, one object per model and hour in the shared format, bounded loss on failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from serverless_mlops.serving.capture_writer import CaptureBuffer, S3CaptureSink
from serverless_mlops.store.capture_format import decode_records, parse_timestamp

T0 = datetime(2026, 11, 25, 10, 59, 30, tzinfo=UTC).timestamp()
NAMES = ("a", "b")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemorySink:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = False

    def put(self, key: str, data: bytes) -> None:
        if self.fail:
            raise ConnectionError("S3 is unreachable")
        self.objects[key] = data


def _buffer(clock: Clock, sink: MemorySink, failures: list[tuple[str, int, str]] | None = None, **kwargs: Any) -> CaptureBuffer:
    return CaptureBuffer(lambda: sink, clock=clock, on_failure=(lambda *a: failures.append(a)) if failures is not None else None, **kwargs)


def _rows(sink: MemorySink) -> list[dict[str, Any]]:
    """The captured rows of the capture objects (each flush also writes a predictions object beside them)."""
    return [row for key, data in sorted(sink.objects.items()) if key.startswith("capture/") for row in decode_records(data, key)]


def test_rows_in_every_shape_become_capture_lines_in_the_shared_format() -> None:
    clock, sink = Clock(), MemorySink()
    buffer = _buffer(clock, sink)
    buffer.add("m", 3, "req-1", NAMES, "records", [{"a": 1.0, "b": "x", "extra": 9}], [1])
    buffer.add("m", 3, "req-2", NAMES, "rows", [[2.0, "y"]], [0])
    buffer.add("m", 4, None, NAMES, "columns", [[3.0, 4.0], ["z", "w"]], [1, 0])
    assert buffer.rows == 4
    keys = buffer.flush()
    assert len(keys) == 1
    assert keys[0].startswith("capture/m/2026/11/25/10/20261125T105930-")
    assert keys[0].endswith(".jsonl.gz")
    rows = _rows(sink)
    assert [r["features"] for r in rows] == [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}, {"a": 3.0, "b": "z"}, {"a": 4.0, "b": "w"}]
    assert [r["prediction"] for r in rows] == [1, 0, 1, 0]
    assert [r["version"] for r in rows] == [3, 3, 4, 4]
    assert [r["request_id"] for r in rows] == ["req-1", "req-2", None, None]
    assert {parse_timestamp(r["ts"]).timestamp() for r in rows} == {T0}
    assert buffer.rows == 0
    assert buffer.flush() == []


def test_flushes_when_full_or_old_enough_and_not_before() -> None:
    clock, sink = Clock(), MemorySink()
    buffer = _buffer(clock, sink, max_rows=3, max_seconds=60)
    assert buffer.maybe_flush() == []  # nothing buffered
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "x"]] * 2, [0, 0])
    assert buffer.maybe_flush() == []
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    assert len(buffer.maybe_flush()) == 1  # 3 rows: full
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    clock.now += 59.9
    assert buffer.maybe_flush() == []
    clock.now += 0.1
    assert len(buffer.maybe_flush()) == 1  # oldest row 60 s old
    assert len(_rows(sink)) == 4


def test_one_object_per_model_and_hour_so_window_prefixes_find_every_row() -> None:
    clock, sink = Clock(), MemorySink()
    buffer = _buffer(clock, sink)
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    buffer.add("n", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    clock.now += 60  # 11:00:30: the next hour
    buffer.add("m", 1, None, NAMES, "rows", [[2.0, "x"]], [1])
    keys = sorted(buffer.flush())
    assert [key.rsplit("/", 1)[0] for key in keys] == ["capture/m/2026/11/25/10", "capture/m/2026/11/25/11", "capture/n/2026/11/25/10"]


def test_a_failed_flush_keeps_the_rows_backs_off_and_reports() -> None:
    clock, sink, failures = Clock(), MemorySink(), []
    buffer = _buffer(clock, sink, failures, max_rows=2, max_seconds=30)
    sink.fail = True
    buffer.add("m", 1, "r", NAMES, "rows", [[1.0, "x"]] * 2, [0, 1])
    assert buffer.maybe_flush() == []  # never raises
    assert failures == [("flush", 2, "ConnectionError: S3 is unreachable")]
    assert buffer.rows == 2
    sink.fail = False
    assert buffer.maybe_flush() == []  # backing off: a failing S3 costs one request per interval
    clock.now += 30
    assert len(buffer.maybe_flush()) == 1
    assert [r["prediction"] for r in _rows(sink)] == [0, 1]


def test_memory_stays_bounded_while_s3_is_down() -> None:
    clock, sink, failures = Clock(), MemorySink(), []
    buffer = _buffer(clock, sink, failures, max_rows=2, max_seconds=1)
    sink.fail = True
    for i in range(10):
        buffer.add("m", 1, str(i), NAMES, "rows", [[float(i), "x"]], [i])
        clock.now += 1
        buffer.maybe_flush()
    assert buffer.rows <= 4
    dropped = sum(rows for what, rows, _ in failures if what == "dropped")
    assert dropped == 10 - buffer.rows
    sink.fail = False
    buffer.flush()
    assert [r["request_id"] for r in _rows(sink)] == [str(i) for i in range(dropped, 10)]  # the oldest went, the rest in order


def test_s3_sink_writes_encrypted_objects() -> None:
    calls: list[dict[str, Any]] = []

    class S3:
        def put_object(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    S3CaptureSink("bucket", S3()).put("capture/k", b"data")
    S3CaptureSink("bucket", S3(), kms_key_id="alias/key").put("capture/k", b"data")
    assert calls[0]["ServerSideEncryption"] == "AES256"
    assert calls[1]["ServerSideEncryption"] == "aws:kms"
    assert calls[1]["SSEKMSKeyId"] == "alias/key"
    assert {c["Bucket"] for c in calls} == {"bucket"}


@pytest.mark.parametrize("kind", ["rows", "records"])
def test_add_keeps_references_not_copies(kind: str) -> None:
    clock, sink = Clock(), MemorySink()
    buffer = _buffer(clock, sink)
    data: list[Any] = [[1.0, "x"]] if kind == "rows" else [{"a": 1.0, "b": "x"}]
    buffer.add("m", 1, None, NAMES, kind, data, [0])  # type: ignore[arg-type]
    assert buffer._pending[0].data is data


def test_the_fast_encoder_writes_what_encode_records_writes() -> None:
    from serverless_mlops.serving.capture_writer import encode
    from serverless_mlops.store.capture_format import encode_records

    rows = [
        {
            "ts": "2026-11-25T10:59:30.000Z",
            "request_id": None,
            "model": "m",
            "version": 2,
            "features": {"a": 0.1 + 0.2, "b": 'é\\n"x'},
            "prediction": 1,
        },
        {
            "ts": "2026-11-25T10:59:31.000Z",
            "request_id": "r",
            "model": "m",
            "version": 2,
            "features": {"a": -1e-300, "b": ""},
            "prediction": "yes",
        },
    ]
    ours = list(decode_records(encode(rows), "ours"))
    reference = list(decode_records(encode_records(rows), "reference"))
    assert ours == reference == rows


def test_rows_that_cannot_be_encoded_are_dropped_at_once_not_retried() -> None:
    clock, sink, failures = Clock(), MemorySink(), []
    buffer = _buffer(clock, sink, failures)
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "\ud800"]], [0])  # a lone surrogate: valid in Python, not in UTF-8
    buffer.add("n", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    keys = buffer.flush()
    assert [key.split("/")[1] for key in keys] == ["n"]
    assert failures[0][:2] == ("dropped", 1)
    assert "cannot encode" in failures[0][2]
    assert buffer.rows == 0


def test_flush_retries_back_off_doubling_up_to_the_cap_and_a_success_resets_them() -> None:
    clock, failures = Clock(), []
    attempts: list[float] = []

    class CountingSink(MemorySink):
        def put(self, key: str, data: bytes) -> None:
            if key.startswith("capture/"):  # its predictions object is written at the same time
                attempts.append(clock.now - T0)
            super().put(key, data)

    sink = CountingSink()
    buffer = _buffer(clock, sink, failures, max_rows=1000, max_seconds=10, backoff_max_seconds=45)
    sink.fail = True
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    for _ in range(200):  # a request every second for 200 s
        clock.now += 1
        buffer.maybe_flush()
    # due at 10 s; then waits of 10, 20, 40, 45 (the cap), 45, ...
    assert attempts == [10, 20, 40, 80, 125, 170]
    assert [what for what, _, _ in failures] == ["flush"] * 6
    sink.fail = False
    clock.now = T0 + 215
    assert len(buffer.maybe_flush()) == 1
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    clock.now += 10  # a success: back to max_seconds
    assert len(buffer.maybe_flush()) == 1


def test_while_writes_fail_new_rows_push_the_oldest_out_so_memory_stays_bounded_between_attempts() -> None:
    clock, sink, failures = Clock(), MemorySink(), []
    buffer = _buffer(clock, sink, failures, max_rows=3, max_seconds=60)
    sink.fail = True
    buffer.add("m", 1, "0", NAMES, "rows", [[0.0, "x"]] * 3, [0] * 3)
    assert buffer.maybe_flush() == []  # full: the flush fails, the back-off starts
    for i in range(1, 11):  # ten requests within the back-off: no flush attempt, yet the buffer stays bounded
        buffer.add("m", 1, str(i), NAMES, "rows", [[float(i), "x"]], [i])
        assert buffer.maybe_flush() == []
        assert buffer.rows <= 6
    dropped = sum(rows for what, rows, _ in failures if what == "dropped")
    assert dropped == 13 - buffer.rows  # every row is either kept or counted
    assert [what for what, _, _ in failures].count("flush") == 1
    sink.fail = False
    clock.now += 60
    buffer.maybe_flush()
    assert [r["request_id"] for r in _rows(sink)] == [str(i) for i in range(5, 11)]  # the newest six, in order


def test_a_healthy_buffer_drops_nothing_even_past_twice_max_rows_in_one_request() -> None:
    clock, sink, failures = Clock(), MemorySink(), []
    buffer = _buffer(clock, sink, failures, max_rows=2)
    buffer.add("m", 1, "a", NAMES, "rows", [[1.0, "x"]], [0])
    buffer.add("m", 1, "b", NAMES, "rows", [[1.0, "x"]] * 9, [0] * 9)
    assert len(buffer.maybe_flush()) == 1
    assert len(_rows(sink)) == 10
    assert failures == []


def test_a_flush_stops_at_its_first_failed_write_and_keeps_every_object_for_the_next_attempt() -> None:
    clock, failures = Clock(), []
    puts: list[str] = []

    class CountingSink(MemorySink):
        def put(self, key: str, data: bytes) -> None:
            puts.append(key)
            super().put(key, data)

    sink = CountingSink()
    buffer = _buffer(clock, sink, failures)
    buffer.add("m", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    buffer.add("n", 1, None, NAMES, "rows", [[1.0, "x"]], [0])
    clock.now += 60  # the next hour: a third object
    buffer.add("m", 1, None, NAMES, "rows", [[2.0, "x"]], [1])
    sink.fail = True
    assert buffer.flush() == []
    # one wait on a failing S3 per flush, not one per object: the first capture object and, at the same time, its predictions
    assert sorted(key.split("/")[0] for key in puts) == ["capture", "predictions"]
    assert [what for what, _, _ in failures] == ["flush"]
    assert buffer.rows == 3
    sink.fail = False
    assert len(buffer.flush()) == 3
    assert len(_rows(sink)) == 3
