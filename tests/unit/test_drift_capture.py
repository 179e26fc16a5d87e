"""Reading captured rows into columns: windows, odd values, and malformed files reported by name and skipped."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serverless_mlops.drift import capture_reader
from serverless_mlops.drift.capture_reader import CaptureReader, read_file
from serverless_mlops.errors import DataError
from serverless_mlops.store.capture_format import encode_records, timestamp

KINDS = {"x": "numeric", "colour": "categorical"}
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def row(i: int, *, x: Any = None, colour: Any = "red", when: datetime | None = None, version: int = 1) -> dict[str, Any]:
    return {
        "ts": timestamp(when or T0 + timedelta(seconds=i)),
        "request_id": str(i),
        "model": "m",
        "version": version,
        "features": {"x": float(i) if x is None else x, "colour": colour},
        "prediction": "yes" if i % 2 else "no",
    }


def reader(**kwargs: Any) -> CaptureReader:
    return CaptureReader(KINDS, "categorical", **kwargs)


def test_rows_become_columns() -> None:
    r = reader()
    r.add(io.BytesIO(encode_records([row(i) for i in range(10)])), "a.jsonl.gz")
    r.add(io.BytesIO(gzip.decompress(encode_records([row(5, colour="blue", version=2)]))), "b.jsonl")  # plain JSON Lines
    data = r.result
    assert data.rows == 11
    assert data.columns["x"].values().tolist() == [*map(float, range(10)), 5.0]
    assert data.columns["colour"].counts == {"red": 10, "blue": 1}
    assert data.prediction.counts == {"no": 5, "yes": 6}
    assert data.versions == {1: 10, 2: 1}
    assert data.sources == ["a.jsonl.gz", "b.jsonl"]
    assert data.skipped == []


def test_only_rows_inside_the_window_count() -> None:
    r = reader(start=T0 + timedelta(seconds=3), end=T0 + timedelta(seconds=7))
    r.add(io.BytesIO(encode_records([row(i) for i in range(10)])), "a")
    assert r.result.columns["x"].values().tolist() == [3.0, 4.0, 5.0, 6.0]


def test_missing_and_wrong_values_are_missing_not_errors() -> None:
    rows = [row(0, x=None), row(1, x="abc"), row(2, x=True), row(3, colour=None), row(4, colour=7)]
    rows[0]["features"]["x"] = None
    del rows[3]["features"]["colour"]
    r = reader()
    r.add(io.BytesIO(encode_records(rows)), "odd")
    x = r.result.columns["x"]
    assert np.isnan(x.values()[:3]).tolist() == [True, True, True]
    assert x.missing == 3
    colour = r.result.columns["colour"]
    assert colour.missing == 1
    assert colour.counts == {"red": 3, "7": 1}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"ts": "t"', "line 2: invalid JSON"),
        (b"[1, 2]", "line 2: expected a JSON object"),
        (b'{"ts": "t", "model": "m", "version": 1, "features": {}}', "line 2: missing prediction"),
        (b'{"ts": "t", "model": "m", "version": 1, "features": [], "prediction": 1}', "line 2: 'features' must be an object"),
    ],
)
def test_a_malformed_file_is_skipped_and_named_with_its_line(content: bytes, problem: str) -> None:
    good = gzip.decompress(encode_records([row(0)]))
    r = reader()
    r.add(io.BytesIO(good + content + b"\n" + good), "capture/m/bad.jsonl.gz")
    r.add(io.BytesIO(encode_records([row(1), row(2)])), "capture/m/good.jsonl.gz")
    assert r.result.rows == 2  # nothing of the bad file, all of the good one
    assert r.result.sources == ["capture/m/good.jsonl.gz"]
    [skipped] = r.result.skipped
    assert skipped.source == "capture/m/bad.jsonl.gz"
    assert f"capture file capture/m/bad.jsonl.gz {problem}" in skipped.error


def test_line_numbers_count_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_reader, "READ_BYTES", 100)  # blocks of a line or two
    lines = gzip.decompress(encode_records([row(i) for i in range(7)])).splitlines()
    lines.insert(5, b"")  # blank lines are skipped but counted
    lines.insert(7, b"not json")
    r = reader()
    r.add(io.BytesIO(b"\n".join(lines)), "chunky")
    [skipped] = r.result.skipped
    assert "chunky line 8: invalid JSON" in skipped.error


def test_corrupt_gzip_is_skipped() -> None:
    data = encode_records([row(i) for i in range(50)])
    r = reader()
    r.add(io.BytesIO(data[: len(data) // 2]), "truncated.jsonl.gz")
    [skipped] = r.result.skipped
    assert "truncated.jsonl.gz: not gzip JSON Lines" in skipped.error
    assert r.result.rows == 0


def test_read_file(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl.gz"
    path.write_bytes(encode_records([row(i) for i in range(4)]))
    assert read_file(path, KINDS, "categorical").rows == 4
    with pytest.raises(DataError, match=r"missing\.jsonl: capture file not found"):
        read_file(tmp_path / "missing.jsonl", KINDS, "categorical")
    with pytest.raises(DataError, match="is a directory"):
        read_file(tmp_path, KINDS, "categorical")


def test_gzip_members_concatenated_and_a_last_line_without_newline() -> None:
    first = encode_records([row(i) for i in range(3)])
    second = gzip.compress(gzip.decompress(encode_records([row(i) for i in range(3, 5)])).rstrip(b"\n"))
    r = reader()
    r.add(io.BytesIO(first + second), "two-members.jsonl.gz")
    assert r.result.skipped == []
    assert r.result.columns["x"].values().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_source_with_no_row_in_the_window_adds_nothing() -> None:
    r = reader(start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    r.add(io.BytesIO(encode_records([row(i) for i in range(5)])), "old")
    assert r.result.rows == 0
    assert r.result.sources == ["old"]
    assert r.result.columns["x"].values().size == 0
