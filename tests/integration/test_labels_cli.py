"""``mlops labels put MODEL FILE`` against moto (in-process): the whole file validated first (exit 1, one line naming
the line and field, nothing uploaded), then uploaded as it is where the quality check reads it; and the ground-truth
reader over several days and objects, the last label of an id winning."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serverless_mlops.cli import main
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.quality.labels import ground_truth_key, read_ground_truth
from serverless_mlops.store.lifecycle import Backends, register_run

NOW = datetime.now(UTC)
DAYS = (NOW - timedelta(days=1), NOW + timedelta(days=1))


@pytest.fixture
def registered(backends: Backends, trained_models: dict[str, TrainedModel]) -> Backends:
    for name in ("wine", "diabetes"):
        version = register_run(trained_models[name], backends, by="cli-test")
        backends.registry.promote(name, version.version, by="cli-test")
    return backends


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _stored(backends: Backends) -> list[str]:
    listing = backends.store.s3.list_objects_v2(Bucket=backends.store.bucket, Prefix="ground-truth/")
    return [item["Key"] for item in listing.get("Contents", [])]


def test_put_validates_then_uploads_the_file_as_it_is(registered: Backends, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_file = tmp_path / "wine-labels.csv"
    csv_file.write_text("id,label,event_time\nw-1,1,2026-12-07T10:00:00Z\nw-2,2,\nw-1,0,\n", encoding="utf-8")
    code, out, err = run(capsys, "labels", "put", "wine", str(csv_file))
    assert code == 0, err
    assert "wine: 3 label(s) for 2 prediction id(s), valid for version 1; uploaded to s3://" in out
    (key,) = _stored(registered)
    assert key.startswith(f"ground-truth/wine/{NOW:%Y/%m/%d}/")
    assert key.endswith(".csv")
    assert registered.store.s3.get_object(Bucket=registered.store.bucket, Key=key)["Body"].read() == csv_file.read_bytes()

    jsonl = tmp_path / "more.jsonl.gz"
    jsonl.write_bytes(gzip.compress(b'{"id": "w-2", "label": 0}\n'))
    code, out, err = run(capsys, "labels", "put", "wine", str(jsonl), "--json")
    assert code == 0, err
    receipt = json.loads(out)
    assert (receipt["labels"], receipt["distinct_ids"], receipt["version"]) == (1, 1, 1)
    assert receipt["uri"].endswith(".jsonl.gz")
    truth = read_ground_truth(
        registered.store.s3, registered.store.bucket, "wine", *DAYS, task="multiclass_classification", classes=[0, 1, 2]
    )
    assert {key: label.label for key, label in truth.labels.items()} == {"w-1": 0, "w-2": 0}  # the last label wins


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.csv", "id,label\nw-1,1\nw-2,9\n", "bad.csv: line 3, field label: not one of the model's classes (0, 1, 2)"),
        ("bad.jsonl", '{"id": "w-1", "label": 1}\n{"id": "", "label": 1}\n', "bad.jsonl: line 2, field id: an id must not be empty"),
        ("bad.csv", "id,target\nw-1,1\n", "bad.csv: line 1, field label: the header lacks the column 'label'"),
        ("labels.parquet", "x", "labels.parquet: a ground-truth file ends in .csv or .jsonl (optionally .gz)"),
    ],
)
def test_a_bad_file_is_one_line_exit_1_and_nothing_uploaded(
    registered: Backends, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "labels", "put", "wine", str(path))
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert expected in err
    assert _stored(registered) == []


def test_a_missing_file_an_unknown_model_and_a_regressors_text_label(
    registered: Backends, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "labels", "put", "wine", str(tmp_path / "nope.csv"))
    assert (code, "nope.csv: no such file" in err) == (1, True)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    code, _, err = run(capsys, "labels", "put", "wine", str(folder))
    assert (code, "is a directory" in err) == (1, True)
    path = tmp_path / "d.csv"
    path.write_text("id,label\nd-1,151.5\nd-2,high\n", encoding="utf-8")
    code, _, err = run(capsys, "labels", "put", "diabetes", str(path))
    assert (code, "line 3, field label: a regressor's label is a number" in err) == (1, True)
    code, _, err = run(capsys, "labels", "put", "no-such-model", str(path))
    assert code == 1
    assert len(err.strip().splitlines()) == 1


def test_the_reader_covers_the_days_of_a_range_and_skips_what_it_cannot_read(registered: Backends) -> None:
    s3, bucket = registered.store.s3, registered.store.bucket
    day1, day2, day3 = (datetime(2026, 12, d, 12, tzinfo=UTC) for d in (5, 6, 7))
    objects = {
        ground_truth_key("wine", day1, ".csv", "a"): b"id,label\nx,1\ny,1\n",
        ground_truth_key("wine", day2, ".jsonl", "b"): b'{"id":"x","label":2}\n',
        ground_truth_key("wine", day2 + timedelta(seconds=1), ".jsonl", "a"): b'{"id":"x","label":0}\n{"id":"x","label":1}\n',
        ground_truth_key("wine", day2, ".csv", "c"): b"id,label\nz,9\n",  # class 9: skipped as a whole
        f"ground-truth/wine/{day2:%Y/%m/%d}/notes.txt": b"hello",  # not a label file: skipped
        ground_truth_key("wine", day3, ".jsonl", "d"): b'{"id":"y","label":0}\n',  # outside the range
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    truth = read_ground_truth(s3, bucket, "wine", day1, day3 - timedelta(hours=12), task="multiclass_classification", classes=[0, 1, 2])
    assert {key: label.label for key, label in truth.labels.items()} == {"x": 1, "y": 1}  # the second day's last line
    assert (truth.rows, truth.replaced, len(truth.objects)) == (5, 3, 3)
    assert sorted(skip.source.rsplit("/", 1)[1] for skip in truth.skipped) == ["20261206T120000000000Z-c.csv", "notes.txt"]
    assert any("field label" in skip.reason for skip in truth.skipped)
