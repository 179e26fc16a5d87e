"""Inference benchmarks (`make bench`): the inference handler, its cold start and size, and `mlops serve`.

On two models over 20 numeric features (LogisticRegression, and RandomForest with 100 trees of depth 10), trained
through ``serverless_mlops.model.fit`` on seeded ``make_classification`` data and registered on a local moto server:

- warm handler latency for one row (p50, p99) against a bare ``InferenceSession.run`` on the same row;
- handler throughput at 1, 32 and 1,000 rows per request;
- cold start: a fresh process from import to the first prediction (the model fetched from moto), and the biggest
  import costs (``python -X importtime``);
- the inference function's code plus its layer, unzipped, against Lambda's 250 MB;
- ``mlops serve`` at concurrency 8 over loopback, side by side with ``mlflow models serve`` on the same model
  (optional: mlflow lives in its own venv, ``.venv-bench``, created here when missing) and a bare endpoint.

Every server is measured by the same load generator (``benchmarks/_load.py``: asyncio, keep-alive, its own process,
127.0.0.1 only, bounded in requests and seconds). Prints a Markdown table for docs/benchmarks.md, with the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ServerlessMlops")

import _load  # noqa: E402
from foundation import machine  # noqa: E402

if TYPE_CHECKING:
    from layers.build import RuntimePython

BENCH_VENV = ROOT / ".venv-bench"
FEATURES = [f"f{i:02d}" for i in range(20)]
LAMBDA_LIMIT_MB = 250
SERVE_REQUESTS, SERVE_SECONDS, SERVE_REPEATS = 20_000, 5.0, 3

MODELS = {
    "bench-logreg": ("LogisticRegression", "sklearn.linear_model.LogisticRegression", {"max_iter": 1000}),
    "bench-forest": (
        "RandomForest (100 trees, depth 10)",
        "sklearn.ensemble.RandomForestClassifier",
        {"n_estimators": 100, "max_depth": 10},
    ),
}

Row = tuple[str, str, str]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def timings(fn: Callable[[], object], count: int, warm: int = 200) -> list[float]:
    for _ in range(warm):
        fn()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


# -- data, models, registry -------------------------------------------------------------------------------------


def make_data(folder: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=4000, n_features=20, n_informative=10, n_redundant=4, random_state=7)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["target"] = y
    path = folder / "bench.csv"
    frame.to_csv(path, index=False)
    return path


def spec_for(name: str, data: Path) -> Any:
    from serverless_mlops.model.spec import ModelSpec

    _, estimator, params = MODELS[name]
    return ModelSpec.model_validate(
        {
            "name": name,
            "task": "binary_classification",
            "target": "target",
            "features": [{"name": f, "type": "numeric"} for f in FEATURES],
            "estimator": {"class": estimator, "params": params},
            "data": {"uri": str(data)},
            "split": {"test_size": 0.25, "seed": 42},
            "evaluation": {"metric": "roc_auc"},
        }
    )


@dataclass
class Model:
    name: str
    label: str
    spec: Any
    trained: Any
    row: dict[str, float]
    rows: list[dict[str, float]]


def train_models(data: Path) -> list[Model]:
    import pandas as pd

    from serverless_mlops.model.fit import train

    frame = pd.read_csv(data)
    rows = [{k: float(v) for k, v in record.items()} for record in frame[FEATURES].head(1000).to_dict("records")]
    models = []
    for name, (label, _, _) in MODELS.items():
        spec = spec_for(name, data)
        models.append(Model(name, label, spec, train(spec), rows[0], rows))
    return models


def register(models: list[Model], endpoint_url: str) -> dict[str, str]:
    from serverless_mlops.local.moto import ensure_resources
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends, register_run

    settings = Settings(endpoint_url=endpoint_url, bucket="bench-artifacts", table="bench-registry")
    ensure_resources(settings)
    backends = Backends.from_settings(settings)
    for model in models:
        entry = register_run(model.trained, backends, by="bench")
        backends.registry.promote(model.name, entry.version, by="bench", reason="benchmark")
    return {"MLOPS_BUCKET": settings.bucket, "MLOPS_TABLE": settings.table, "MLOPS_ENDPOINT_URL": endpoint_url}


# -- the handler, warm ----------------------------------------------------------------------------------------


def event_for(model: str, rows: list[dict[str, float]]) -> dict[str, Any]:
    from serverless_mlops.local.http_api import http_api_event

    return http_api_event(
        method="POST",
        path=f"/v1/models/{model}/predict",
        query_string=b"",
        headers=[(b"content-type", b"application/json"), (b"host", b"127.0.0.1")],
        body=json.dumps({"instances": rows}).encode(),
        source_ip="127.0.0.1",
    )


def bare_feeds(model: Model, rows: list[dict[str, float]]) -> dict[str, Any]:
    import numpy as np

    return {f.input_name: np.array([[r[f.name]] for r in rows], dtype=np.float32) for f in model.trained.record.signature.features}


def bench_handler(models: list[Model], rows: list[Row]) -> None:
    import onnxruntime as ort

    from functions.inference.app import lambda_handler
    from serverless_mlops.local.http_api import LambdaHttpApp

    app = LambdaHttpApp(lambda_handler)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    for model in models:
        event = event_for(model.name, [model.row])

        def call(event: dict[str, Any] = event) -> None:
            response = lambda_handler(event, app.context())
            if response["statusCode"] != 200:
                raise SystemExit(f"handler answered {response['statusCode']}: {response['body']}")

        handler = timings(call, 2000)
        session = ort.InferenceSession(model.trained.onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        feeds = bare_feeds(model, [model.row])
        bare = timings(lambda session=session, feeds=feeds: session.run(None, feeds), 2000)
        p50, p99, bare50 = statistics.median(handler) * 1e3, percentile(handler, 0.99) * 1e3, statistics.median(bare) * 1e3
        rows.append(
            (
                f"handler, 1 row, warm: {model.label}",
                f"p50 {p50:.3f} ms, p99 {p99:.3f} ms",
                f"bare session.run p50 {bare50 * 1e3:.0f} µs: handler = {p50 / bare50:.0f}× (target p50 ≤ 0.25 ms)",
            )
        )
        for batch in (1, 32, 1000):
            event = event_for(model.name, model.rows[:batch])
            count = {1: 2000, 32: 500, 1000: 30}[batch]
            samples = timings(lambda event=event: lambda_handler(event, app.context()), count, warm=5)
            median = statistics.median(samples)
            rows.append(
                (
                    f"handler throughput, {batch} row(s)/request: {model.label}",
                    f"{1 / median:,.0f} requests/s = {batch / median:,.0f} rows/s",
                    f"median {median * 1e3:.2f} ms per request, one core",
                )
            )


def profile_handler(model: Model) -> str:
    """Where a warm one-row request spends its time (cumulative, top entries), for the report when p50 misses."""
    import cProfile
    import io
    import pstats

    from functions.inference.app import lambda_handler
    from serverless_mlops.local.http_api import LambdaHttpApp

    app = LambdaHttpApp(lambda_handler)
    event = event_for(model.name, [model.row])
    for _ in range(200):
        lambda_handler(event, app.context())
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(2000):
        lambda_handler(event, app.context())
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


# -- cold start and size ------------------------------------------------------------------------------------------


def bench_cold_start(model: Model, env: dict[str, str], rows: list[Row]) -> None:
    child_env = {**os.environ, **env}
    samples: list[dict[str, float]] = []
    walls: list[float] = []
    for _ in range(5):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(BENCH / "_coldstart.py"), model.name, json.dumps(model.row)],
            check=True,
            capture_output=True,
            text=True,
            env=child_env,
            cwd=ROOT,
            timeout=120,
        ).stdout
        walls.append(time.perf_counter() - start)
        samples.append(json.loads(next(line for line in reversed(out.splitlines()) if line.startswith('{"import_s"'))))
    total = statistics.median(s["total_s"] for s in samples)
    rows.append(
        (
            f"cold start, import → first prediction: {model.label}",
            f"{total * 1e3:.0f} ms (imports {statistics.median(s['import_s'] for s in samples) * 1e3:.0f} ms "
            f"+ first request {statistics.median(s['first_request_s'] for s in samples) * 1e3:.0f} ms)",
            f"median of 5 fresh processes (fastest {min(s['total_s'] for s in samples) * 1e3:.0f} ms); "
            f"ONNX {len(model.trained.onnx_bytes) / 1e3:,.0f} kB fetched from moto and verified; "
            f"with interpreter start and exit {statistics.median(walls) * 1e3:.0f} ms; target ≤ 700 ms",
        )
    )


def import_costs(model: Model, env: dict[str, str], top: int = 8) -> list[tuple[str, float]]:
    """What a cold start spends importing, by top-level package (the sum of its modules' own times), from
    ``python -X importtime`` over a whole cold start, so the imports the first request makes lazily count too."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", str(BENCH / "_coldstart.py"), model.name, json.dumps(model.row)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        timeout=120,
    ).stderr
    return sorted(import_times(err).items(), key=lambda item: -item[1])[:top]


