"""Realized and estimated performance metrics in numpy (the quality check runs on the inference layer: no scikit-learn).

Definitions follow scikit-learn's (tests compare them within 1e-9):

- accuracy; F1 of the positive class (the model's last class) for binary models, macro F1 over the labels present in
  either truth or prediction for multiclass ones (``2TP / (2TP + FP + FN)``, 0 for a class with neither);
- ROC-AUC from the served probabilities (binary: the positive class's; multiclass: one-vs-rest, macro), null when a
  class has no labelled row (scikit-learn refuses those);
- log-loss over the model's classes, probabilities clipped to [eps, 1 - eps] (float64 eps) and rows renormalized;
- ECE: the top-label expected calibration error over 10 equal-width confidence bins,
  ``sum |bin| / n * |accuracy(bin) - mean confidence(bin)|``;
- regression: RMSE, MAE, R² (1 for a perfect fit of constant truth, else 0 when the truth is constant) and bias
  (mean of prediction - truth: positive means the model over-predicts).

CBPE (:func:`estimate`) works on the same arrays: the expected confusion matrix from calibrated probabilities, and a
ROC-AUC whose positives and negatives are weighted by them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

ECE_BINS = 10


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    rows: int
    confidence: float | None
    accuracy: float | None


@dataclass
class Classification:
    accuracy: float
    f1: float
    roc_auc: float | None
    log_loss: float | None
    ece: float | None
    classes: list[str]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class, in ``classes`` order
    calibration: list[CalibrationBin] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def values(self) -> dict[str, float | None]:
        return {"accuracy": self.accuracy, "f1": self.f1, "roc_auc": self.roc_auc, "log_loss": self.log_loss, "ece": self.ece}


def weighted_auc(scores: NDArray[np.float64], positive: NDArray[np.float64], negative: NDArray[np.float64]) -> float | None:
    """The probability that a positive scores above a negative (ties count half), each row weighing ``positive[i]``
    as a positive and ``negative[i]`` as a negative: 0/1 weights give the ROC-AUC; calibrated probabilities its
    expectation. None when either side weighs nothing."""
    total_pos, total_neg = float(positive.sum()), float(negative.sum())
    if total_pos <= 0.0 or total_neg <= 0.0:
        return None
    _, groups = np.unique(scores, return_inverse=True)
    pos = np.bincount(groups, weights=positive)
    neg = np.bincount(groups, weights=negative)
    below = np.cumsum(neg) - neg
    return float(np.dot(pos, below + 0.5 * neg) / (total_pos * total_neg))


def _f1(matrix: NDArray[np.float64], k: int) -> float:
    tp = matrix[k, k]
    denominator = 2.0 * tp + (matrix[:, k].sum() - tp) + (matrix[k, :].sum() - tp)
    return float(2.0 * tp / denominator) if denominator > 0 else 0.0


def f1_from_matrix(matrix: NDArray[np.float64], binary: bool, present: Sequence[int] | None = None) -> float:
    """Binary: the last class's F1; else the mean F1 over ``present`` (default: every class)."""
    if binary:
        return _f1(matrix, matrix.shape[0] - 1)
    indices = list(range(matrix.shape[0])) if present is None else list(present)
    return float(np.mean([_f1(matrix, k) for k in indices])) if indices else 0.0


def _auc(scores: NDArray[np.float64], weights: NDArray[np.float64], binary: bool) -> float | None:
    """Binary: AUC of the last column; multiclass: the mean one-vs-rest AUC (None if any class weighs nothing)."""
    columns = [scores.shape[1] - 1] if binary else range(scores.shape[1])
    values = [weighted_auc(scores[:, k], weights[:, k], 1.0 - weights[:, k]) for k in columns]
    if any(v is None for v in values):
        return None
    return float(np.mean([v for v in values if v is not None]))


def calibration_bins(confidence: NDArray[np.float64], correct: NDArray[np.bool_], bins: int = ECE_BINS) -> list[CalibrationBin]:
    """Equal-width confidence bins (the last one closed): rows, mean confidence and accuracy per bin."""
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = np.bincount(index, minlength=bins)
    conf = np.bincount(index, weights=confidence, minlength=bins)
    hits = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    return [
        CalibrationBin(
            low=b / bins,
            high=(b + 1) / bins,
            rows=int(rows[b]),
            confidence=float(conf[b] / rows[b]) if rows[b] else None,
            accuracy=float(hits[b] / rows[b]) if rows[b] else None,
        )
        for b in range(bins)
    ]


def expected_calibration_error(bins: Sequence[CalibrationBin]) -> float | None:
    total = sum(b.rows for b in bins)
    if total == 0:
        return None
    return float(sum(b.rows / total * abs((b.accuracy or 0.0) - (b.confidence or 0.0)) for b in bins if b.rows))


