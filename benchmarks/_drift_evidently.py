"""One measured run of Evidently's DataDriftPreset on the benchmark data; prints a JSON line like _drift_ours.py.

Runs in the separate Evidently venv (see benchmarks/drift.py). It reads the same files as our side: the reference
rows are the baseline profile's sample, the current rows the capture file, read in the same 1 MB blocks and decoded
with the same msgspec decoder into a pandas DataFrame (categoricals as ``category``), so the two sides differ in
the check, not in the JSON parsing.
"""

from __future__ import annotations

import gzip
import json

from _drift_run import Phases, data_folder


def main() -> None:
    folder = data_folder(__file__)
    if folder is None:
        return
    phases = Phases()
    import msgspec
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from serverless_mlops.drift.capture_reader import _blocks

    phases.mark()
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
    phases.mark()
    definition = DataDefinition(numerical_columns=[*numeric, "prediction"], categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition)
    )
    document = snapshot.dict()
    phases.mark()
    drifted = next(m["value"] for m in document["metrics"] if m["metric_name"].startswith("DriftedColumnsCount"))
    methods = sorted({m["metric_name"].split("method=")[1].split(",")[0] for m in document["metrics"] if "method=" in m["metric_name"]})
    print(
        json.dumps(
            {
                "rows": len(current),
                "drifted_count": drifted["count"],
                "methods": methods,
                **phases.figures(),
            }
        )
    )


if __name__ == "__main__":
    main()
