"""The capture format's optional ``shadow`` field: written by the capture buffer when a shadow scored the rows, read
back as is, and refused (naming the object and line) when malformed."""

from __future__ import annotations

import gzip

import pytest

from serverless_mlops.serving.capture_writer import CaptureBuffer
from serverless_mlops.store.capture_format import CaptureFormatError, decode_records


class Sink:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data


def test_captured_rows_carry_the_shadow_prediction_when_a_shadow_scored_them() -> None:
    sink = Sink()
    buffer = CaptureBuffer(lambda: sink, max_rows=100, max_seconds=60, clock=lambda: 1_795_600_000.0)
    buffer.add("m", 1, "r1", ["a", "b"], "rows", [[1.0, 2.0], [3.0, 4.0]], [0, 1], shadow=(2, [1, 1]))
    buffer.add("m", 1, "r2", ["a", "b"], "rows", [[5.0, 6.0]], [0])
    buffer.flush()

    ((key, data),) = [(key, data) for key, data in sink.objects.items() if key.startswith("capture/")]
    rows = list(decode_records(data, key))
    assert [row.get("shadow") for row in rows] == [{"version": 2, "prediction": 1}, {"version": 2, "prediction": 1}, None]
    assert [row["prediction"] for row in rows] == [0, 1, 0]


@pytest.mark.parametrize(
    "shadow", ['"x"', '{"prediction": 1}', '{"version": "2", "prediction": 1}', '{"version": true, "prediction": 1}', '{"version": 2}']
)
def test_a_malformed_shadow_field_is_refused_with_its_line(shadow: str) -> None:
    good = '{"ts": "2026-12-07T10:00:00.000Z", "model": "m", "version": 1, "features": {}, "prediction": 0}'
    bad = good[:-1] + f', "shadow": {shadow}}}'
    with pytest.raises(CaptureFormatError, match=r"capture file s3://b/k line 2: 'shadow' must be an object"):
        list(decode_records(gzip.compress(f"{good}\n{bad}\n".encode()), "s3://b/k"))
