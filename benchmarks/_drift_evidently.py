"""One measured run of Evidently's DataDriftPreset on the benchmark data; prints a JSON line like _drift_ours.py.

Runs in the separate Evidently venv (see benchmarks/drift.py). It reads the same files as our side: the reference
rows are the baseline profile's sample, the current rows the capture file, read in the same 1 MB blocks and decoded
with the same msgspec decoder into a pandas DataFrame (categoricals as ``category``), so the two sides differ in
the check, not in the JSON parsing.
"""

from __future__ import annotations

import gzip
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
    import msgspec
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from serverless_mlops.drift.capture_reader import _blocks

    imported, imported_cpu = time.perf_counter(), time.process_time()
    profile = json.loads(gzip.decompress((folder / "profile.json.gz").read_bytes()))
    kinds = {name: summary["kind"] for name, summary in profile["features"].items()}
    numeric = [n for n, k in kinds.items() if k == "numeric"]
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    reference = pd.DataFrame(profile["sample"]["features"])
    reference["prediction"] = profile["sample"]["prediction"]

    decoder = msgspec.json.Decoder()
    frames = []
    with (folder / "capture.jsonl.gz").open("rb") as handle:
        for block in _blocks(handle):
            rows = decoder.decode(b"[" + block.rstrip().replace(b"\n", b",") + b"]")
            frame = pd.DataFrame.from_records([row["features"] for row in rows], columns=list(kinds))
            frame["prediction"] = [row["prediction"] for row in rows]
            frames.append(frame)
    current = pd.concat(frames, ignore_index=True)
    del frames
    for name in categorical:
        current[name] = current[name].astype("category")
        reference[name] = reference[name].astype("category")
    read, read_cpu = time.perf_counter(), time.process_time()
    definition = DataDefinition(numerical_columns=[*numeric, "prediction"], categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition)
    )
    document = snapshot.dict()
    done, done_cpu = time.perf_counter(), time.process_time()
    drifted = next(m["value"] for m in document["metrics"] if m["metric_name"].startswith("DriftedColumnsCount"))
    methods = sorted({m["metric_name"].split("method=")[1].split(",")[0] for m in document["metrics"] if "method=" in m["metric_name"]})
    print(
        json.dumps(
            {
                "rows": len(current),
                "drifted_count": drifted["count"],
                "methods": methods,
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
