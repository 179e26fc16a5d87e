"""The capture format shared by the inference Lambda (writer) and the drift check (reader)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone

import pytest

from serverless_mlops.store.capture_format import (
    CaptureFormatError,
    capture_key,
    decode_records,
    encode_records,
    hour_prefix,
    parse_timestamp,
    timestamp,
    window_prefixes,
)

WHEN = datetime(2026, 11, 25, 21, 4, 5, 123000, tzinfo=UTC)
ROW = {
    "ts": "2026-11-25T21:04:05.123Z",
    "request_id": "r1",
    "model": "diabetes",
    "version": 3,
    "features": {"age": 52.0, "sex": "a"},
    "prediction": 151.2,
}


def test_keys_are_partitioned_by_utc_hour() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=-5)))
    assert hour_prefix("diabetes", local) == "capture/diabetes/2026/11/25/21/"
    assert capture_key("diabetes", WHEN, "abc") == "capture/diabetes/2026/11/25/21/20261125T210405-abc.jsonl.gz"
    assert capture_key("diabetes", WHEN) != capture_key("diabetes", WHEN)


def test_window_prefixes_cover_every_hour_the_window_touches() -> None:
    start = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
    prefixes = window_prefixes("m", start, start + timedelta(hours=2))
    assert prefixes == ["capture/m/2026/11/25/22/", "capture/m/2026/11/25/23/", "capture/m/2026/11/26/00/"]
    assert window_prefixes("m", start, start + timedelta(minutes=1)) == ["capture/m/2026/11/25/22/"]
    with pytest.raises(ValueError, match="must end after it starts"):
        window_prefixes("m", start, start)


def test_timestamps_round_trip_and_sort_as_text() -> None:
    assert timestamp(WHEN) == "2026-11-25T21:04:05.123Z"
    assert parse_timestamp(timestamp(WHEN)) == WHEN
    later = WHEN + timedelta(milliseconds=1)
    assert timestamp(WHEN) < timestamp(later)


def test_records_round_trip_through_gzip_json_lines() -> None:
    data = encode_records([ROW, {**ROW, "request_id": "r2", "prediction": "malignant"}])
    assert data[:2] == b"\x1f\x8b"
    rows = list(decode_records(data, "s3://b/k"))
    assert rows == [ROW, {**ROW, "request_id": "r2", "prediction": "malignant"}]
    plain = list(decode_records(b'{"ts":"t","model":"m","version":1,"features":{},"prediction":1}\n\n', "plain.jsonl"))
    assert [row["model"] for row in plain] == ["m"]


def test_non_finite_values_are_refused_when_writing() -> None:
    with pytest.raises(ValueError):
        encode_records([{**ROW, "prediction": float("nan")}])


@pytest.mark.parametrize(
    ("data", "problem", "line"),
    [
        (gzip.compress(b'{"ts": 1}\nnot json\n', mtime=0), "missing model, version, features, prediction", 1),
        (gzip.compress(b'{"ts":"t","model":"m","version":1,"features":{},"prediction":1}\n{oops\n', mtime=0), "invalid JSON", 2),
        (b"[1, 2]\n", "expected a JSON object", 1),
        (b'{"ts":"t","model":"m","version":1,"features":[1],"prediction":1}\n', "'features' must be an object", 1),
        (b"\x1f\x8b\x08broken", "not gzip JSON Lines", None),
        (b"\xff\xfe", "not gzip JSON Lines", None),
    ],
)
def test_malformed_objects_name_the_source_and_line(data: bytes, problem: str, line: int | None) -> None:
    with pytest.raises(CaptureFormatError) as caught:
        list(decode_records(data, "s3://bucket/capture/m/x.jsonl.gz"))
    assert problem in str(caught.value)
    assert "s3://bucket/capture/m/x.jsonl.gz" in str(caught.value)
    assert caught.value.line == line
