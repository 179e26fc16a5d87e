"""Predictions objects: the capture writer writes one beside each capture object (the same rows without their
features, column by column), and the quality join reads it to the same result as the capture object, or declines it
so the capture object is read instead."""

from __future__ import annotations

import gzip
import io
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from serverless_mlops.drift.result import Window
from serverless_mlops.model.quality_spec import Quality
from serverless_mlops.quality.check import check_quality
from serverless_mlops.quality.join import Joiner, _IdFilter
from serverless_mlops.quality.joined import Joined, VersionRows
from serverless_mlops.quality.labels import GroundTruth, Label
from serverless_mlops.serving.capture_writer import CaptureBuffer, S3CaptureSink
from serverless_mlops.store.capture_format import decode_records, timestamp
from serverless_mlops.store.prediction_columns import FORMAT, predictions_key, predictions_prefix

T0 = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
NAMES = ("a", "b")
CALIBRATION = {"method": "isotonic_ovr", "classes": ["0", "1"], "rows": 10, "curves": [{"x": [0.0, 1.0], "y": [0.0, 1.0]}] * 2}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


class MemorySink:
    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = fail  # key prefixes whose writes fail

    def put(self, key: str, data: bytes) -> None:
        if key.startswith(self.fail):
            raise ConnectionError("S3 is unreachable")
        self.objects[key] = data


def _columns(data: bytes) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(gzip.decompress(data))
    return found


def test_a_flush_writes_each_capture_objects_predictions_beside_it_column_by_column() -> None:
    clock, sink = Clock(), MemorySink()
    buffer = CaptureBuffer(lambda: sink, clock=clock)
    buffer.add(
        "m", 3, "r1", NAMES, "records", [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}], ["1", "0"], probabilities=[[0.2, 0.8], [0.9, 0.1]]
    )
    clock.now += 1.5
    buffer.add("m", 4, "r2", NAMES, "columns", [[3.0], ["z"]], ["1"], ids=["own-id"], probabilities=[[0.4, 0.6]])
    buffer.add("m", 4, "r3", NAMES, "rows", [[4.0, "w"]], [7.5])  # no probabilities (a regressor's row)
    buffer.add("m", 4, "r4", NAMES, "rows", [[5.0, "v"], [6.0, "u"]], ["0", "1"], probabilities=[[1.0], [0.5, 0.5]])  # ragged
    (key,) = buffer.flush()
    assert sorted(sink.objects) == sorted([key, predictions_key(key)])
    assert predictions_key(key) == key.replace("capture/", "predictions/", 1).replace(".jsonl.gz", ".json.gz")
    columns = _columns(sink.objects[predictions_key(key)])
    rows = list(decode_records(sink.objects[key], key))
    assert columns == {
        "format": FORMAT,
        "model": "m",
        "ts": [timestamp(T0), timestamp(T0 + timedelta(seconds=1.5))] + [timestamp(T0 + timedelta(seconds=1.5))] * 2,
        "version": [3, 4, 4, 4],
        "rows": [2, 1, 1, 2],
        "width": [2, 2, 0, 0],
        "id": [r["id"] for r in rows],
        "prediction": [r["prediction"] for r in rows],
        "probabilities": [0.2, 0.8, 0.9, 0.1, 0.4, 0.6],
    }
    assert columns["id"] == ["r1-0", "r1-1", "own-id", "r3-0", "r4-0", "r4-1"]
    assert [r["ts"] for r in rows] == [t for t, n in zip(columns["ts"], columns["rows"], strict=True) for _ in range(n)]


