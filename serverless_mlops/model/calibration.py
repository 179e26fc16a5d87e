"""Probability calibration for confidence-based performance estimation (CBPE), fitted at training time.

The quality check estimates a classifier's accuracy, F1 and ROC-AUC before labels arrive from its predicted
probabilities; that is only sound when the probabilities are calibrated (a row scored 0.8 is right 80% of the time).
Training fits one isotonic regression per class (one-vs-rest) on the holdout's ONNX probabilities — the values the
endpoint serves — and stores the fitted step functions in the baseline profile (``profile["calibration"]``), so they
travel with the version. Applying them (:func:`calibrate`) is numpy only: the quality check runs on the inference layer.

Stored form::

    {"method": "isotonic_ovr", "classes": [...], "rows": N,
     "curves": [{"x": [...], "y": [...]}, ...]}   # one per class, in the model's class order

A class with a single label value in the holdout (nothing to fit) keeps its raw probability (an identity curve).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

METHOD = "isotonic_ovr"
MAX_POINTS = 2_000  # knots kept per class curve: the profile stays small whatever the holdout's size


def fit_calibration(y_true: Sequence[Any] | NDArray[Any], probabilities: NDArray[Any], classes: Sequence[Any]) -> dict[str, Any]:
    """Fit one isotonic curve per class on ``probabilities`` (rows x classes, the model's order) against ``y_true``."""
    from sklearn.isotonic import IsotonicRegression  # training only: never on the inference path

    y = np.asarray(y_true).astype(str)
    scores = np.asarray(probabilities, dtype=np.float64)
    curves: list[dict[str, list[float]]] = []
    for k, label in enumerate(classes):
        hit = (y == str(label)).astype(np.float64)
        if hit.min() == hit.max():
            curves.append({"x": [0.0, 1.0], "y": [0.0, 1.0]})
            continue
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores[:, k], hit)
        x, fitted = np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)
        if x.size > MAX_POINTS:  # an isotonic fit is piecewise linear between its knots: keep evenly spaced ones
            keep = np.unique(np.linspace(0, x.size - 1, MAX_POINTS).round().astype(int))
            x, fitted = x[keep], fitted[keep]
        curves.append({"x": x.tolist(), "y": fitted.tolist()})
    return {"method": METHOD, "classes": [str(c) for c in classes], "rows": int(y.size), "curves": curves}


def calibrate(calibration: Mapping[str, Any], probabilities: NDArray[Any]) -> NDArray[np.float64]:
    """Map raw probabilities (rows x classes) through the stored curves; rows sum to 1 (a row every curve maps to
    zero keeps its raw probabilities)."""
    if calibration.get("method") != METHOD:
        raise ValueError(f"unknown calibration method {calibration.get('method')!r}; expected {METHOD!r}")
    scores = np.asarray(probabilities, dtype=np.float64)
    curves = calibration["curves"]
    if scores.ndim != 2 or scores.shape[1] != len(curves):
        raise ValueError(f"calibration has {len(curves)} classes, the probabilities {scores.shape[-1] if scores.ndim else 0}")
    out = np.empty_like(scores)
    binary = len(curves) == 2  # binary: the positive class's curve decides; the other is its complement
    for k, curve in enumerate(curves):
        if binary and k == 0:
            continue
        out[:, k] = np.interp(scores[:, k], np.asarray(curve["x"], dtype=np.float64), np.asarray(curve["y"], dtype=np.float64))
    if binary:
        out[:, 0] = 1.0 - out[:, 1]
        return out
    totals = out.sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0.0
    out[empty] = scores[empty]
    totals[empty] = scores[empty].sum(axis=1, keepdims=True)
    return np.asarray(out / totals, dtype=np.float64)
