"""The newest labelled rows a quality breach hands to retraining (serverless_mlops/quality/recent_rows.py): the rows the
join kept (the latest capture of an id, only labels inside the delay), their captured features in the model's feature
order, the label as the target column, the newest ``cap`` of them oldest first, content-addressed under
holdout-recent/ (never feedback/, which training reads)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from serverless_mlops.errors import DataError
from serverless_mlops.quality.join import Joiner
from serverless_mlops.quality.joined import Joined
from serverless_mlops.quality.labels import GroundTruth, Label
from serverless_mlops.quality.recent_key import HOLDOUT_RECENT_PREFIX
from serverless_mlops.quality.recent_rows import MAX_ROWS, newest_labelled, to_csv, write_recent_rows
from serverless_mlops.retraining import contract
from serverless_mlops.store.capture_format import capture_key, timestamp

START = datetime(2026, 12, 1, tzinfo=UTC)
END = START + timedelta(days=7)
FEATURES = ["b", "a", "c"]  # the model's order, not the captured dicts' (a, b, c) nor alphabetical


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


class _S3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[dict[str, Any]] = []

    def get_paginator(self, _operation: str) -> _S3:
        return self

    def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        return [{"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)]}]

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": _Body(self.objects[Key])}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **kwargs: Any) -> None:
        self.objects[Key] = Body
        self.puts.append({"Key": Key, **kwargs})


def _row(pid: str, when: datetime, a: float, version: int = 1) -> dict[str, Any]:
    features = {"a": a, "b": a * 10, "c": "cat" if a > 2 else "dog"}
    return {"ts": timestamp(when), "model": "m", "version": version, "id": pid, "features": features, "prediction": "1"}


def _labels(*items: tuple[str, Any, datetime | None]) -> dict[str, Label]:
    truth = GroundTruth()
    truth.add([Label(pid, label, when) for pid, label, when in items], "test")
    return truth.labels


def _world(rows: list[dict[str, Any]], labels: dict[str, Label]) -> tuple[_S3, Joined]:
    s3 = _S3()
    body = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    s3.objects[capture_key("m", START + timedelta(hours=1), "x")] = body
    joiner = Joiner(labels, start=START, end=END, label_delay=timedelta(days=2), classes=["0", "1"])
    joiner.add_rows(rows)
    return s3, joiner.result()


def _read(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode())))


def test_the_prefix_is_the_contracts_and_not_the_feedback_training_reads() -> None:
    assert contract.HOLDOUT_RECENT_PREFIX == HOLDOUT_RECENT_PREFIX == "holdout-recent"
    assert HOLDOUT_RECENT_PREFIX != contract.FEEDBACK_PREFIX


def test_the_file_holds_the_joined_rows_features_in_the_models_order_and_the_label_as_target() -> None:
    t = START + timedelta(hours=1)
    rows = [
        _row("p1", t, 1.5),
        _row("p2", t + timedelta(minutes=1), 2.5, version=2),
        _row("dup", t + timedelta(minutes=2), 3.0),
        _row("dup", t + timedelta(minutes=3), 4.0),  # the latest capture of an id is the one the join kept
        _row("late", t + timedelta(minutes=4), 5.0),
        _row("unlabelled", t + timedelta(minutes=5), 6.0),
    ]
    labels = _labels(("p1", "0", t + timedelta(hours=1)), ("p2", "1", None), ("dup", "1", None), ("late", "0", t + timedelta(days=3)))
    s3, joined = _world(rows, labels)
    written = write_recent_rows(
        s3, "bkt", "m", joined, window_label="w1", start=START, end=END, feature_names=FEATURES, target="label", kms_key_id="key-1"
    )
    assert written is not None
    ((key, body),) = [(k, v) for k, v in s3.objects.items() if k.startswith(HOLDOUT_RECENT_PREFIX)]
    digest = hashlib.sha256(body).hexdigest()
    assert key == f"holdout-recent/m/w1/{digest}.csv"
    assert (written.uri, written.sha256, written.rows, written.labelled, written.window) == (f"s3://bkt/{key}", digest, 3, 3, "w1")
    assert _read(body) == [
        ["b", "a", "c", "label"],
        ["15.0", "1.5", "dog", "0"],  # both versions' rows, oldest first
        ["25.0", "2.5", "cat", "1"],
        ["40.0", "4.0", "cat", "1"],  # not 3.0: the earlier duplicate
    ]  # "late" (after the delay) and "unlabelled" are not rows the join kept
    assert s3.puts[0]["ServerSideEncryption"] == "aws:kms"
    assert s3.puts[0]["SSEKMSKeyId"] == "key-1"
    assert s3.puts[0]["ContentType"] == "text/csv"


def test_only_the_newest_rows_up_to_the_cap_are_kept() -> None:
    t = START + timedelta(hours=2)
    rows = [_row(f"p{i:02d}", t + timedelta(seconds=i), float(i)) for i in range(30)]
    s3, joined = _world(list(reversed(rows)), _labels(*((f"p{i:02d}", str(i % 2), None) for i in range(30))))
    newest = newest_labelled(joined, cap=5)
    assert [r.id for r in newest] == ["p25", "p26", "p27", "p28", "p29"]
    written = write_recent_rows(s3, "bkt", "m", joined, window_label="w", start=START, end=END, feature_names=["a"], target="y", cap=5)
    assert written is not None
    assert (written.rows, written.labelled) == (5, 30)
    body = s3.objects[written.uri.removeprefix("s3://bkt/")]
    assert _read(body)[1:] == [["25.0", "1"], ["26.0", "0"], ["27.0", "1"], ["28.0", "0"], ["29.0", "1"]]
    assert len(newest_labelled(joined)) == 30 < MAX_ROWS
    with pytest.raises(ValueError, match="cap must be at least 1"):
        newest_labelled(joined, cap=0)


def test_a_window_without_labelled_rows_writes_nothing() -> None:
    s3, joined = _world([_row("p1", START + timedelta(hours=1), 1.0)], {})
    assert write_recent_rows(s3, "bkt", "m", joined, window_label="w", start=START, end=END, feature_names=["a"], target="y") is None
    assert not [k for k in s3.objects if k.startswith(HOLDOUT_RECENT_PREFIX)]


def test_a_row_that_cannot_be_found_again_or_read_again_is_an_error_naming_it() -> None:
    t = START + timedelta(hours=1)
    s3, joined = _world([_row("p1", t, 1.0)], _labels(("p1", "1", None)))
    (key,) = s3.objects
    s3.objects[key] = gzip.compress(b'{"ts": 1}\n')
    with pytest.raises(DataError, match=rf"^s3://bkt/{key}: cannot read the captured features of the labelled rows again"):
        write_recent_rows(s3, "bkt", "m", joined, window_label="w", start=START, end=END, feature_names=["a"], target="y")
    rows = newest_labelled(joined)
    with pytest.raises(DataError, match=r"prediction 'p1' \(captured 2026-12-01T01:00:00.000Z\) joined a label but"):
        to_csv(rows, {}, ["a"], "y")
    with pytest.raises(DataError, match="target column 'a' is also a feature"):
        to_csv(rows, {"p1": {"a": 1}}, ["a"], "a")


def test_missing_values_are_empty_cells() -> None:
    rows = newest_labelled(_world([_row("p1", START + timedelta(hours=1), 1.0)], _labels(("p1", 1, None)))[1])
    assert _read(to_csv(rows, {"p1": {"a": None}}, ["a", "b"], "y")) == [["a", "b", "y"], ["", "", "1"]]
