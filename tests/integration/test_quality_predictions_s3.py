"""The quality join over S3 (moto): each capture object's predictions object is read where there is one, the capture
object where there is none (written before them), where it does not read, or where probabilities must be
recomputed; the listing of predictions objects covers the window's hours and no others; and the full captured rows
of the labelled ids can still be had (features included) for what needs them."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from serverless_mlops.quality.labels import Label
from serverless_mlops.quality.window import capture_rows, join_window, predictions_keys
from serverless_mlops.serving.capture_writer import CaptureBuffer, S3CaptureSink
from serverless_mlops.store.capture_format import capture_key, encode_records, timestamp
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.prediction_columns import predictions_key

START = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
END = START + timedelta(hours=6)
NAMES = ("a", "b")


def _flush(backends: Backends, when: datetime, request: str, rows: int, *, version: int = 1, probabilities: bool = True) -> str:
    """One flush of one request by the capture writer into the bucket; its capture key."""
    sink = S3CaptureSink(backends.store.bucket, backends.store.s3)
    buffer = CaptureBuffer(lambda: sink, clock=when.timestamp)
    served = [[0.25, 0.75]] * rows if probabilities else None
    buffer.add("m", version, request, NAMES, "rows", [[float(i), "x"] for i in range(rows)], ["1"] * rows, probabilities=served)
    (key,) = buffer.flush()
    return key


def test_the_join_reads_predictions_objects_and_falls_back_to_capture_objects(backends: Backends) -> None:
    s3, bucket = backends.store.s3, backends.store.bucket
    compact = _flush(backends, START + timedelta(hours=1), "new", 3)
    broken = _flush(backends, START + timedelta(hours=2), "broken", 2)
    s3.put_object(Bucket=bucket, Key=predictions_key(broken), Body=gzip.compress(b'{"format": "predictions/1"}'))
    old_rows = [
        {"ts": timestamp(START + timedelta(hours=3)), "model": "m", "version": 2, "id": f"old-{i}", "features": {"a": 1.0, "b": "x"}}
        | {"prediction": "0", "probabilities": [0.6, 0.4]}
        for i in range(2)
    ]
    old = capture_key("m", START + timedelta(hours=3), "old")
    s3.put_object(Bucket=bucket, Key=old, Body=encode_records(old_rows))
    labels = {pid: Label(pid, "1") for pid in ("new-0", "new-2", "broken-1", "old-1", "elsewhere")}

    joined = join_window(s3, bucket, "m", labels, start=START, end=END, label_delay=timedelta(days=1), classes=["0", "1"])
    assert joined.sources == [f"s3://{bucket}/{predictions_key(compact)}", f"s3://{bucket}/{broken}", f"s3://{bucket}/{old}"]
    assert joined.labelled_sources == [f"s3://{bucket}/{key}" for key in (compact, broken, old)]
    assert (joined.counts.joined, joined.counts.unmatched, joined.probabilities) == (4, 1, "captured")
    assert (joined.versions[1].predictions, joined.versions[2].predictions) == (5, 2)
    assert joined.versions[1].labelled.predicted == ["1", "1", "1"]
    assert joined.versions[2].labelled.probabilities[0].tolist() == [0.6, 0.4]

    # without served probabilities and with a scorer, the capture object's features are read and scored
    bare = _flush(backends, START + timedelta(hours=4), "bare", 2, probabilities=False)
    scored: list[list[dict[str, Any]]] = []

    def scorer(version: int, records: Any) -> np.ndarray:
        scored.append(list(records))
        return np.tile([0.1, 0.9], (len(records), 1))

    rescored = join_window(
        s3,
        bucket,
        "m",
        {"bare-1": Label("bare-1", "1")},
        start=START,
        end=END,
        label_delay=timedelta(days=1),
        classes=["0", "1"],
        scorer=scorer,
    )
    assert scored == [[{"a": 0.0, "b": "x"}, {"a": 1.0, "b": "x"}]]
    assert f"s3://{bucket}/{bare}" in rescored.sources
    assert rescored.probabilities == "mixed"
    assert rescored.versions[1].labelled.probabilities[0].tolist() == [0.1, 0.9]


def test_the_listing_of_predictions_objects_stays_within_the_windows_hours(backends: Backends) -> None:
    inside = [_flush(backends, START + timedelta(hours=h, minutes=5), f"in{h}", 1) for h in (0, 5)]
    outside = [_flush(backends, START - timedelta(minutes=1), "before", 1), _flush(backends, END + timedelta(minutes=1), "after", 1)]
    _flush_other = CaptureBuffer(
        lambda: S3CaptureSink(backends.store.bucket, backends.store.s3), clock=(START + timedelta(hours=1)).timestamp
    )
    _flush_other.add("m2", 1, "other", NAMES, "rows", [[1.0, "x"]], ["1"])  # another model whose name extends this one's
    _flush_other.flush()
    found = predictions_keys(backends.store.s3, backends.store.bucket, "m", START, END)
    assert found == {predictions_key(key) for key in inside}
    assert not found & {predictions_key(key) for key in outside}
    assert predictions_keys(backends.store.s3, backends.store.bucket, "none", START, END) == set()


def test_the_full_rows_of_labelled_ids_come_from_the_capture_objects(backends: Backends) -> None:
    s3, bucket = backends.store.s3, backends.store.bucket
    first = _flush(backends, START + timedelta(hours=1), "r1", 3)
    _flush(backends, START + timedelta(hours=2), "r2", 2)
    _flush(backends, END + timedelta(minutes=5), "late", 1)
    s3.put_object(Bucket=bucket, Key=capture_key("m", START + timedelta(hours=3), "bad"), Body=b"\x1f\x8bnot gzip")
    wanted = ["r1-2", "r2-0", "late-0", "nobody"]
    rows = list(capture_rows(s3, bucket, "m", wanted, start=START, end=END))
    assert [(r["id"], r["features"]) for r in rows] == [("r1-2", {"a": 2.0, "b": "x"}), ("r2-0", {"a": 0.0, "b": "x"})]
    joined = join_window(
        s3, bucket, "m", {"r1-2": Label("r1-2", "1")}, start=START, end=END, label_delay=timedelta(days=1), classes=["0", "1"]
    )
    only = list(capture_rows(s3, bucket, "m", {"r1-2", "r2-0"}, start=START, end=END, sources=joined.labelled_sources))
    assert joined.labelled_sources == [f"s3://{bucket}/{first}"]
    assert [r["id"] for r in only] == ["r1-2"]  # r2-0's object held no labelled row: not read
    assert list(capture_rows(s3, bucket, "m", ["r1-0"], start=START, end=END, sources=["s3://elsewhere/capture/x.jsonl.gz"])) == []