def test_a_failed_predictions_write_keeps_the_capture_object_reports_and_leaves_the_rest_for_the_next_attempt() -> None:
    clock, sink, failures = Clock(), MemorySink(fail=("predictions/",)), []
    buffer = CaptureBuffer(lambda: sink, clock=clock, on_failure=lambda *a: failures.append(a))
    buffer.add("m", 1, "r1", NAMES, "rows", [[1.0, "x"]], [0])
    buffer.add("n", 1, "r2", NAMES, "rows", [[1.0, "x"]], [0])
    written = buffer.flush()
    assert [k.split("/")[1] for k in written] == ["m"]  # m's capture object is stored; its rows are not written again
    assert list(sink.objects) == written
    assert failures == [("flush", 1, "predictions object (the capture object was written): ConnectionError: S3 is unreachable")]
    assert buffer.rows == 1  # n's rows wait for the next attempt, which backs off as after any failed write
    sink.fail = ()
    assert buffer.maybe_flush() == []
    clock.now += 60
    (again,) = buffer.maybe_flush()
    assert again.split("/")[1] == "n"
    assert predictions_key(again) in sink.objects


def test_the_s3_sink_labels_predictions_objects_as_json() -> None:
    calls: list[dict[str, Any]] = []

    class S3:
        def put_object(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    S3CaptureSink("bucket", S3()).put("capture/m/x.jsonl.gz", b"rows")
    S3CaptureSink("bucket", S3()).put("predictions/m/x.json.gz", b"columns")
    assert [c["ContentType"] for c in calls] == ["application/x-ndjson", "application/json"]
    assert {c["ContentEncoding"] for c in calls} == {"gzip"}


def test_keys_and_prefixes_map_from_the_capture_layout_only() -> None:
    assert (
        predictions_key("capture/m/2026/12/02/10/20261202T103000-ab.jsonl.gz") == "predictions/m/2026/12/02/10/20261202T103000-ab.json.gz"
    )
    assert predictions_prefix("capture/m/2026/12/02/10/") == "predictions/m/2026/12/02/10/"
    for bad in ("reports/m/x.jsonl.gz", "capture/m/x.json"):
        with pytest.raises(ValueError, match="not a capture key"):
            predictions_key(bad)
    with pytest.raises(ValueError, match="not a capture prefix"):
        predictions_prefix("ground-truth/m/")


# -- the join reads either to the same result ------------------------------------------------------------------------
def _traffic(seed: int) -> tuple[MemorySink, dict[str, Label]]:
    """Three hours of requests (two versions, caller ids repeated across requests, default ids), flushed every few
    requests, and labels for some of them: in time, before the prediction, late, untimed, unknown, corrected."""
    rng = random.Random(seed)
    clock, sink = Clock(T0 - timedelta(hours=1)), MemorySink()
    buffer = CaptureBuffer(lambda: sink, max_rows=40, max_seconds=1e9, clock=clock)
    made: dict[str, datetime] = {}
    for request in range(120):
        clock.now += rng.uniform(0, 120)
        rows = rng.randint(1, 6)
        ids = [f"own-{rng.randint(0, 60)}" for _ in range(rows)] if rng.random() < 0.3 else None
        if ids is not None and len(set(ids)) < rows:
            ids = None
        p1 = [round(rng.random(), 7) for _ in range(rows)]
        buffer.add(
            "m",
            1 + request % 2,
            f"q{request}",
            NAMES,
            "rows",
            [[rng.random(), "x"] for _ in range(rows)],
            [str(int(p >= 0.5)) for p in p1],
            ids=ids,
            probabilities=[[round(1 - p, 7), p] for p in p1],
        )
        for pid in ids or [f"q{request}-{i}" for i in range(rows)]:
            made[pid] = datetime.fromtimestamp(clock.now, UTC)
        buffer.maybe_flush()
    buffer.flush()
    labels: list[Label] = []
    for pid, when in made.items():
        pick = rng.random()
        if pick < 0.5:
            labels.append(Label(pid, rng.choice(["0", "1"]), when + timedelta(minutes=rng.randint(0, 90)) if pick < 0.4 else None))
        elif pick < 0.55:
            labels.append(Label(pid, "1", when - timedelta(seconds=1)))  # before the prediction
        elif pick < 0.6:
            labels.append(Label(pid, "0", when + timedelta(hours=3)))  # late
    labels += [Label("nobody", "1"), Label(labels[0].id, "1" if labels[0].label == "0" else "0", labels[0].event_time)]
    truth = GroundTruth()
    truth.add(labels, "labels")
    return sink, truth.labels


def _joiner(labels: dict[str, Label], **kwargs: Any) -> Joiner:
    # the window starts inside the first hour, so some objects hold rows on both sides of its start
    return Joiner(
        labels, start=T0 - timedelta(minutes=40), end=T0 + timedelta(hours=2), label_delay=timedelta(hours=1), classes=["0", "1"], **kwargs
    )


def _check(joined: Joined) -> dict[str, Any]:
    result = check_quality(
        joined,
        model="m",
        task="binary_classification",
        window=Window(start="s", end="e", label="w"),
        generated_at="now",
        config=Quality(min_labels=1),
        classes=["0", "1"],
        calibrations={1: CALIBRATION, 2: CALIBRATION},
        holdouts={},
    )
    return {
        v.version: (v.predictions, v.labelled, v.realized, v.estimated, v.estimated_labelled, v.confusion_matrix) for v in result.versions
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reading_the_predictions_objects_joins_exactly_as_reading_the_capture_objects(seed: int) -> None:
    sink, labels = _traffic(seed)
    captures = sorted(k for k in sink.objects if k.startswith("capture/"))
    assert len(captures) > 3
    from_rows, from_columns = _joiner(labels), _joiner(labels)
    for key in captures:
        from_rows.add_stream(io.BytesIO(sink.objects[key]), key)
        assert from_columns.add_predictions(sink.objects[predictions_key(key)], predictions_key(key), capture=key)
    rows, columns = from_rows.result(), from_columns.result()
    assert vars(rows.counts) == vars(columns.counts)
    assert rows.counts.joined > 20
    assert min(rows.counts.before_prediction, rows.counts.late, rows.counts.unmatched) > 0
    assert rows.probabilities == columns.probabilities == "captured"
    assert rows.labelled_sources == columns.labelled_sources
    assert sorted(rows.versions) == sorted(columns.versions) == [1, 2]
    for number, version in rows.versions.items():
        other = columns.versions[number]
        assert version.predictions == other.predictions
        assert version.all_codes().tolist() == other.all_codes().tolist()
        assert np.array_equal(version.all_probabilities(2), other.all_probabilities(2))
        assert version.labelled.truth == other.labelled.truth
        assert version.labelled.predicted == other.labelled.predicted
        assert np.array_equal(np.array(version.labelled.probabilities), np.array(other.labelled.probabilities))
    assert _check(rows) == _check(columns)
    assert len(columns.sources) == len(captures)


def test_a_duplicate_caller_id_keeps_the_latest_row_from_columns_too() -> None:
    clock, sink = Clock(), MemorySink()
    buffer = CaptureBuffer(lambda: sink, clock=clock)
    buffer.add("m", 1, "r1", NAMES, "rows", [[1.0, "x"]], ["0"], ids=["a"], probabilities=[[0.9, 0.1]])
    clock.now += 60
    buffer.add("m", 2, "r2", NAMES, "rows", [[1.0, "x"]], ["1"], ids=["a"], probabilities=[[0.2, 0.8]])
    (key,) = buffer.flush()
    joiner = _joiner({"a": Label("a", "1")})
    assert joiner.add_predictions(sink.objects[predictions_key(key)], "p")
    joined = joiner.result()
    assert joined.counts.duplicate_predictions == 1
    assert (joined.versions[1].labelled.predicted, joined.versions[2].labelled.predicted) == ([], ["1"])
    assert joined.versions[2].labelled.probabilities[0].tolist() == [0.2, 0.8]


def _object(**change: Any) -> bytes:
    columns: dict[str, Any] = {
        "format": FORMAT,
        "model": "m",
        "ts": [timestamp(T0)],
        "version": [1],
        "rows": [2],
        "width": [2],
        "id": ["a", "b"],
        "prediction": ["1", "0"],
        "probabilities": [0.3, 0.7, 0.6, 0.4],
    }
    return gzip.compress(json.dumps(columns | change).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"\x1f\x8bnot gzip",
        b"{not json",
        _object(format="predictions/9"),
        _object(version=[1, 2]),
        _object(id=["a"]),
        _object(rows=[-1]),
        _object(probabilities=[0.3, 0.7]),
        _object(ts="2026-12-02"),
    ],
)
def test_a_predictions_object_that_does_not_read_is_declined_and_counts_nothing(data: bytes) -> None:
    joiner = _joiner({"a": Label("a", "1")})
    assert not joiner.add_predictions(data, "p")
    joined = joiner.result()
    assert (joined.sources, joined.versions, joined.counts.joined) == ([], {}, 0)


def test_without_probabilities_it_is_declined_only_when_they_can_be_recomputed_from_the_capture() -> None:
    plain = _object(width=[0], probabilities=[])
    rescored = _joiner({"a": Label("a", "1")}, scorer=lambda version, records: np.tile([0.5, 0.5], (len(records), 1)))
    assert not rescored.add_predictions(plain, "p")  # the capture object's features are needed
    assert rescored.add_predictions(_object(), "p")  # it has them: no need to recompute
    unscored = _joiner({"a": Label("a", "1")})
    assert unscored.add_predictions(gzip.decompress(plain), "p")  # plain JSON reads too
    joined = unscored.result()
    assert joined.probabilities == "none"
    assert (joined.versions[1].predictions, joined.versions[1].labelled.truth, joined.versions[1].labelled.probabilities) == (2, ["1"], [])


def test_regressor_predictions_objects_join_by_value() -> None:
    data = _object(width=[0], probabilities=[], prediction=[1.5, 2.5])
    joiner = Joiner(
        {"b": Label("b", 2.0)}, start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=1), label_delay=timedelta(hours=1), classes=None
    )
    assert joiner.add_predictions(data, "p")
    joined = joiner.result()
    assert joined.versions[1].labelled.predicted == [2.5]
    assert joined.versions[1].codes == []


