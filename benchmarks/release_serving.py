"""Serving during a release (`make bench`): the inference handler's latency for one row with no rollout, with a canary
on 50% of the keys, and with a shadow scoring every request (sample 1.0) or a fifth of them, side by side in one run.

The example breast-cancer model (30 numeric features, scikit-learn → ONNX) is registered under four names on moto
(in-process): one with a plain production alias, one whose alias has a canary (another version of the same graph) at
50%, two whose aliases have a shadow at sample 1.0 and 0.2. One handler (the deployed one, ``functions.inference.app``,
with its powertools decorators and EMF metrics, printed to /dev/null) serves all of them; requests go round-robin over
the configurations in many short rounds, so a busy machine slows all of them alike. Each request sends its own
``x-routing-key``. ``--runs N`` repeats the whole measurement N times in one process and ends with every run's ratio
and their median (the machine is shared: one run can land on a busy minute).

The issue's bar: the shadow adds at most 30% at p50. What it adds (docs/serving.md, "What it costs"): one more run of
the ONNX graph on the inputs production's validation already built (bound once to the session: no per-input
wrapping), the agreement with production's answer, and its guard metrics added to in-process sums (one EMF record per
shadow version every 10 s, not one per request).
"""

from __future__ import annotations

import argparse
import copy
import functools
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
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ServerlessMlops")

from _ratio import ratio  # noqa: E402
from foundation import machine  # noqa: E402

ROUNDS, PER_ROUND, WARM = 60, 50, 300
BAR = 0.30  # the issue's: the shadow at sample 1.0 adds at most 30% at p50
CONFIGS = {
    "no rollout": "bench-plain",
    "canary 50%": "bench-canary",
    "shadow, sample 1.0": "bench-shadow",
    "shadow, sample 0.2": "bench-shadow-sampled",
    "shadow, sample 1.0, a record per request": "bench-shadow",  # MLOPS_SHADOW_METRICS_SECONDS=0: what the sums save
}
PER_REQUEST = "shadow, sample 1.0, a record per request"


class Context:
    function_name = "inference"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:inference"
    aws_request_id = "bench"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def register_all(backends: Any, trained: Any) -> None:
    from serverless_mlops.store.lifecycle import lineage_of

    record = trained.record
    for name in dict.fromkeys(CONFIGS.values()):
        artifact = backends.store.put(name, trained.onnx_bytes, "model.onnx")
        profile = backends.store.put(name, trained.profile_bytes, "profile.json.gz")
        for run in ("champion", "candidate"):
            backends.registry.register(
                name,
                signature=record.signature.model_copy(update={"model": name}),
                artifact=artifact,
                profile=profile,
                metrics=record.metrics,
                parity=record.parity.model_dump(),
                lineage=lineage_of(record, run_id=f"{name}-{run}"),
                created_by="bench",
            )
        backends.registry.promote(name, 1, by="bench")
    backends.registry.set_canary("bench-canary", 2, 50, release_id="bench-release", by="bench")
    backends.registry.set_shadow("bench-shadow", 2, 1.0, by="bench")
    backends.registry.set_shadow("bench-shadow-sampled", 2, 0.2, by="bench")


