"""Foundation benchmarks (`make bench`): training, ONNX vs scikit-learn prediction, registry contention.

Every figure is a median of repeated runs measured side by side in this one process, so ratios compare like with
like. Prints a Markdown table for docs/benchmarks.md, with the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

from _ratio import ratio  # benchmarks/ is on sys.path when this runs as a script

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def median_seconds(fn: Callable[[], object], repeat: int, inner: int = 1) -> float:
    fn()  # warm
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def bench_training(rows: list[tuple[str, str, str]]) -> None:
    from serverless_mlops.model.fit import train
    from serverless_mlops.model.spec import load_spec

    for name in ("breast-cancer", "wine", "diabetes"):
        spec = load_spec(ROOT / "models" / f"{name}.yaml")
        seconds = median_seconds(partial(train, spec), repeat=3)
        rows.append((f"train + ONNX + parity + profile: {name}", f"{seconds * 1000:.0f} ms", "median of 3"))


def bench_prediction(rows: list[tuple[str, str, str]]) -> None:
    from serverless_mlops.model.data import load_dataset
    from serverless_mlops.model.fit import build_pipeline, resolve_estimator, train
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.serving.onnx_model import OnnxModel

    for name in ("breast-cancer", "wine"):
        spec = load_spec(ROOT / "models" / f"{name}.yaml")
        trained = train(spec)
        frame = load_dataset(spec).frame
        features = spec.numeric_features + spec.categorical_features
        pipeline = build_pipeline(spec, resolve_estimator(spec)).fit(frame[features], frame[spec.target].to_numpy())
        model = OnnxModel(trained.record.signature, trained.onnx_bytes)
        for batch in (1, 1000):
            sample = frame[features].sample(n=batch, replace=True, random_state=0)
            records = [{k: float(v) for k, v in row.items()} for row in sample.to_dict("records")]
            onnx_s = median_seconds(partial(model.predict_records, records), repeat=7, inner=50 if batch == 1 else 3)
            sk_s = median_seconds(partial(pipeline.predict_proba, sample), repeat=7, inner=50 if batch == 1 else 3)
            rows.append(
                (
                    f"predict {batch} row(s), {name} ({spec.estimator.class_name})",
                    f"validated ONNX {onnx_s * 1e6:,.0f} µs vs scikit-learn {sk_s * 1e6:,.0f} µs",
                    ratio(onnx_s, sk_s),
                )
            )


def bench_registry(rows: list[tuple[str, str, str]]) -> None:
    from moto import mock_aws

    from serverless_mlops.local.moto import LocalAws, ensure_resources, serialize_moto_dynamodb
    from serverless_mlops.model.fit import train
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends, lineage_of, register_record

    trained = train(load_spec(ROOT / "models" / "diabetes.yaml"))
    record = trained.record
    threads, each = 16, 25

    def contend(settings: Settings) -> tuple[float, list[int]]:
        ensure_resources(settings)
        first = Backends.from_settings(settings)
        artifact = first.store.put(record.model, trained.onnx_bytes, "model.onnx")
        profile = first.store.put(record.model, trained.profile_bytes, "profile.json.gz")
        barrier = threading.Barrier(threads)
        versions: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            backends = Backends.from_settings(settings)
            barrier.wait()
            for _ in range(each):
                lineage = lineage_of(record, run_id=uuid.uuid4().hex)
                entry = register_record(backends, record, artifact, profile, by="bench", lineage=lineage)
                with lock:
                    versions.append(entry.version)

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return time.perf_counter() - start, versions

    serialize_moto_dynamodb()  # DynamoDB's per-request atomicity, which moto lacks (see serverless_mlops.local.moto)
    with mock_aws():
        seconds, versions = contend(Settings())
    ok = sorted(versions) == list(range(1, threads * each + 1))
    rows.append(
        (
            f"register {threads}×{each} concurrently, in-process moto",
            f"{seconds:.1f} s ({len(versions) / seconds:.0f}/s)",
            f"versions 1..{len(versions)} exact: {ok}",
        )
    )
    with LocalAws() as aws:
        seconds, versions = contend(Settings(endpoint_url=aws.endpoint_url))
    ok = sorted(versions) == list(range(1, threads * each + 1))
    rows.append(
        (
            f"register {threads}×{each} concurrently, moto server",
            f"{seconds:.1f} s ({len(versions) / seconds:.0f}/s)",
            f"versions 1..{len(versions)} exact: {ok}",
        )
    )


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    print(f"machine: {machine()}", flush=True)
    for step in (bench_training, bench_prediction, bench_registry):
        step(rows)
    print("\n| measurement | result | note |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
