"""The baseline profile that drift checks compare production traffic against.

Computed at training time on the training split, stored beside the ONNX model (gzip-compressed JSON, content
addressed like every artifact). Per feature: quantile bin edges and a histogram (numeric), category frequencies
(categorical), missing share and range; the same for the model's predictions; and a bounded, seeded sample of
reference rows, because the two-sample tests (KS, Wasserstein) need the reference values themselves.
numpy only: the drift-check Lambda reads this without pandas or scikit-learn.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PROFILE_SCHEMA_VERSION = 1
QUANTILE_BINS = 10
HISTOGRAM_BINS = 20
SAMPLE_ROWS = 10_000


def numeric_summary(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    summary: dict[str, Any] = {"kind": "numeric", "count": int(values.size), "missing_share": float(1 - present.size / max(values.size, 1))}
    if present.size == 0:
        return summary | {"quantile_edges": [], "histogram": {"edges": [], "counts": []}}
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, QUANTILE_BINS + 1)))
    counts, hist_edges = np.histogram(present, bins=HISTOGRAM_BINS)
    return summary | {
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "std": float(present.std(ddof=1)) if present.size > 1 else 0.0,
        "quantile_edges": edges.tolist(),
        "histogram": {"edges": hist_edges.tolist(), "counts": counts.tolist()},
    }


def categorical_summary(values: Sequence[Any] | np.ndarray) -> dict[str, Any]:
    array = np.asarray(values, dtype=object).astype(str)
    categories, counts = np.unique(array, return_counts=True)
    total = max(int(counts.sum()), 1)
    order = np.argsort(-counts, kind="stable")
    return {
        "kind": "categorical",
        "count": int(array.size),
        "missing_share": 0.0,
        "frequencies": {str(categories[i]): float(counts[i] / total) for i in order},
    }


def build_profile(
    columns: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    predictions: np.ndarray,
    prediction_kind: str,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile ``columns`` (feature name → values) and ``predictions`` (labels or values)."""
    rows = len(predictions)
    features = {
        name: numeric_summary(values) if kinds[name] == "numeric" else categorical_summary(values) for name, values in columns.items()
    }
    prediction = numeric_summary(predictions) if prediction_kind == "numeric" else categorical_summary(predictions)
    take = np.sort(np.random.default_rng(seed).choice(rows, size=min(rows, SAMPLE_ROWS), replace=False))

    def _sample(values: np.ndarray, kind: str) -> list[Any]:
        picked = np.asarray(values)[take]
        if kind == "numeric":
            return [None if np.isnan(v) else float(v) for v in picked.astype(np.float64)]
        return [str(v) for v in picked]

    return {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "rows": rows,
        "features": features,
        "prediction": prediction,
        "sample": {
            "rows": int(take.size),
            "features": {name: _sample(values, kinds[name]) for name, values in columns.items()},
            "prediction": _sample(predictions, prediction_kind),
        },
    }


def dump_profile(profile: Mapping[str, Any]) -> bytes:
    return gzip.compress(json.dumps(profile, separators=(",", ":"), allow_nan=False).encode(), mtime=0)


def load_profile(raw: bytes) -> dict[str, Any]:
    document = json.loads(gzip.decompress(raw))
    if not isinstance(document, dict) or document.get("schema_version") != PROFILE_SCHEMA_VERSION:
        raise ValueError(
            f"unsupported baseline profile (schema_version {document.get('schema_version') if isinstance(document, dict) else '?'})"
        )
    return document
