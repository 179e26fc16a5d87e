"""The quality benchmark's data: 1,000,000 captured predictions of a binary classifier (the capture format, with ids and
the served probabilities) and 100,000 labels for a random tenth of them (ground-truth JSON Lines), plus the
calibration a training run would have stored. Written once per folder (seeded), reused by later runs."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

PREDICTIONS = 1_000_000
LABELS = 100_000
FEATURES = 5
START = datetime(2026, 12, 1, tzinfo=UTC)
SEED = 18


def ensure_data(folder: Path) -> Path:
    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(PREDICTIONS, FEATURES))
    logit = x @ np.array([1.2, -0.8, 0.5, 0.0, 0.3])
    p1 = 1 / (1 + np.exp(-1.3 * logit))  # the served probability: a little overconfident, so calibration matters
    truth = (rng.random(PREDICTIONS) < 1 / (1 + np.exp(-logit))).astype(int)
    seconds = np.sort(rng.random(PREDICTIONS) * 6 * 86400)
    with gzip.open(folder / "capture.jsonl.gz", "wt", compresslevel=6) as out:
        for i in range(PREDICTIONS):
            when = START + timedelta(seconds=float(seconds[i]))
            row = {
                "ts": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "request_id": f"req-{i // 100}",
                "id": f"req-{i // 100}-{i % 100}",
                "model": "bench",
                "version": 1 if i < PREDICTIONS // 2 else 2,
                "features": {f"x{k}": round(float(x[i, k]), 6) for k in range(FEATURES)},
                "prediction": int(p1[i] >= 0.5),
                "probabilities": [round(1 - float(p1[i]), 7), round(float(p1[i]), 7)],
            }
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
    labelled = np.sort(rng.choice(PREDICTIONS, size=LABELS, replace=False))
    with (folder / "labels.jsonl").open("w", encoding="utf-8") as out:
        for i in labelled:
            out.write(json.dumps({"id": f"req-{i // 100}-{i % 100}", "label": int(truth[i])}) + "\n")
    # the calibration training would store: isotonic on a holdout of the same relation
    from serverless_mlops.model.calibration import fit_calibration

    hx = rng.normal(size=(20_000, FEATURES))
    hlogit = hx @ np.array([1.2, -0.8, 0.5, 0.0, 0.3])
    hp1 = 1 / (1 + np.exp(-1.3 * hlogit))
    htruth = (rng.random(20_000) < 1 / (1 + np.exp(-hlogit))).astype(int)
    calibration = fit_calibration(htruth, np.column_stack([1 - hp1, hp1]), [0, 1])
    (folder / "calibration.json").write_text(json.dumps(calibration), encoding="utf-8")
    done.write_text("ok\n", encoding="utf-8")
    return folder
