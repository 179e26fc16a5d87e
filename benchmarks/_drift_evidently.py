"""One measured run of Evidently's DataDriftPreset on the benchmark data; prints a JSON line like _drift_ours.py.

Runs in the separate Evidently venv (see benchmarks/drift.py). It reads the same files as our side: the reference
rows are the baseline profile's sample, the current rows the capture file. The capture file is read exactly as our
side reads it, up to the decoded rows: the same 1 MB blocks (``_blocks``), the same typed msgspec decoder
(``_Decoder``: a struct per row, no dict) and the garbage collector paused for the whole read, as
``CaptureReader.add`` pauses it. What differs is only what each side needs for its check: ours folds each block's
rows into numpy columns and category counts; Evidently needs a pandas DataFrame of the rows (categoricals as
``category``), so its read phase also builds one, block by block, and concatenates them.
"""

from __future__ import annotations

import gc
import gzip
import json

from _drift_run import Phases, data_folder


def main() -> None:
    folder = data_folder(__file__)
    if folder is None:
        return
    phases = Phases()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from serverless_mlops.drift.capture_reader import _blocks, _Decoder

    phases.mark()
    profile = json.loads(gzip.decompress((folder / "profile.json.gz").read_bytes()))
    kinds = {name: summary["kind"] for name, summary in profile["features"].items()}
    numeric = [n for n, k in kinds.items() if k == "numeric"]
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    reference = pd.DataFrame(profile["sample"]["features"])
    reference["prediction"] = profile["sample"]["prediction"]

    path = folder / "capture.jsonl.gz"
    decoder = _Decoder(list(kinds))
    frames = []
    collecting = gc.isenabled()
    gc.disable()  # as CaptureReader.add does while it reads a source
    try:
        with path.open("rb") as handle:
            first = 1
            for block in _blocks(handle):
                rows = decoder.decode(block, str(path), first)
                first += block.count(b"\n")
                frame = pd.DataFrame.from_records(rows.features, columns=list(kinds))
                frame["prediction"] = rows.predictions
                frames.append(frame)
        current = pd.concat(frames, ignore_index=True)
        del frames
        for name in categorical:
            current[name] = current[name].astype("category")
            reference[name] = reference[name].astype("category")
    finally:
        if collecting:
            gc.enable()
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
