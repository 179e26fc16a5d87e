"""One measured run of our quality check on the benchmark data; prints a JSON line (see benchmarks/quality.py).

Read: the ground-truth file (validated, last label wins) and the captured predictions, joined as they are read
(:class:`serverless_mlops.quality.join.Joiner`): ``--source predictions`` (the default) reads the 1,000 predictions
objects as the quality check reads them beside their capture objects (:meth:`Joiner.add_predictions`), ``--source
capture`` the capture objects themselves, as it reads objects written before predictions objects existed. Check:
realized metrics of the labelled rows and CBPE over every prediction, per version
(:func:`serverless_mlops.quality.check.check_quality`).
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from _drift_run import Phases, data_folder


def main() -> None:
    folder = data_folder(__file__)
    if folder is None:
        return
    phases = Phases()
    from _quality_data import START

    from serverless_mlops.drift.result import Window
    from serverless_mlops.model.quality_spec import Quality
    from serverless_mlops.quality.check import check_quality
    from serverless_mlops.quality.join import Joiner
    from serverless_mlops.quality.joined import Joined
    from serverless_mlops.quality.labels import GroundTruth, parse_labels

    phases.mark()
    truth = GroundTruth()
    truth.add(parse_labels((folder / "labels.jsonl").read_bytes(), "labels.jsonl", "binary_classification", [0, 1]), "labels.jsonl")
    end = START + timedelta(days=7)

    def join() -> Joined:  # as join_window does: the joiner (and what it read) goes once it has joined
        joiner = Joiner(truth.labels, start=START, end=end, label_delay=timedelta(days=7), classes=[0, 1])
        if "capture" in sys.argv[2:]:
            with (folder / "capture.jsonl.gz").open("rb") as handle:
                joiner.add_stream(handle, "capture.jsonl.gz")
        else:
            for path in sorted((folder / "predictions").iterdir()):
                if not joiner.add_predictions(path.read_bytes(), path.name):
                    raise SystemExit(f"{path}: not a predictions object")
        return joiner.result()

    joined = join()
    phases.mark()
    calibration = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))
    result = check_quality(
        joined,
        model="bench",
        task="binary_classification",
        window=Window(start="2026-12-01T00:00:00.000Z", end="2026-12-08T00:00:00.000Z", label="bench"),
        generated_at="2026-12-08T00:00:00.000Z",
        config=Quality(min_labels=100),
        classes=[0, 1],
        calibrations={1: calibration, 2: calibration},
        holdouts={},
    )
    phases.mark()
    print(
        json.dumps(
            {
                "predictions": sum(v.predictions for v in result.versions),
                "sources": len(joined.sources),
                "labelled": sum(v.labelled for v in result.versions),
                "accuracy": [v.realized["accuracy"] for v in result.versions],
                "estimated_accuracy": [v.estimated["accuracy"] for v in result.versions],
                **phases.figures(),
            }
        )
    )


if __name__ == "__main__":
    main()
