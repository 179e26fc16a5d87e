"""One measured run of our drift check on the benchmark data; prints a JSON line of timings and peak memory.

``python benchmarks/_drift_ours.py DATA_FOLDER [--one-cpu]`` (run in its own process by benchmarks/drift.py).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    if len(sys.argv) < 2:  # `make bench` runs every benchmarks/*.py: this helper only runs under drift.py
        print(f"{Path(__file__).name}: a helper of benchmarks/drift.py (usage: {Path(__file__).name} DATA_FOLDER [--one-cpu])")
        return
    folder = Path(sys.argv[1])
    if "--one-cpu" in sys.argv:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    started = time.perf_counter()
    cpu_started = time.process_time()
    from serverless_mlops.drift.capture_reader import read_file
    from serverless_mlops.drift.check import check_drift
    from serverless_mlops.profile import load_profile
    from serverless_mlops.spec import Drift

    imported, imported_cpu = time.perf_counter(), time.process_time()
    profile = load_profile((folder / "profile.json.gz").read_bytes())
    kinds = {name: summary["kind"] for name, summary in profile["features"].items()}
    current = read_file(folder / "capture.jsonl.gz", kinds, profile["prediction"]["kind"])
    read, read_cpu = time.perf_counter(), time.process_time()
    result = check_drift(profile, Drift(), current, model="bench", version=1, window=None, generated_at="bench")
    done, done_cpu = time.perf_counter(), time.process_time()
    print(
        json.dumps(
            {
                "rows": result.rows,
                "method": result.method,
                "drifted": sorted(f.name for f in result.drifted()),
                "import_s": imported - started,
                "read_s": read - imported,
                "check_s": done - read,
                "total_s": done - started,
                "cpu_s": done_cpu - cpu_started,
                "read_cpu_s": read_cpu - imported_cpu,
                "check_cpu_s": done_cpu - read_cpu,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
