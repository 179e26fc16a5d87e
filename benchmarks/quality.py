"""Quality-check benchmark (`python benchmarks/quality.py`): 1,000,000 captured predictions and 100,000 labels.

Our check and Evidently's ClassificationPreset each run in their own process, pinned to one CPU, on the same files:
the capture file (gzip JSON Lines with ids and the served probabilities, two model versions) and a ground-truth file
(JSON Lines: id, label). The join is included on both sides: ours joins while it reads (labels by id, within the
label delay) and computes realized metrics per version plus CBPE over every prediction; Evidently's side reads the
capture file with the same msgspec decoder into a DataFrame, merges the labels on id with pandas and runs the
ClassificationPreset on each version's joined rows. Figures: medians of QUALITY_BENCH_RUNS runs (default 3), side by
side; the data (about 110 MB) is written once to QUALITY_BENCH_DIR (default: a folder in /tmp).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _quality_data import LABELS, PREDICTIONS, ensure_data  # noqa: E402
from _ratio import ratio  # noqa: E402
from drift import evidently_python  # noqa: E402
from foundation import machine  # noqa: E402


def measure(python: Path, script: str, data: Path, runs: int) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        completed = subprocess.run(
            [str(python), str(HERE / script), str(data), "--one-cpu"],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
        samples.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    keys = ("read_s", "check_s", "total_s", "cpu_s", "read_cpu_s", "check_cpu_s", "peak_rss_mb", "import_s")
    summary: dict[str, Any] = {key: statistics.median(s[key] for s in samples) for key in keys}
    summary["sample"] = samples[0]
    return summary


def main() -> None:
    runs = int(os.environ.get("QUALITY_BENCH_RUNS", "3"))
    folder = Path(os.environ.get("QUALITY_BENCH_DIR") or Path(tempfile.gettempdir()) / "serverless-mlops-bench-quality")
    started = time.perf_counter()
    data = ensure_data(folder)
    capture_mb = (data / "capture.jsonl.gz").stat().st_size / 1e6
    print(f"data ready in {time.perf_counter() - started:.0f} s: {data} ({capture_mb:.0f} MB of gzip JSON Lines)", file=sys.stderr)
    ours = measure(Path(sys.executable), "_quality_ours.py", data, runs)
    python, why_not = evidently_python()
    theirs = None
    if python is not None:
        try:
            theirs = measure(python, "_quality_evidently.py", data, runs)
        except subprocess.CalledProcessError as exc:
            why_not = f"Evidently failed: {' '.join(exc.stderr.split())[-400:]}"

    print(f"\n### Quality check: {PREDICTIONS:,} captured predictions, {LABELS:,} labels, join included")
    print(f"\n{machine()}; each side in its own process pinned to one CPU; medians of {runs} runs.\n")
    rows = [
        ("read + join (labels, capture file), CPU", "read_cpu_s", "s"),
        ("metrics (per version; ours also CBPE), CPU", "check_cpu_s", "s"),
        ("end to end (imports, read, join, metrics), CPU", "cpu_s", "s"),
        ("end to end, wall clock", "total_s", "s"),
        ("peak memory (max RSS)", "peak_rss_mb", "MB"),
    ]
    if theirs is None:
        print("| measurement | serverless-mlops |\n| --- | --- |")
        for label, key, unit in rows:
            print(f"| {label} | {ours[key]:,.2f} {unit} |")
        print(f"\nEvidently not measured: {why_not}")
        return
    print("| measurement | serverless-mlops | Evidently ClassificationPreset | ratio |\n| --- | --- | --- | --- |")
    for label, key, unit in rows:
        shown = ratio(ours[key], theirs[key], "less", "more") if key == "peak_rss_mb" else ratio(ours[key], theirs[key])
        print(f"| {label} | {ours[key]:,.2f} {unit} | {theirs[key]:,.2f} {unit} | {shown} |")
    mine, other = ours["sample"], theirs["sample"]
    accuracy = ", ".join(f"{a:.4f}" for a in mine["accuracy"])
    print(f"| labelled rows joined | {mine['labelled']:,} | {other['labelled']:,} | |")
    print(f"| accuracy per version | {accuracy} | {', '.join(f'{a:.4f}' for a in other['accuracy'])} | |")
    estimated = ", ".join(f"{a:.4f}" for a in mine["estimated_accuracy"])
    print(f"| estimated accuracy (CBPE, all {PREDICTIONS:,} predictions) | {estimated} | not offered | |")


if __name__ == "__main__":
    main()
