"""Benchmark data for benchmarks/drift.py: a 10,000-row baseline profile and 1,000,000 captured rows × 20 features.

Written once into a cache folder and read by both sides (ours and Evidently's), each in its own process:
``profile.json.gz`` (the baseline profile training would store; its sample holds the 10,000 reference rows) and
``capture.jsonl.gz`` (the capture format the inference Lambda writes). numpy and the standard library only.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE_ROWS = 10_000
CURRENT_ROWS = 1_000_000
NUMERIC = [f"num_{i}" for i in range(10)]
CATEGORICAL = [f"cat_{i}" for i in range(10)]
KINDS = {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")}
SHIFTED_NUMERIC = NUMERIC[:3]  # shifted by 0.5 standard deviation in the current data
SHIFTED_CATEGORICAL = CATEGORICAL[:2]  # category frequencies changed
VERSION = 1  # bump when the data changes


def _columns(rows: int, seed: int, drifted: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        scale = 10.0 ** (i % 4 - 1)
        values = rng.normal(i, scale, rows) if i % 2 == 0 else rng.gamma(2.0 + i, scale, rows)
        if drifted and name in SHIFTED_NUMERIC:
            values = values + 0.5 * float(np.std(values))
        columns[name] = np.round(values, 6)
    for i, name in enumerate(CATEGORICAL):
        k = 3 + 2 * i
        weights = np.linspace(1.0, 3.0, k)
        if drifted and name in SHIFTED_CATEGORICAL:
            weights = weights[::-1] ** 2
        codes = rng.choice(k, size=rows, p=weights / weights.sum())
        columns[name] = np.array([f"{name}_v{j}" for j in range(k)], dtype=object)[codes]
    prediction = np.round(sum(columns[n] for n in NUMERIC[:5]) / 5.0, 6)
    return columns, prediction


def ensure_data(folder: Path) -> Path:
    """The benchmark's files in ``folder`` (made on first use: about 20 s)."""
    from serverless_mlops.model.profile import build_profile, dump_profile

    folder = folder / f"v{VERSION}"
    profile_path, capture_path = folder / "profile.json.gz", folder / "capture.jsonl.gz"
    if profile_path.exists() and capture_path.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    reference, prediction = _columns(REFERENCE_ROWS, seed=1, drifted=False)
    profile_path.write_bytes(dump_profile(build_profile(reference, KINDS, prediction, "numeric")))
    current, prediction = _columns(CURRENT_ROWS, seed=2, drifted=True)
    names = list(KINDS)
    values = [current[n].tolist() for n in names]
    predictions = prediction.tolist()
    partial = capture_path.with_suffix(".partial")
    with gzip.open(partial, "wt", encoding="utf-8", compresslevel=1) as out:
        for row in range(CURRENT_ROWS):
            record = {
                "ts": f"2026-11-25T{row * 86_399 // CURRENT_ROWS // 3600:02d}:{row * 86_399 // CURRENT_ROWS % 3600 // 60:02d}:"
                f"{row * 86_399 // CURRENT_ROWS % 60:02d}.000Z",
                "request_id": f"r{row}",
                "model": "bench",
                "version": 1,
                "features": {name: column[row] for name, column in zip(names, values, strict=True)},
                "prediction": predictions[row],
            }
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    partial.rename(capture_path)
    return folder
