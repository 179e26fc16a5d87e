"""One measured run of our drift check on the benchmark data; prints a JSON line of timings and peak memory.

``python benchmarks/_drift_ours.py DATA_FOLDER [--one-cpu]`` (run in its own process by benchmarks/drift.py).
"""

from __future__ import annotations

import json

from _drift_run import Phases, data_folder


def main() -> None:
    folder = data_folder(__file__)
    if folder is None:
        return
    phases = Phases()
    from serverless_mlops.drift.capture_reader import read_file
    from serverless_mlops.drift.check import check_drift
    from serverless_mlops.model.profile import load_profile
    from serverless_mlops.model.spec import Drift

    phases.mark()
    profile = load_profile((folder / "profile.json.gz").read_bytes())
    kinds = {name: summary["kind"] for name, summary in profile["features"].items()}
    current = read_file(folder / "capture.jsonl.gz", kinds, profile["prediction"]["kind"])
    phases.mark()
    result = check_drift(profile, Drift(), current, model="bench", version=1, window=None, generated_at="bench")
    phases.mark()
    print(
        json.dumps(
            {
                "rows": result.rows,
                "method": result.method,
                "drifted": sorted(f.name for f in result.drifted()),
                **phases.figures(),
            }
        )
    )


if __name__ == "__main__":
    main()
