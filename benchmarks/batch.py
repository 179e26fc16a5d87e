"""Batch scoring benchmark: the Score step's rows per second on one core, beside a pandas + scikit-learn loop and a
pandas + onnxruntime loop on the same file, then what that means for 100M rows on Step Functions' Distributed Map
against SageMaker Batch Transform (on paper: prices, dates and sources printed with the figures).

The file: 1,000,000 rows x 20 numeric features (seeded normal values, 6 decimals), CSV in, CSV out, through moto's S3
in this process. The model: LogisticRegression trained through ``serverless_mlops.model.fit`` (the same spec as
benchmarks/inference.py). One core: numpy, BLAS and onnxruntime are pinned to one thread, as on Lambda.

- Score: ``serverless_mlops.batch.score.score_shard`` on one shard covering the whole object (stream, parse, validate,
  ``OnnxModel.predict_columns``, the output object with the prediction columns and the version, multipart upload);
- pandas + scikit-learn: ``read_csv`` in 100,000-row chunks, ``predict`` and ``predict_proba``, ``to_csv``, one PutObject;
- pandas + onnxruntime: the same loop with the ONNX graph's session instead of the estimator.

Each is run ``REPEATS`` times; medians are printed. Env: BATCH_ROWS (default 1,000,000), BATCH_REPEATS (3).
"""

from __future__ import annotations

import io
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ratio import ratio  # noqa: E402

ROWS = int(os.environ.get("BATCH_ROWS", "1000000"))
REPEATS = int(os.environ.get("BATCH_REPEATS", "3"))
FEATURES = [f"f{i:02d}" for i in range(20)]
MODEL = "bench-batch"
CHUNK_ROWS = 100_000
GOAL_ROWS_PER_SECOND = 100_000

# -- prices (us-east-1, on-demand, looked up 2026-12-07; check them before quoting) ------------------------------------
PRICES = {
    "lambda_gb_second_x86": (0.0000166667, "AWS Lambda pricing, x86, first 6B GB-s a month (aws.amazon.com/lambda/pricing)"),
    "lambda_request": (0.20 / 1e6, "AWS Lambda pricing: $0.20 per 1M requests"),
    "sfn_transition": (
        0.025 / 1000,
        "AWS Step Functions pricing, Standard: $0.025 per 1,000 state transitions (aws.amazon.com/step-functions/pricing)",
    ),
    "s3_get": (0.0004 / 1000, "Amazon S3 pricing, S3 Standard: $0.0004 per 1,000 GET requests"),
    "s3_put": (0.005 / 1000, "Amazon S3 pricing, S3 Standard: $0.005 per 1,000 PUT/LIST requests (multipart parts count)"),
    "c5_xlarge_hour": (0.204, "Amazon SageMaker pricing, Batch Transform ml.c5.xlarge (4 vCPU): $0.204 an hour"),
}
LAMBDA_MEMORY_GB = 2.0  # batch.memory_mb default (2,048 MB: a bit more than one vCPU; Score uses one)
COLD_START_SECONDS = 2.0  # a Score environment's init (imports, clients) + the model load, paid once per shard here
TRANSITIONS_PER_SHARD = 3  # the child execution's start, Score, end (more on a retry)
BATCH_TRANSFORM_STARTUP_SECONDS = 6 * 60  # instance provisioning + container start, billed (typical: 5-8 minutes)


def median_of(fn: Callable[[], float]) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds of this process) over REPEATS runs: on a busy machine the CPU time is what one
    core spends, the wall time what it took here."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        cpu = time.process_time()
        walls.append(fn())
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def make_csv(rows: int) -> bytes:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    return frame.to_csv(index=False, float_format="%.6f").encode()


def train_model(folder: Path) -> tuple[Any, Any]:
    """(TrainedModel, a fitted scikit-learn pipeline of the same spec)."""
    import pandas as pd
    from sklearn.datasets import make_classification

    from serverless_mlops.model.fit import build_pipeline, resolve_estimator, train
    from serverless_mlops.model.spec import ModelSpec

    x, y = make_classification(n_samples=4000, n_features=20, n_informative=10, n_redundant=4, random_state=7)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["target"] = y
    data = folder / "train.csv"
    frame.to_csv(data, index=False)
    spec = ModelSpec.model_validate(
        {
            "name": MODEL,
            "task": "binary_classification",
            "target": "target",
            "features": [{"name": f, "type": "numeric"} for f in FEATURES],
            "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}},
            "data": {"uri": str(data)},
            "split": {"test_size": 0.25, "seed": 42},
            "evaluation": {"metric": "roc_auc"},
        }
    )
    pipeline = build_pipeline(spec, resolve_estimator(spec))
    pipeline.fit(frame[FEATURES], frame["target"])
    return train(spec), pipeline