def import_times(report: str) -> dict[str, float]:
    """Seconds per top-level package (the sum of its modules' own times) from ``python -X importtime``'s report."""
    costs: dict[str, float] = {}
    for line in report.splitlines():
        if match := re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line):
            package = match.group(2).split(".")[0]
            costs[package] = costs.get(package, 0.0) + int(match.group(1)) / 1e6
    return costs


def runtime_boto3(python: RuntimePython, folder: Path) -> Path:
    """A stand-in for the runtime's boto3 (in /var/runtime on Lambda, with its bytecode): this venv's boto3, botocore
    and s3transfer linked into ``folder`` and compiled by the runtime's Python."""
    for name in ("boto3", "botocore", "s3transfer"):
        source = Path(__import__(name).__file__).parent
        shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"), copy_function=os.symlink)
    subprocess.run([python.executable, "-I", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(folder)], check=True)
    return folder


def bench_cold_start_runtime(model: Model, env: dict[str, str], rows: list[Row]) -> None:
    """Cold start as on Lambda: python3.12 (the runtime's version), the staged code asset and the built layer on
    PYTHONPATH, boto3 from this venv standing in for the runtime's; -S (no site-packages of that interpreter) and -B
    (nothing written back, as on Lambda's read-only /opt and /var/task). With the .pyc that layers/build.py and
    infra/packaging.py now ship, against the same files without them (as they shipped before)."""
    from infra.packaging import stage_code
    from layers.build import build_layer, find_runtime_python

    python = find_runtime_python()
    label = f"cold start, python3.12 + built layer (as on Lambda): {model.label}"
    if python is None:
        rows.append((label, "not measured", "no Python 3.12 interpreter here (set MLOPS_LAYER_PYTHON)"))
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    asset = stage_code("inference")
    bare_asset = shutil.copytree(asset, scratch / "asset", ignore=shutil.ignore_patterns("__pycache__"))
    runtime = runtime_boto3(python, scratch / "var-runtime")
    child_env = {key: value for key, value in os.environ.items() if key.startswith(("AWS_", "POWERTOOLS_"))}
    child_env |= {**env, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    command = [python.executable, "-S", "-B", str(BENCH / "_coldstart.py"), model.name, json.dumps(model.row)]
    figures: dict[str, tuple[float, float, float, float]] = {}
    costs: dict[str, float] = {}
    try:
        for variant, bytecode, code in (("with .pyc", "pycache", asset), ("without .pyc", "none", bare_asset)):
            layer = build_layer("inference", bytecode=bytecode) / "python"
            child_env["PYTHONPATH"] = os.pathsep.join(map(str, (code, layer, runtime)))
            samples = []
            for _ in range(5):
                out = subprocess.run(command, check=True, capture_output=True, text=True, env=child_env, cwd=code, timeout=120).stdout
                samples.append(json.loads(next(line for line in reversed(out.splitlines()) if line.startswith('{"import_s"'))))
            figures[variant] = (
                statistics.median(s["total_s"] for s in samples),
                statistics.median(s["import_s"] for s in samples),
                statistics.median(s["first_request_s"] for s in samples),
                min(s["total_s"] for s in samples),
            )
            if bytecode == "pycache":
                err = subprocess.run([command[0], "-X", "importtime", *command[1:]], check=True, capture_output=True, text=True,
                                     env=child_env, cwd=code, timeout=120).stderr  # fmt: skip
                costs = import_times(err)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (total, imports, first, fastest), (bare_total, bare_imports, bare_first, _) = figures["with .pyc"], figures["without .pyc"]
    top = ", ".join(f"{name} {seconds * 1e3:.0f} ms" for name, seconds in sorted(costs.items(), key=lambda item: -item[1])[:5])
    rows.append(
        (
            label,
            f"{total * 1e3:.0f} ms with .pyc (imports {imports * 1e3:.0f} ms + first request {first * 1e3:.0f} ms); "
            f"{bare_total * 1e3:.0f} ms without (imports {bare_imports * 1e3:.0f} ms + first request {bare_first * 1e3:.0f} ms)",
            f"Python {python.version}; median of 5 fresh processes each (fastest with .pyc {fastest * 1e3:.0f} ms); tracing off; "
            f"biggest imports with .pyc (python -X importtime): {top}; target ≤ 700 ms",
        )
    )


def bench_size(rows: list[Row]) -> None:
    try:
        from layers.build import build_layer, unzipped_size
    except ImportError as exc:
        rows.append(("function + inference layer, unzipped", "not measured", f"layers/build.py unavailable: {exc}"))
        return
    try:
        from infra.packaging import code_files, stage_code

        files = [ROOT / p for p in code_files("inference")]
        asset = stage_code("inference")  # what is deployed: those files and, with python3.12 here, their .pyc
        code = unzipped_size(asset)
        how = f"the code asset: {len(files)} files the handler imports" + (", with their .pyc" if any(asset.rglob("*.pyc")) else "")
    except ImportError:
        files = [p for folder in ("functions", "serverless_mlops") for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
        code = sum(p.stat().st_size for p in files)
        how = "all of functions/ and serverless_mlops/"
    layer = unzipped_size(build_layer("inference"))
    total_mb = (code + layer) / 1e6
    rows.append(
        (
            "inference function + its layer, unzipped",
            f"{total_mb:.1f} MB (layer {layer / 1e6:.1f} MB, code {code / 1e3:.0f} kB)",
            f"{total_mb / LAMBDA_LIMIT_MB * 100:.0f}% of Lambda's {LAMBDA_LIMIT_MB} MB; code = {how}; target ≤ 130 MB",
        )
    )


# -- servers over loopback ------------------------------------------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {seconds:.0f} s")


@contextmanager
def running(command: list[str], port: int, what: str, env: dict[str, str] | None = None, seconds: float = 120) -> Iterator[None]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        try:
            wait_for_port(port, process, seconds, what)
        except RuntimeError:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        yield
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def ensure_bench_venv() -> Path | None:
    """The benchmark venv's python (mlflow, Starlette), installed from locks/bench.txt when missing or stale (that lock
    pins scikit-learn and onnxruntime at the development lock's versions); None (and why) if impossible."""
    from _venv import locked_venv

    if not (BENCH_VENV / "bin" / "python").exists():
        print(f"installing mlflow and Starlette into {BENCH_VENV} (once; a few minutes)…", flush=True)
    try:
        return locked_venv(BENCH_VENV, "bench.txt", timeout=1200)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = str(getattr(exc, "stderr", "") or "")[-500:]
        print(f"the benchmark venv is not available, so mlflow and the Starlette endpoint are left out: {exc} {detail}", flush=True)
        return None


def mlflow_env(workdir: Path) -> dict[str, str]:
    """mlflow models serve execs ``uvicorn`` from PATH: the benchmark venv's."""
    return {"MLFLOW_TRACKING_URI": f"file://{workdir}/mlruns", "PATH": f"{BENCH_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def measure_servers(servers: dict[str, tuple[list[str], dict[str, str], str, bytes]]) -> dict[str, _load.LoadResult]:
    """Each server started once; the load runs interleaved (A, B, C, A, B, C, …) so a busy moment hits all alike.

    Returns, per server, the run with the median requests/s.
    """
    from contextlib import ExitStack

    from serverless_mlops.local.moto import free_port

    runs: dict[str, list[_load.LoadResult]] = {name: [] for name in servers}
    with ExitStack() as stack:
        ports = {}
        for name, (command, env, _, _) in servers.items():
            port = free_port()
            stack.enter_context(running([part.replace("{port}", str(port)) for part in command], port, name, env))
            ports[name] = port
        for _ in range(SERVE_REPEATS):
            for name, (_, _, path, body) in servers.items():
                runs[name].append(_load.measure(ports[name], path, body, requests=SERVE_REQUESTS, seconds=SERVE_SECONDS))
    return {name: sorted(results, key=lambda r: r.rps)[len(results) // 2] for name, results in runs.items()}


def bench_servers(models: list[Model], env: dict[str, str], workdir: Path, rows: list[Row]) -> None:
    bench_python = ensure_bench_venv()
    mlops = str(Path(sys.executable).with_name("mlops"))
    for model in models:
        path = f"/v1/models/{model.name}/predict"
        body = json.dumps({"instances": [model.row]}).encode()
        onnx_path = workdir / f"{model.name}.onnx"
        onnx_path.write_bytes(model.trained.onnx_bytes)
        servers: dict[str, tuple[list[str], dict[str, str], str, bytes]] = {
            "mlops serve": ([mlops, "serve", "--port", "{port}", "--model", model.name], env, path, body),
            "bare endpoint, raw ASGI": ([sys.executable, str(BENCH / "_bare.py"), "{port}", str(onnx_path)], {}, "/", body),
        }
        if bench_python is not None:
            servers["bare endpoint, Starlette"] = (
                [str(bench_python), str(BENCH / "_bare.py"), "{port}", str(onnx_path), "starlette"],
                {},
                "/",
                body,
            )
            spec_path, model_dir = workdir / f"{model.name}.json", workdir / f"mlflow-{model.name}"
            spec_path.write_text(model.spec.model_dump_json(by_alias=True))
            subprocess.run(
                [str(bench_python), str(BENCH / "_mlflow_model.py"), str(spec_path), str(model_dir)],
                check=True,
                capture_output=True,
                timeout=600,
            )
            mlflow = [
                str(BENCH_VENV / "bin" / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                "{port}",
            ]
            servers["mlflow models serve"] = (
                mlflow,
                mlflow_env(workdir),
                "/invocations",
                json.dumps({"dataframe_records": [model.row]}).encode(),
            )
        measured = measure_servers(servers)
        ours = measured["mlops serve"]
        for server, result in measured.items():
            note = f"{result.requests:,} requests in {result.seconds:.1f} s, errors {result.errors}"
            if server == "mlops serve":
                ratios = [f"{result.rps / other.rps:.2f}× {name}" for name, other in measured.items() if name != server]
                note += "; " + ", ".join(ratios)
            elif server == "mlflow models serve":
                note += f"; mlops serve = {ours.rps / result.rps:.2f}× (target ≥ 5× on LogisticRegression)"
            rows.append(
                (
                    f"{server}, concurrency 8, 1 row: {model.label}",
                    f"{result.rps:,.0f} requests/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms",
                    note,
                )
            )


def main() -> None:
    import argparse

    from serverless_mlops.local.moto import LocalAws

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of 2,000 warm one-row requests")
    args = parser.parse_args()
    rows: list[Row] = []
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        models = train_models(make_data(workdir))
        with LocalAws() as aws:
            env = register(models, aws.endpoint_url)
            os.environ.update(env)
            with open(os.devnull, "w") as null, redirect_stdout(null):  # the handler prints one EMF metrics line per call
                bench_handler(models, rows)
            for model in models:
                bench_cold_start(model, env, rows)
            bench_cold_start_runtime(models[0], env, rows)
            costs = import_costs(models[0], env)
            rows.append(
                (
                    "biggest import costs of a cold start",
                    ", ".join(f"{name} {seconds * 1e3:.0f} ms" for name, seconds in costs),
                    "python -X importtime over a whole cold start (LogisticRegression); own time of each package's modules",
                )
            )
            bench_size(rows)
            bench_servers(models, env, workdir, rows)
            if args.profile:
                with open(os.devnull, "w") as null, redirect_stdout(null):
                    profile = profile_handler(models[0])
                print(profile)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work on the machine inflates latencies and cold starts)")
    print("\n| measurement | result | note |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
