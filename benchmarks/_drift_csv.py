"""``mlops drift check MODEL --current rows.csv`` on 200,000 rows of the diabetes example, end to end (benchmarks/drift.py).

The diabetes example model (Ridge over 9 numeric features and one categorical) is trained and registered on a local
moto server; then each case runs the real command in its own process, pinned to one CPU, which reports its wall and
CPU time and its peak RSS (VmHWM; see ``_drift_run.peak_rss_mb``). The rows are drawn from models/data/diabetes.csv
(with replacement, a little noise): without a prediction column (the baseline model predicts them), with one, and
with 1% of four columns' cells empty (missing values: the rows that hold one are not predicted and count as a
missing prediction). A 1,000-row file gives the fixed cost (imports, the profile and the ONNX graph from moto).

``python benchmarks/_drift_csv.py --measure FILE`` is the measured child; :func:`measure_csv_cases` the parent.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _drift_run import peak_rss_mb  # noqa: E402

CSV_ROWS = 200_000
MODEL = "diabetes"
MISSING_SHARE = 0.01


def write_rows(folder: Path, rows: int, *, prediction: bool = False, missing: float = 0.0, seed: int = 0) -> Path:
    """``rows`` rows drawn (with replacement, plus a little noise) from the example data, as a user's CSV holds them."""
    import numpy as np
    import pandas as pd

    source = pd.read_csv(ROOT / "models" / "data" / "diabetes.csv")
    rng = np.random.default_rng(seed)
    frame = source.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    for column in frame.columns:
        if column not in ("sex", "target", "age"):
            frame[column] = (frame[column] + rng.normal(0.0, 0.05 * frame[column].std(), rows)).round(4)
    frame = frame.drop(columns=["target"])
    if prediction:
        frame["prediction"] = rng.normal(150.0, 50.0, rows).round(3)
    if missing:
        for column in ("bmi", "bp", "s1", "sex"):
            frame.loc[rng.random(rows) < missing, column] = None
    name = f"rows-{rows}{'-prediction' if prediction else ''}{f'-missing{missing:g}' if missing else ''}.csv"
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def _child(path: str) -> None:
    """One measured ``mlops --json drift check diabetes --current PATH``; prints one JSON line of figures."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    started, cpu_started = time.perf_counter(), time.process_time()
    from serverless_mlops.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--json", "drift", "check", MODEL, "--current", path])
    document = json.loads(out.getvalue()) if code == 0 else {}
    print(
        json.dumps(
            {
                "code": code,
                "error": err.getvalue().strip()[-300:],
                "rows": document.get("rows"),
                "predicted": (document.get("result") or {}).get("prediction", {}).get("current_rows"),
                "status": document.get("status"),
                "total_s": time.perf_counter() - started,
                "cpu_s": time.process_time() - cpu_started,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def _once(path: Path, env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure", str(path)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure_csv_cases(folder: Path, runs: int) -> list[tuple[str, dict[str, Any]]]:
    """Train and register the diabetes example on a local moto server, then measure each case ``runs`` times (medians)."""
    from serverless_mlops.local.moto import LocalAws, ensure_resources
    from serverless_mlops.model.fit import train
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.settings import Settings
    from serverless_mlops.store.lifecycle import Backends, register_run

    folder.mkdir(parents=True, exist_ok=True)
    cases = [
        ("1,000 rows, no prediction column (fixed cost)", write_rows(folder, 1_000, seed=1)),
        (f"{CSV_ROWS:,} rows, no prediction column (the model predicts)", write_rows(folder, CSV_ROWS, seed=2)),
        (f"{CSV_ROWS:,} rows with a prediction column", write_rows(folder, CSV_ROWS, prediction=True, seed=3)),
        (
            f"{CSV_ROWS:,} rows, {MISSING_SHARE:.0%} of 4 columns' cells empty, no prediction column",
            write_rows(folder, CSV_ROWS, missing=MISSING_SHARE, seed=4),
        ),
    ]
    trained = train(load_spec(ROOT / "models" / f"{MODEL}.yaml"))
    results: list[tuple[str, dict[str, Any]]] = []
    with LocalAws() as aws:
        settings = Settings(endpoint_url=aws.endpoint_url, bucket="bench-drift-csv", table="bench-drift-csv")
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        entry = register_run(trained, backends, by="bench")
        backends.registry.promote(MODEL, entry.version, by="bench", reason="benchmark")
        env = {"MLOPS_ENDPOINT_URL": aws.endpoint_url, "MLOPS_BUCKET": settings.bucket, "MLOPS_TABLE": settings.table}
        for label, path in cases:
            samples = [_once(path, env) for _ in range(runs)]
            summary: dict[str, Any] = {key: statistics.median(s[key] for s in samples) for key in ("total_s", "cpu_s", "peak_rss_mb")}
            summary |= {key: samples[0][key] for key in ("code", "error", "rows", "predicted", "status")}
            results.append((label, summary))
    return results


def print_table(results: list[tuple[str, dict[str, Any]]]) -> None:
    print("| --current CSV | wall clock | CPU | peak memory (max RSS) | rows checked / predicted |\n| --- | --- | --- | --- | --- |")
    for label, r in results:
        outcome = f"{r['rows']:,} / {r['predicted']:,}" if r["code"] == 0 else f"refused (exit {r['code']}): {r['error']}"
        print(f"| {label} | {r['total_s']:.2f} s | {r['cpu_s']:.2f} s | {r['peak_rss_mb']:.0f} MB | {outcome} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        _child(sys.argv[2])
    else:
        import tempfile

        folder = Path(os.environ.get("DRIFT_BENCH_DIR") or Path(tempfile.gettempdir()) / "serverless-mlops-bench-drift") / "csv"
        print_table(measure_csv_cases(folder, int(os.environ.get("DRIFT_BENCH_RUNS", "3"))))