def main() -> None:
    import tempfile

    import numpy as np
    import pandas as pd
    from moto import mock_aws

    from serverless_mlops.batch.contract import BatchRequest, Shard
    from serverless_mlops.batch.models import PinnedModels
    from serverless_mlops.batch.objects import Objects
    from serverless_mlops.batch.prepare import prepare
    from serverless_mlops.batch.score import score_shard
    from serverless_mlops.local.moto import ensure_resources
    from serverless_mlops.serving.onnx_model import OnnxModel
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends, register_run

    with tempfile.TemporaryDirectory() as tmp:
        trained, pipeline = train_model(Path(tmp))
    print(f"making {ROWS:,} rows x {len(FEATURES)} features ...", flush=True)
    body = make_csv(ROWS)
    print(f"input: {len(body) / 2**20:.1f} MiB ({len(body) / ROWS:.0f} bytes a row)", flush=True)

    with mock_aws():
        settings = Settings()
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        entry = register_run(trained, backends, by="bench")
        backends.registry.promote(MODEL, entry.version, by="bench")
        s3 = backends.store.s3
        s3.put_object(Bucket=settings.bucket, Key="batch/in/data.csv", Body=body)
        objects = Objects(s3, settings.bucket)

        def ours() -> float:
            job_id = f"bench-{time.monotonic_ns()}"
            request = BatchRequest(
                model=MODEL, input=f"s3://{settings.bucket}/batch/in/", output=f"s3://{settings.bucket}/batch/out/{job_id}/"
            )
            job = prepare(request, backends, objects, job_id=job_id, shard_bytes=len(body))
            (shard,) = [Shard.model_validate(item) for item in objects.read_json(settings.bucket, job.manifest_key)]
            models = PinnedModels(backends)
            models.load(MODEL, entry.version)  # the model load is a cold start's cost, not the shard's
            start = time.perf_counter()
            result = score_shard(job, shard, objects, models.load)
            elapsed = time.perf_counter() - start
            assert result.scored == ROWS, result
            assert result.refused == 0, result
            s3.delete_object(Bucket=settings.bucket, Key=f"batch/out/{job_id}/part-00000.csv")  # keep moto's memory flat
            return elapsed

        def pandas_loop(predict: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                stream = s3.get_object(Bucket=settings.bucket, Key="batch/in/data.csv")["Body"]
                out = io.StringIO()
                for index, chunk in enumerate(pd.read_csv(stream, chunksize=CHUNK_ROWS)):
                    labels, probabilities = predict(chunk)
                    scored = chunk.assign(
                        prediction=labels, probability_0=probabilities[:, 0], probability_1=probabilities[:, 1], model_version=1
                    )
                    scored.to_csv(out, index=False, header=index == 0)
                s3.put_object(Bucket=settings.bucket, Key="batch/out/pandas.csv", Body=out.getvalue().encode())
                return time.perf_counter() - start

            return run

        def sklearn_predict(chunk: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            return pipeline.predict(chunk[FEATURES]), pipeline.predict_proba(chunk[FEATURES])

        session = OnnxModel(trained.record.signature, trained.onnx_bytes).session
        signature = trained.record.signature
        outputs = [signature.label_output, signature.probabilities_output]

        def onnx_predict(chunk: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            values = chunk[FEATURES].to_numpy(dtype=np.float32)
            feeds = {f.input_name: values[:, i : i + 1] for i, f in enumerate(signature.features)}
            labels, probabilities = session.run(outputs, feeds)
            return labels, probabilities

        print(f"timing ({REPEATS} runs each, median) ...", flush=True)
        results = {
            "Score (serverless_mlops.batch, the serving code)": median_of(ours),
            "pandas + scikit-learn": median_of(pandas_loop(sklearn_predict)),
            "pandas + onnxruntime": median_of(pandas_loop(onnx_predict)),
        }

    print(f"\nload average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"| {ROWS:,} rows x 20 features, CSV in and out (moto S3), one core | wall s | CPU s | rows/s (CPU) | Score vs it (CPU) |")
    print("| --- | ---: | ---: | ---: | --- |")
    score_cpu = results["Score (serverless_mlops.batch, the serving code)"][1]
    for name, (wall, cpu) in results.items():
        versus = "" if cpu is score_cpu else ratio(score_cpu, cpu)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {ROWS / cpu:,.0f} | {versus} |")
    rate = ROWS / score_cpu
    print(
        f"\ngoal >= {GOAL_ROWS_PER_SECOND:,} rows/s per child (CPU time): "
        f"{'met' if rate >= GOAL_ROWS_PER_SECOND else 'NOT met'} ({rate:,.0f})"
    )
    paper(rate, len(body) / ROWS, ROWS / results["pandas + scikit-learn"][1])


def paper(rate: float, bytes_per_row: float, sklearn_rate: float) -> None:
    """100M rows at MaxConcurrency 500, from the measured rate: wall time and cost, against Batch Transform."""
    rows, concurrency = 100_000_000, 500
    total_bytes = rows * bytes_per_row
    shard_bytes = math.ceil(total_bytes / concurrency)  # one wave: every shard runs at once
    shards = math.ceil(total_bytes / shard_bytes)
    rows_per_shard = rows / shards
    shard_seconds = rows_per_shard / rate + COLD_START_SECONDS
    wall = shard_seconds + 10  # + Prepare, Finalize and the Map run's start (seconds)
    price = {k: v for k, (v, _) in PRICES.items()}
    gb_seconds = shards * shard_seconds * LAMBDA_MEMORY_GB
    parts = total_bytes * 1.15 / (8 << 20)  # the output (input + 3 columns) in 8 MiB parts
    lines = {
        "Lambda duration": gb_seconds * price["lambda_gb_second_x86"],
        "Lambda requests": (shards + 2) * price["lambda_request"],
        "Step Functions transitions": (shards * TRANSITIONS_PER_SHARD + 6) * price["sfn_transition"],
        "S3 requests": shards * 3 * price["s3_get"] + (parts + shards * 3) * price["s3_put"],
    }
    ours = sum(lines.values())
    # Batch Transform: one ml.c5.xlarge, 4 workers at the pandas + scikit-learn rate measured above (its container
    # parses CSV and calls scikit-learn per mini-batch: that loop is the closest measured stand-in)
    bt_seconds = rows / (4 * sklearn_rate) + BATCH_TRANSFORM_STARTUP_SECONDS
    bt_cost = bt_seconds / 3600 * price["c5_xlarge_hour"]
    instances_to_match = math.ceil((rows / (4 * sklearn_rate)) / max(wall - 0, 1))
    print(f"\n100M rows ({total_bytes / 2**30:.1f} GiB of CSV), MaxConcurrency {concurrency}, on paper from the rate above:")
    print(
        f"- {shards} shards of {shard_bytes / 2**20:.1f} MiB ({rows_per_shard:,.0f} rows): "
        f"{shard_seconds:.0f} s a shard, about {wall:.0f} s wall"
    )
    for name, cost in lines.items():
        print(f"  - {name}: ${cost:.2f}")
    print(f"  - total: ${ours:.2f} (Lambda at {LAMBDA_MEMORY_GB * 1024:.0f} MB x86; arm64 would take 20% off duration)")
    print(f"- Batch Transform, 1 x ml.c5.xlarge at {4 * sklearn_rate:,.0f} rows/s: {bt_seconds / 60:.0f} min wall, ${bt_cost:.2f}")
    print(
        f"  (to finish in ~{wall:.0f} s it would need ~{instances_to_match} instances, "
        f"each billed its {BATCH_TRANSFORM_STARTUP_SECONDS // 60} min start)"
    )
    print("\nprices (us-east-1, on-demand, as of 2026-12-07):")
    for key, (value, source) in PRICES.items():
        print(f"- {key} = {value:.10g}: {source}")


if __name__ == "__main__":
    main()
