"""Serving during a release (`make bench`): the inference handler's latency for one row with no rollout, with a canary
on 50% of the keys, and with a shadow scoring every request (sample 1.0), side by side in one run.

The example breast-cancer model (30 numeric features, scikit-learn → ONNX) is registered under three names on moto
(in-process): one with a plain production alias, one whose alias has a canary (another version of the same graph) at
50%, one whose alias has a shadow at sample 1.0. One handler (the deployed one, ``functions.inference.app``, with its
powertools decorators and EMF metrics, printed to /dev/null) serves all three; requests go round-robin over the three
in many short rounds, so a busy machine slows all of them alike. Each request sends its own ``x-routing-key``.

The issue's bar: the shadow adds at most 30% at p50 (it scores the same parsed rows in-process with a cached
session after the answer is built: one more ``session.run``, its agreement and one more EMF record).
"""

from __future__ import annotations

import copy
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
CONFIGS = {
    "no rollout": "bench-plain",
    "canary 50%": "bench-canary",
    "shadow, sample 1.0": "bench-shadow",
    "shadow, sample 0.2": "bench-shadow-sampled",
}


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
    for name in CONFIGS.values():
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


def main() -> None:
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
        endpoint = Endpoint(
            EndpointSettings(MLOPS_REFRESH_SECONDS=3600, MLOPS_CAPTURE_SAMPLE=0),
            backends=backends,
            telemetry=PowertoolsTelemetry(),
        )
        handler = create_handler(lambda: endpoint)
        events = {}
        for label, name in CONFIGS.items():
            event = copy.deepcopy(template)
            path = f"/v1/models/{name}/predict"
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
            event["body"], event["isBase64Encoded"] = json.dumps({"instances": [row]}), False
            events[label] = event

        samples: dict[str, list[float]] = {label: [] for label in CONFIGS}
        served: dict[str, set[int]] = {label: set() for label in CONFIGS}
        context = Context()
        with open(os.devnull, "w") as sink, redirect_stdout(sink):
            for event in events.values():
                for i in range(WARM):
                    event["headers"] = {"content-type": "application/json", "x-routing-key": f"warm-{i}"}
                    assert handler(event, context)["statusCode"] == 200
            key = 0
            for _ in range(ROUNDS):
                for label, event in events.items():
                    for _ in range(PER_ROUND):
                        key += 1
                        event["headers"] = {"content-type": "application/json", "x-routing-key": f"user-{key}"}
                        started = time.perf_counter()
                        response = handler(event, context)
                        samples[label].append((time.perf_counter() - started) * 1000)
                        served[label].add(json.loads(response["body"])["version"])

    base = statistics.median(samples["no rollout"])
    print(f"\nRelease serving: handler latency for one row ({ROUNDS * PER_ROUND} requests each, interleaved), {machine()}\n")
    print("| alias serves | versions answering | p50 ms | p99 ms | p50 vs no rollout |")
    print("| --- | --- | --- | --- | --- |")
    for label in CONFIGS:
        p50 = statistics.median(samples[label])
        extra = "" if label == "no rollout" else f"{(p50 / base - 1) * 100:+.0f}% ({ratio(p50, base, 'faster', 'slower')})"
        versions = ", ".join(str(v) for v in sorted(served[label]))
        print(f"| {label} | {versions} | {p50:.3f} | {percentile(samples[label], 0.99):.3f} | {extra} |")
    shadow_extra = statistics.median(samples["shadow, sample 1.0"]) / base - 1
    verdict = "within" if shadow_extra <= 0.30 else "OVER"
    print(
        f"\nshadow at sample 1.0 adds {shadow_extra * 100:.0f}% at p50: {verdict} the issue's 30% bar "
        "(the shadow's cost is one more ONNX session run on rows already validated, plus its EMF record)"
    )


if __name__ == "__main__":
    main()