def log_loss(truth: NDArray[np.int64], probabilities: NDArray[np.float64]) -> float:
    eps = float(np.finfo(np.float64).eps)
    clipped = np.clip(probabilities, eps, 1.0 - eps)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(clipped[np.arange(truth.size), truth])))


def _codes(values: NDArray[Any], classes: list[str]) -> tuple[NDArray[np.int64], list[str]]:
    """Class indices of ``values`` (labels as text); labels outside ``classes`` are appended to the returned list."""
    lookup = {c: i for i, c in enumerate(classes)}
    extended = list(classes)
    codes = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values.tolist()):
        code = lookup.get(value)
        if code is None:
            code = lookup[value] = len(extended)
            extended.append(value)
        codes[i] = code
    return codes, extended


def classification(
    truth: Sequence[Any] | NDArray[Any],
    predicted: Sequence[Any] | NDArray[Any],
    probabilities: NDArray[np.float64] | None,
    classes: Sequence[Any],
) -> Classification:
    """Realized metrics of one set of labelled rows; ``probabilities`` (rows x classes, the model's order) may be None."""
    model_classes = [str(c) for c in classes]
    y_true, extended = _codes(np.asarray(truth).astype(str), model_classes)
    y_pred, extended = _codes(np.asarray(predicted).astype(str), extended)
    size = len(extended)
    matrix = np.bincount(y_true * size + y_pred, minlength=size * size).reshape(size, size)
    binary = len(model_classes) == 2 and size == 2
    present = sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))
    notes: list[str] = []
    if size > len(model_classes):
        notes.append(f"labels outside the model's classes: {', '.join(extended[len(model_classes) :][:5])}")
    result = Classification(
        accuracy=float(np.mean(y_true == y_pred)) if y_true.size else 0.0,
        f1=f1_from_matrix(matrix.astype(np.float64), binary, present),
        roc_auc=None,
        log_loss=None,
        ece=None,
        classes=extended,
        confusion_matrix=matrix.tolist(),
        notes=notes,
    )
    if probabilities is None or y_true.size == 0:
        return result
    if size > len(model_classes):
        notes.append("ROC-AUC, log-loss and calibration need every label among the model's classes")
        return result
    onehot = np.zeros_like(probabilities, dtype=np.float64)
    onehot[np.arange(y_true.size), y_true] = 1.0
    result.roc_auc = _auc(probabilities, onehot, binary)
    if result.roc_auc is None:
        notes.append("ROC-AUC needs labelled rows of every class")
    result.log_loss = log_loss(y_true, probabilities)
    top = probabilities.argmax(axis=1)
    result.calibration = calibration_bins(probabilities[np.arange(top.size), top], top == y_true)
    result.ece = expected_calibration_error(result.calibration)
    return result


@dataclass(frozen=True)
class Estimate:
    accuracy: float
    f1: float
    roc_auc: float | None
    rows: int

    def values(self) -> dict[str, float | None]:
        return {"accuracy": self.accuracy, "f1": self.f1, "roc_auc": self.roc_auc}


def estimate(raw: NDArray[np.float64], calibrated: NDArray[np.float64], predicted: NDArray[np.int64]) -> Estimate:
    """CBPE: the expected confusion matrix (true class k, predicted class j gains ``calibrated[i, k]`` for each row i
    predicted j), its accuracy and F1, and the ROC-AUC with rows weighted by their calibrated probabilities
    (ranked by the raw, served ones). ``predicted``: class indices of the served labels."""
    rows, size = calibrated.shape
    matrix = np.zeros((size, size), dtype=np.float64)
    for j in range(size):
        matrix[:, j] = calibrated[predicted == j].sum(axis=0)
    binary = size == 2
    return Estimate(
        accuracy=float(np.trace(matrix) / rows) if rows else 0.0,
        f1=f1_from_matrix(matrix, binary),
        roc_auc=_auc(raw, calibrated, binary),
        rows=rows,
    )


@dataclass(frozen=True)
class Regression:
    rmse: float
    mae: float
    r2: float
    bias: float

    def values(self) -> dict[str, float | None]:
        return {"rmse": self.rmse, "mae": self.mae, "r2": self.r2, "bias": self.bias}


def regression(truth: NDArray[np.float64], predicted: NDArray[np.float64]) -> Regression:
    error = predicted - truth
    residual = float(np.dot(error, error))
    total = float(np.sum((truth - truth.mean()) ** 2)) if truth.size else 0.0
    r2 = (1.0 - residual / total) if total > 0 else (1.0 if residual == 0.0 else 0.0)
    return Regression(
        rmse=math.sqrt(residual / truth.size) if truth.size else 0.0,
        mae=float(np.mean(np.abs(error))) if truth.size else 0.0,
        r2=r2,
        bias=float(np.mean(error)) if truth.size else 0.0,
    )
