"""Fault benchmark (`make bench`): one warm inference handler while the registry and S3 are down.

The handler's clients talk to a local moto server through a 127.0.0.1 endpoint that relays to it (healthy), or
accepts connections and never answers (black hole), or refuses them (nothing listens): the FaultyEndpoint of the
fault tests. For each, one warm handler (breast-cancer, version 1 in production, loaded from moto first) then answers
``REQUESTS`` one-row predictions in a row with the deployed defaults (alias re-checked every 30 s, capture flushed
every 60 s, budgets of 200 ms for the alias check and 400 ms for a flush, back-off doubling up to 300 s), while a
test clock advances one second per request: so the ``REQUESTS`` predictions span that many seconds of alias checks,
flushes and back-offs, and each socket times out in real time. Prints p50/p99/max latency per backend, how many
requests took longer than 50 ms, and how many calls reached the backend and failed, as a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ServerlessMlops")

from foundation import machine  # noqa: E402  (benchmarks/ is on sys.path when this runs as a script)

REQUESTS = 2000
MODEL = "breast-cancer"
SLOW_MS = 50.0
BACKENDS = {"healthy (moto)": "relay", "black hole (accepts, never answers)": "black_hole", "refused (nothing listens)": "refuse"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_600_000.0

    def __call__(self) -> float:
        return self.now


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def registered(endpoint_url: str) -> None:
    from serverless_mlops.local.moto import ensure_resources
    from serverless_mlops.model.fit import train
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends, register_run

    settings = Settings(endpoint_url=endpoint_url)
    ensure_resources(settings)
    backends = Backends.from_settings(settings)
    entry = register_run(train(load_spec(ROOT / "models" / f"{MODEL}.yaml")), backends, by="bench")
    backends.registry.promote(MODEL, entry.version, by="bench", reason="benchmark")


def run(moto_port: int, mode: str) -> dict[str, Any]:
    """One warm handler, then REQUESTS predictions with the backend in ``mode``; latencies and failure counts."""
    from functions.inference.app import create_handler
    from functions.inference.telemetry import PowertoolsTelemetry
    from serverless_mlops.local.http_api import LambdaHttpApp, http_api_event
    from serverless_mlops.serving.endpoint import Endpoint
    from serverless_mlops.serving.endpoint_settings import EndpointSettings
    from serverless_mlops.settings import Settings
    from tests.helpers.faults import FaultyEndpoint
    from tests.helpers.inference import records

    failures = {"checks": 0, "flushes": 0, "dropped": 0}

    class Counting(PowertoolsTelemetry):
        def model_load_failed(self, model: str, reason: str) -> None:
            failures["checks"] += 1
            super().model_load_failed(model, reason)

        def capture_failed(self, what: str, rows: int, reason: str) -> None:
            failures["flushes" if what == "flush" else "dropped"] += 1 if what == "flush" else rows
            super().capture_failed(what, rows, reason)

    body = {"instances": records(MODEL, 1)}
    with FaultyEndpoint(moto_port) as backend:
        clock = Clock()
        endpoint = Endpoint(EndpointSettings(aws=Settings(endpoint_url=backend.url)), clock=clock, telemetry=Counting())
        handler = create_handler(lambda: endpoint)
        app = LambdaHttpApp(handler)
        request = http_api_event(
            method="POST",
            path=f"/v1/models/{MODEL}/predict",
            query_string=b"",
            headers=[(b"content-type", b"application/json"), (b"host", b"127.0.0.1")],
            body=json.dumps(body).encode(),
            source_ip="127.0.0.1",
        )
        for _ in range(200):  # the cold load (from moto) and a warm-up, within the first refresh interval
            if handler(request, app.context())["statusCode"] != 200:
                raise SystemExit("the warm-up request failed")
        getattr(backend, mode)()
        latencies = []
        for _ in range(REQUESTS):
            clock.now += 1
            start = time.perf_counter()
            response = handler(request, app.context())
            latencies.append((time.perf_counter() - start) * 1e3)
            if response["statusCode"] != 200:
                raise SystemExit(f"{mode}: the handler answered {response['statusCode']}: {response['body']}")
        return {"latencies": latencies, "held": backend.held, **failures}


def main() -> None:
    from serverless_mlops.local.moto import LocalAws

    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    # the handler prints one EMF line per request and a log line per failure; its logger keeps the stream it was
    # created with, so one null stream stays open for the whole run
    with LocalAws() as aws, open(os.devnull, "w") as null:
        registered(aws.endpoint_url)
        for label, mode in BACKENDS.items():
            with redirect_stdout(null):
                result = run(aws.port, mode)
            latencies = result["latencies"]
            slow = sum(1 for ms in latencies if ms > SLOW_MS)
            reached = "-" if mode == "relay" else f"{result['checks']} alias checks, {result['flushes']} flushes"
            if mode == "black_hole":
                reached += f" ({result['held']} connections held)"
            if result["dropped"]:
                reached += f"; {result['dropped']:,} captured rows dropped (buffer bound 2,000)"
            rows.append(
                (
                    label,
                    f"{statistics.median(latencies):.2f}",
                    f"{percentile(latencies, 0.99):.2f}",
                    f"{max(latencies):.0f}",
                    str(slow),
                    reached,
                )
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        f"\n{REQUESTS:,} one-row predictions per backend, one per second of a test clock (alias re-checked every 30 s, "
        "capture flushed every 60 s, back-off doubling up to 300 s; budgets 200 ms per alias check, 400 ms per flush)"
    )
    print(f"\n| registry and S3 | p50 ms | p99 ms | max ms | requests > {SLOW_MS:.0f} ms | failed calls (each counted) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