def main(runs: int = 1) -> None:
    from moto import mock_aws

    from functions.inference.app import create_handler
    from functions.inference.telemetry import PowertoolsTelemetry
    from serverless_mlops.local.moto import ensure_resources
    from serverless_mlops.model.fit import train
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.serving.endpoint import Endpoint
    from serverless_mlops.serving.endpoint_settings import EndpointSettings
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends

    spec = load_spec(ROOT / "models" / "breast-cancer.yaml")
    trained = train(spec)
    import pandas as pd

    from serverless_mlops.model.data import load_dataset

    frame: pd.DataFrame = load_dataset(spec).frame
    row = {f.name: float(frame.iloc[0][f.name]) for f in spec.features}
    template = json.loads((ROOT / "tests" / "events" / "http_api_v2_iam_post.json").read_text())

    with mock_aws():
        settings = Settings()
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        register_all(backends, trained)
        handlers = {}
        for seconds in (10, 0):  # the default, and one shadow record per request
            endpoint = Endpoint(
                EndpointSettings(MLOPS_REFRESH_SECONDS=3600, MLOPS_CAPTURE_SAMPLE=0, MLOPS_SHADOW_METRICS_SECONDS=seconds),
                backends=backends,
                telemetry=PowertoolsTelemetry(),
            )
            handlers[seconds] = create_handler(functools.partial(lambda ep: ep, endpoint))
        events = {}
        for label, name in CONFIGS.items():
            event = copy.deepcopy(template)
            path = f"/v1/models/{name}/predict"
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
            event["body"], event["isBase64Encoded"] = json.dumps({"instances": [row]}), False
            events[label] = (handlers[0 if label == PER_REQUEST else 10], event)

        context = Context()
        for handler, event in events.values():  # warm every path (model load, bindings, caches) before measuring
            with open(os.devnull, "w") as sink, redirect_stdout(sink):
                for i in range(WARM):
                    event["headers"] = {"content-type": "application/json", "x-routing-key": f"warm-{i}"}
                    assert handler(event, context)["statusCode"] == 200
        print(f"\nRelease serving: handler latency for one row ({ROUNDS * PER_ROUND} requests each, interleaved), {machine()}")
        extras: list[float] = []
        for run in range(1, runs + 1):
            samples, served = measure(events, context, run)
            extras.append(report(samples, served, run if runs > 1 else None))
        if runs > 1:
            middle = statistics.median(extras)
            print(f"\nshadow at sample 1.0 over {runs} runs: " + ", ".join(f"{e * 100:+.0f}%" for e in extras))
            print(f"median {middle * 100:+.0f}%: {'within' if middle <= BAR else 'OVER'} the issue's 30% bar")


Samples = dict[str, list[float]]


def measure(events: dict[str, tuple[Any, dict[str, Any]]], context: Context, run: int) -> tuple[Samples, dict[str, set[int]]]:
    """One interleaved measurement: ROUNDS rounds of PER_ROUND requests per configuration, in milliseconds."""
    samples: dict[str, list[float]] = {label: [] for label in CONFIGS}
    served: dict[str, set[int]] = {label: set() for label in CONFIGS}
    key = 0
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        for _ in range(ROUNDS):
            for label, (handler, event) in events.items():
                for _ in range(PER_ROUND):
                    key += 1
                    event["headers"] = {"content-type": "application/json", "x-routing-key": f"user-{run}-{key}"}
                    started = time.perf_counter()
                    response = handler(event, context)
                    samples[label].append((time.perf_counter() - started) * 1000)
                    served[label].add(json.loads(response["body"])["version"])
    return samples, served


def report(samples: Samples, served: dict[str, set[int]], run: int | None) -> float:
    """Print one measurement's table; returns what the shadow at sample 1.0 adds at p50 (0.2 = +20%)."""
    base = statistics.median(samples["no rollout"])
    print(f"\nrun {run}:" if run else "")
    print("| alias serves | versions answering | p50 ms | p99 ms | p50 vs no rollout |")
    print("| --- | --- | --- | --- | --- |")
    for label in CONFIGS:
        p50 = statistics.median(samples[label])
        extra = "" if label == "no rollout" else f"{(p50 / base - 1) * 100:+.0f}% ({ratio(p50, base, 'faster', 'slower')})"
        versions = ", ".join(str(v) for v in sorted(served[label]))
        print(f"| {label} | {versions} | {p50:.3f} | {percentile(samples[label], 0.99):.3f} | {extra} |")
    shadow_extra = statistics.median(samples["shadow, sample 1.0"]) / base - 1
    verdict = "within" if shadow_extra <= BAR else "OVER"
    print(
        f"\nshadow at sample 1.0 adds {shadow_extra * 100:.0f}% at p50: {verdict} the issue's 30% bar "
        "(one more ONNX run on inputs already validated and bound, the agreement, and in-process sums of its metrics)"
    )
    return shadow_extra


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat the measurement this many times and give the median")
    main(parser.parse_args().runs)
