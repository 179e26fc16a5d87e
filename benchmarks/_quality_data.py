"""The quality benchmark's data: 1,000,000 captured predictions of a binary classifier and 100,000 labels for a random
tenth of them (ground-truth JSON Lines), plus the calibration a training run would have stored. Written once per
folder (seeded), reused by later runs.

The predictions come as the inference function captures them: requests of 100 rows (default ids
``{request id}-{row}``, one capture time a request), buffered and flushed every 1,000 rows (``MLOPS_CAPTURE_MAX_ROWS``)
by the capture writer's own code (:class:`serverless_mlops.serving.capture_writer.CaptureBuffer` into a sink that
keeps the objects), so each flush is a capture object and its predictions object, encoded as the endpoint encodes
them. The 1,000 capture objects are kept as one file (``capture.jsonl.gz``: gzip members one after another, which
any gzip reader takes as one stream), the 1,000 predictions objects one file each under ``predictions/``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

PREDICTIONS = 1_000_000
LABELS = 100_000
FEATURES = 5
ROWS_PER_REQUEST = 100
FLUSH_ROWS = 1000
START = datetime(2026, 12, 1, tzinfo=UTC)
SEED = 18
DONE = ".complete-2"  # the data's version: requests share a capture time; predictions objects beside the captures


class _Objects:
    """A capture sink that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.objects: list[tuple[str, bytes]] = []

    def put(self, key: str, data: bytes) -> None:
        self.objects.append((key, data))


def ensure_data(folder: Path) -> Path:
    done = folder / DONE
    if done.is_file():
        return folder
    from serverless_mlops.serving.capture_writer import CaptureBuffer

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(PREDICTIONS, FEATURES))
    logit = x @ np.array([1.2, -0.8, 0.5, 0.0, 0.3])
    p1 = 1 / (1 + np.exp(-1.3 * logit))  # the served probability: a little overconfident, so calibration matters
    truth = (rng.random(PREDICTIONS) < 1 / (1 + np.exp(-logit))).astype(int)
    requests = PREDICTIONS // ROWS_PER_REQUEST
    seconds = np.sort(rng.random(requests) * 6 * 86400)
    names = [f"x{k}" for k in range(FEATURES)]
    served = np.round(np.column_stack([1 - p1, p1]), 7).tolist()  # the endpoint serves probabilities rounded to 7 places
    features = np.round(x, 6).tolist()
    labels = (p1 >= 0.5).astype(int).tolist()
    clock = [0.0]
    sink = _Objects()
    buffer = CaptureBuffer(lambda: sink, max_rows=FLUSH_ROWS, max_seconds=1e9, clock=lambda: clock[0])
    predictions = folder / "predictions"
    predictions.mkdir(exist_ok=True)
    with (folder / "capture.jsonl.gz").open("wb") as capture:
        for request in range(requests):
            rows = slice(request * ROWS_PER_REQUEST, (request + 1) * ROWS_PER_REQUEST)
            clock[0] = START.timestamp() + float(seconds[request])
            version = 1 if request < requests // 2 else 2
            buffer.add("bench", version, f"req-{request}", names, "rows", features[rows], labels[rows], probabilities=served[rows])
            buffer.maybe_flush()
            for key, data in sink.objects:
                if key.startswith("capture/"):
                    capture.write(data)
                else:
                    (predictions / key.rsplit("/", 1)[1]).write_bytes(data)
            sink.objects.clear()
    labelled = np.sort(rng.choice(PREDICTIONS, size=LABELS, replace=False))
    with (folder / "labels.jsonl").open("w", encoding="utf-8") as out:
        for i in labelled:
            out.write(json.dumps({"id": f"req-{i // ROWS_PER_REQUEST}-{i % ROWS_PER_REQUEST}", "label": int(truth[i])}) + "\n")
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
