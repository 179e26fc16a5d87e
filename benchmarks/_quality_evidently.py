"""One measured run of Evidently's ClassificationPreset on the quality benchmark's data, join included; prints a JSON
line like _quality_ours.py.

Runs in the separate Evidently venv (see benchmarks/quality.py). How the captured predictions are read (``--reader``):

- ``pandas`` (what a user of Evidently would write): ``pd.read_json(lines=True, compression="gzip")`` of the capture
  file, the positive class's probability taken from each row's list;
- ``msgspec`` (generous: our reader): the capture file read as our side reads capture objects, up to the decoded
  rows: the same quarter-megabyte reads (``_blocks``, as the quality join reads) and the same typed msgspec struct as
  the quality join's ``_Row`` (the features stay raw, unparsed), each block becoming a DataFrame of id, version,
  prediction and the positive class's probability;
- ``predictions`` (most generous: our format and reader): our predictions objects, decoded column by column by the
  same msgspec struct as the quality join's, each object a DataFrame.

The labels are read with pandas and merged on id (an inner join: Evidently needs the target and the prediction side
by side); the ClassificationPreset then runs on each version's joined rows.
"""

from __future__ import annotations

import gc
import json
import sys
import zlib
from typing import Any

import msgspec
from _drift_run import Phases, data_folder

READ_BYTES = 1 << 18  # compressed bytes inflated at a time, as serverless_mlops.quality.join reads a capture object


class Row(msgspec.Struct, kw_only=True, gc=False):  # the quality join's _Row (that module needs botocore, not here)
    ts: str
    version: int
    prediction: int
    id: str | None = None
    probabilities: list[float] | None = None
    features: msgspec.Raw = msgspec.Raw()


class Columns(msgspec.Struct, kw_only=True, gc=False):  # serverless_mlops/quality/decoding.py's PredictionColumns
    format: str
    ts: list[str]
    version: list[int]
    rows: list[int]
    width: list[int]
    id: list[str | None]
    prediction: list[Any]
    probabilities: list[float]


def main() -> None:
    folder = data_folder(__file__)
    if folder is None:
        return
    phases = Phases()
    import numpy as np
    import pandas as pd
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    from serverless_mlops.drift.capture_reader import _blocks

    reader = sys.argv[sys.argv.index("--reader") + 1] if "--reader" in sys.argv else "msgspec"

    phases.mark()
    labels = pd.read_json(folder / "labels.jsonl", lines=True, dtype={"id": str, "label": int})
    if reader == "pandas":
        captured = pd.read_json(folder / "capture.jsonl.gz", lines=True, compression="gzip", dtype={"id": str})
        captured["p1"] = captured["probabilities"].str[1]
    else:
        frames = []
        collecting = gc.isenabled()
        gc.disable()  # as our reader pauses it while it reads a source
        try:
            if reader == "predictions":
                columns = msgspec.json.Decoder(Columns)
                for path in sorted((folder / "predictions").iterdir()):
                    found = columns.decode(zlib.decompress(path.read_bytes(), 31))
                    frames.append(
                        pd.DataFrame(
                            {
                                "id": found.id,
                                "version": np.repeat(found.version, found.rows),
                                "prediction": found.prediction,
                                "p1": np.array(found.probabilities).reshape(-1, 2)[:, 1],
                            }
                        )
                    )
            else:
                decoder = msgspec.json.Decoder(list[Row])
                with (folder / "capture.jsonl.gz").open("rb") as handle:
                    for block in _blocks(handle, READ_BYTES):
                        rows = decoder.decode(b"[" + block.rstrip().replace(b"\n", b",") + b"]")
                        frames.append(
                            pd.DataFrame(
                                {
                                    "id": [r.id for r in rows],
                                    "version": [r.version for r in rows],
                                    "prediction": [int(r.prediction) for r in rows],
                                    "p1": [r.probabilities[1] for r in rows],
                                }
                            )
                        )
            captured = pd.concat(frames, ignore_index=True)
            del frames
        finally:
            if collecting:
                gc.enable()
    joined = captured.merge(labels.rename(columns={"label": "target"}), on="id", how="inner")
    phases.mark()
    definition = DataDefinition(
        classification=[BinaryClassification(target="target", prediction_labels="prediction", prediction_probas="p1", pos_label=1)]
    )
    accuracy = []
    labelled = 0
    for version in sorted(joined["version"].unique()):
        rows = joined[joined["version"] == version][["target", "prediction", "p1"]].reset_index(drop=True)
        labelled += len(rows)
        snapshot = Report([ClassificationPreset()]).run(Dataset.from_pandas(rows, data_definition=definition), None)
        document = snapshot.dict()
        accuracy.append(next(float(m["value"]) for m in document["metrics"] if m["metric_name"].startswith("Accuracy")))
    phases.mark()
    print(json.dumps({"predictions": len(captured), "labelled": labelled, "accuracy": accuracy, **phases.figures()}))


if __name__ == "__main__":
    main()