def test_the_id_prefilter_only_narrows_what_the_labels_are_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    sink, labels = _traffic(4)
    captures = sorted(k for k in sink.objects if k.startswith("capture/"))
    exact = _joiner(labels)
    for key in captures:
        exact.add_stream(io.BytesIO(sink.objects[key]), key)
    monkeypatch.setattr(_IdFilter, "BITS", 4)  # nearly every id collides with a labelled one's bucket
    crowded = _joiner(labels)
    assert len(crowded._labelled.candidates(["x", "y", "z", None])) >= 3
    for key in captures:
        crowded.add_stream(io.BytesIO(sink.objects[key]), key)
    a, b = exact.result(), crowded.result()
    assert vars(a.counts) == vars(b.counts)
    assert {n: v.labelled.truth for n, v in a.versions.items()} == {n: v.labelled.truth for n, v in b.versions.items()}


def test_empty_objects_wide_integer_labels_and_objects_with_and_without_probabilities() -> None:
    empty = _object(ts=[], version=[], rows=[], width=[], id=[], prediction=[], probabilities=[])
    joiner = _joiner({"a": Label("a", "1"), "c": Label("c", "0")})
    assert joiner.add_predictions(empty, "empty")
    assert joiner.add_predictions(_object(), "with")  # a: labelled, with probabilities
    assert joiner.add_predictions(_object(id=["c", "d"], width=[0], probabilities=[]), "without")  # c: labelled, none
    joined = joiner.result()
    labelled = joined.versions[1].labelled
    assert (labelled.truth, len(labelled.probabilities)) == (["1", "0"], 1)  # only the row that has them
    assert joined.versions[1].predictions == 4
    assert joined.sources == ["empty", "with", "without"]

    wide = Joiner({}, start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=1), label_delay=timedelta(hours=1), classes=[0, 5000])
    assert wide.add_predictions(_object(prediction=[5000, 0]), "wide")  # a range too wide for a table
    assert wide.result().versions[1].all_codes().tolist() == [1, 0]
    assert VersionRows(1).all_codes().tolist() == []
