"""Quality-check benchmark (`python benchmarks/quality.py`): 1,000,000 captured predictions and 100,000 labels.

Our check and Evidently's ClassificationPreset each run in their own process, pinned to one CPU, on the same data: the
capture writer's own objects for 1,000 flushes of 1,000 rows (a binary classifier, two model versions, ids and served
probabilities) — the capture objects (gzip JSON Lines, features included) and, beside each, its predictions object
(the same rows' time, version, id, prediction and probabilities as gzip JSON columns) — and a ground-truth file (JSON
Lines: id, label). The join is included on every side. Ours joins while it reads (labels by id, within the label
delay) and computes realized metrics per version plus CBPE over every prediction: from the predictions objects, as
the quality check reads a window, and from the capture objects alone, as it reads objects written before predictions
objects existed. Evidently's side merges the labels on id with pandas and runs the ClassificationPreset on each
version's joined rows, after reading the predictions three ways: as a user of Evidently would
(``pandas.read_json(lines=True, compression="gzip")`` of the capture), with our capture reader (the same msgspec
struct, the features skipped), and with our predictions objects. Figures: medians of QUALITY_BENCH_RUNS runs (default
3), side by side, with each run's CPU time and peak memory; the data (about 80 MB) is written once to
QUALITY_BENCH_DIR (default: a folder in /tmp).
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


def measure(python: Path, script: str, data: Path, runs: int, *options: str) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        completed = subprocess.run(
            [str(python), str(HERE / script), str(data), "--one-cpu", *options],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
        samples.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    keys = ("read_s", "check_s", "total_s", "cpu_s", "read_cpu_s", "check_cpu_s", "peak_rss_mb", "import_s")
    summary: dict[str, Any] = {key: statistics.median(s[key] for s in samples) for key in keys}
    summary["sample"] = samples[0]
    summary["runs"] = samples
    return summary


ROWS = [
    ("read + join (labels, captured predictions), CPU", "read_cpu_s", "s"),
    ("metrics (per version; ours also CBPE), CPU", "check_cpu_s", "s"),
    ("end to end (imports, read, join, metrics), CPU", "cpu_s", "s"),
    ("end to end, wall clock", "total_s", "s"),
    ("peak memory (max RSS)", "peak_rss_mb", "MB"),
]

EACH_RUN = [("end to end, CPU", "cpu_s", "s"), ("peak memory", "peak_rss_mb", "MB")]


def main() -> None:
    runs = int(os.environ.get("QUALITY_BENCH_RUNS", "3"))
    folder = Path(os.environ.get("QUALITY_BENCH_DIR") or Path(tempfile.gettempdir()) / "serverless-mlops-bench-quality-2")
    started = time.perf_counter()
    data = ensure_data(folder)
    capture_mb = (data / "capture.jsonl.gz").stat().st_size / 1e6
    compact = sorted((data / "predictions").iterdir())
    compact_mb = sum(path.stat().st_size for path in compact) / 1e6
    print(
        f"data ready in {time.perf_counter() - started:.0f} s: {data} (capture objects {capture_mb:.0f} MB, "
        f"{len(compact):,} predictions objects {compact_mb:.0f} MB, gzip)",
        file=sys.stderr,
    )
    sides: dict[str, dict[str, Any]] = {
        "ours: predictions objects": measure(Path(sys.executable), "_quality_ours.py", data, runs, "predictions"),
        "ours: capture objects only": measure(Path(sys.executable), "_quality_ours.py", data, runs, "capture"),
    }
    python, why_not = evidently_python()
    if python is not None:
        readers = {"pandas": "a user's pandas.read_json", "msgspec": "our capture reader", "predictions": "our predictions objects"}
        for reader, named in readers.items():
            try:
                sides[f"Evidently: {named}"] = measure(python, "_quality_evidently.py", data, runs, "--reader", reader)
            except subprocess.CalledProcessError as exc:
                why_not += f"Evidently ({named}) failed: {' '.join(exc.stderr.split())[-400:]}. "

    print(f"\n### Quality check: {PREDICTIONS:,} captured predictions, {LABELS:,} labels, join included")
    print(f"\n{machine()}; each side in its own process pinned to one CPU; medians of {runs} runs.\n")
    names = list(sides)
    print("| measurement | " + " | ".join(names) + " |\n| --- |" + " --- |" * len(names))
    for label, key, unit in ROWS:
        print(f"| {label} | " + " | ".join(f"{sides[n][key]:,.2f} {unit}" for n in names) + " |")
    for label, key, unit in EACH_RUN:
        runs = [", ".join(f"{r[key]:,.2f}" for r in sides[n]["runs"]) for n in names]
        print(f"| {label}, each run | " + " | ".join(f"{r} {unit}" for r in runs) + " |")
    print("| labelled rows joined | " + " | ".join(f"{sides[n]['sample']['labelled']:,}" for n in names) + " |")
    print("| accuracy per version | " + " | ".join(", ".join(f"{a:.4f}" for a in sides[n]["sample"]["accuracy"]) for n in names) + " |")
    estimated = ", ".join(f"{a:.4f}" for a in sides[names[0]]["sample"]["estimated_accuracy"])
    print(f"\nCBPE's estimated accuracy over all {PREDICTIONS:,} predictions (ours only; Evidently offers none): {estimated}.")
    theirs = [n for n in names if n.startswith("Evidently")]
    if not theirs:
        print(f"\nEvidently not measured: {why_not}")
        return
    ours = names[:2]
    print("\nRatios (Evidently's figure over ours: above 1, ours is better); the goal is ≥ 5× faster and ≤ ¼ of the memory.\n")
    print("| ours | Evidently | CPU, end to end | wall clock, end to end | peak memory |\n| --- | --- | --- | --- | --- |")
    for mine in ours:
        for other in theirs:
            a, b = sides[mine], sides[other]
            print(
                f"| {mine.removeprefix('ours: ')} | {other.removeprefix('Evidently: ')} | {ratio(a['cpu_s'], b['cpu_s'])} | "
                f"{ratio(a['total_s'], b['total_s'])} | {ratio(a['peak_rss_mb'], b['peak_rss_mb'], 'less', 'more')} |"
            )
    if why_not:
        print(f"\n{why_not}")


if __name__ == "__main__":
    main()
