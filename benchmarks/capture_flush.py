"""What the predictions object adds to a capture flush (`python benchmarks/capture_flush.py`).

A flush runs inside the request that finds the buffer full (every ``MLOPS_CAPTURE_MAX_ROWS`` rows, 1,000) or old
(60 s). Since the quality check reads predictions objects, a flush encodes two objects and writes both. Measured here
on 1,000 captured rows of a binary classifier with 20 features (10 requests of 100 rows, served probabilities):

- encoding, one core: the capture object alone (what a flush did before) against the capture object plus its
  predictions object (``CaptureBuffer``'s own encoders);
- writing, against a moto S3 server on 127.0.0.1 in a process of its own (as S3 is another machine: the two PUTs can
  overlap only where the server does not share the client's interpreter) through the same budgeted sink the endpoint
  uses: one PUT (before) against the two PUTs a flush now makes at once (the predictions object on a thread of
  its own);
- a whole flush (encode and write) through :meth:`CaptureBuffer.flush`, now.

Medians of FLUSH_BENCH_RUNS flushes (default 200), side by side in one run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from foundation import machine  # noqa: E402

ROWS_PER_REQUEST = 100
REQUESTS = 10
FEATURES = 20


def _buffer(sink: Any, clock: list[float]) -> Any:
    import numpy as np

    from serverless_mlops.serving.capture_writer import CaptureBuffer

    rng = np.random.default_rng(7)
    names = [f"f{i}" for i in range(FEATURES)]
    buffer = CaptureBuffer(lambda: sink, max_rows=REQUESTS * ROWS_PER_REQUEST, max_seconds=1e9, clock=lambda: clock[0])
    for request in range(REQUESTS):
        p1 = np.round(rng.random(ROWS_PER_REQUEST), 7).tolist()
        rows = np.round(rng.normal(size=(ROWS_PER_REQUEST, FEATURES)), 6).tolist()
        served = [[round(1 - p, 7), p] for p in p1]
        buffer.add("bench", 1, f"req-{request}", names, "rows", rows, [int(p >= 0.5) for p in p1], probabilities=served)
    return buffer


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:.2f} ms"


def main() -> None:
    from serverless_mlops.aws import client
    from serverless_mlops.local.moto import ensure_resources, free_port
    from serverless_mlops.serving.capture_writer import S3CaptureSink, encode, encode_predictions
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.capture_format import capture_key
    from serverless_mlops.store.prediction_columns import predictions_key

    runs = int(os.environ.get("FLUSH_BENCH_RUNS", "200"))
    clock = [1_796_000_000.0]
    items = _buffer(None, clock)._pending
    rows, columns = [], []
    for _ in range(runs):
        started = time.perf_counter()
        capture = encode([line for captured in items for line in captured.lines()])
        middle = time.perf_counter()
        predictions = encode_predictions("bench", items)
        rows.append(middle - started)
        columns.append(time.perf_counter() - middle)
    both = [a + b for a, b in zip(rows, columns, strict=True)]

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        settings = Settings(endpoint_url=f"http://127.0.0.1:{port}")
        for _ in range(100):  # up within 10 s
            try:
                ensure_resources(settings)
                break
            except Exception:
                time.sleep(0.1)
        else:
            raise SystemExit("moto_server did not start")
        s3 = client("s3", settings, budget_ms=400)
        sink = S3CaptureSink(settings.bucket, s3)
        key = capture_key("bench", datetime.now(UTC))
        one, two = [], []
        pool = ThreadPoolExecutor(max_workers=1)
        for _ in range(runs):
            started = time.perf_counter()
            sink.put(key, capture)
            one.append(time.perf_counter() - started)
            started = time.perf_counter()
            beside = pool.submit(sink.put, predictions_key(key), predictions)
            sink.put(key, capture)
            beside.result()
            two.append(time.perf_counter() - started)
        flushes = []
        for _ in range(runs):
            buffer = _buffer(sink, clock)
            started = time.perf_counter()
            written = buffer.flush()
            flushes.append(time.perf_counter() - started)
            assert len(written) == 1
        pool.shutdown()
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"\n### A capture flush of {REQUESTS * ROWS_PER_REQUEST:,} rows ({FEATURES} features, binary probabilities)")
    print(f"\n{machine()}; medians of {runs} flushes.\n")
    print("| measurement | capture object only (before) | capture + predictions object (now) | added |\n| --- | --- | --- | --- |")
    added = (statistics.median(both) - statistics.median(rows)) * 1e3
    print(f"| encode, one core | {median_ms(rows)} | {median_ms(both)} | +{added:.2f} ms |")
    added = (statistics.median(two) - statistics.median(one)) * 1e3
    print(f"| write to moto S3 (own process, 127.0.0.1; two PUTs at once) | {median_ms(one)} | {median_ms(two)} | {added:+.2f} ms |")
    print(f"| whole flush through CaptureBuffer.flush | | {median_ms(flushes)} | |")
    sizes = len(capture) / 1e3, (len(capture) + len(predictions)) / 1e3, len(predictions) / 1e3
    print("| object size, gzip | {:.1f} kB | {:.1f} kB | +{:.1f} kB |".format(*sizes))


if __name__ == "__main__":
    main()
