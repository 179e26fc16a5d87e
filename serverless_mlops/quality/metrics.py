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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

ECE_BINS = 10
CHUNK = 1 << 14  # rows per block where CBPE works a block at a time


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


def weighted_auc(
    scores: NDArray[np.floating[Any]], positive: NDArray[np.floating[Any]], negative: NDArray[np.floating[Any]] | None = None
) -> float | None:
    """The probability that a positive scores above a negative (ties count half), each row weighing ``positive[i]``
    as a positive and ``negative[i]`` (default ``1 - positive[i]``) as a negative: 0/1 weights give the ROC-AUC;
    calibrated probabilities its expectation. None when either side weighs nothing.

    The rows are ranked once (one argsort of ``scores`` as given: float32 scores stay float32) and the weights are
    summed per tie group a block of ranked rows at a time, in float64, with the negative weight below carried from
    block to block; a block ends where a tie group starts, so no group is split. Beside the ranking (8 bytes a row)
    and the ranked scores, only a block's temporaries are held, not several arrays of every row."""
    rows = scores.shape[0]
    total_pos = _sum(positive)
    total_neg = rows - total_pos if negative is None else _sum(negative)
    if total_pos <= 0.0 or total_neg <= 0.0:
        return None
    order = np.argsort(scores)  # ties are summed as groups: no stable sort (and its buffer) needed
    ranked = scores[order]
    below = numerator = 0.0
    start = 0
    while start < rows:
        stop = min(start + CHUNK, rows)
        if stop < rows:  # end the block where the tie group holding row ``stop`` starts (or, if that is ``start``, ends)
            first = int(np.searchsorted(ranked, ranked[stop], side="left"))
            stop = first if first > start else int(np.searchsorted(ranked, ranked[stop], side="right"))
        taken = order[start:stop]
        pos = positive[taken].astype(np.float64)
        neg = 1.0 - pos if negative is None else negative[taken].astype(np.float64)
        block = ranked[start:stop]
        firsts = np.flatnonzero(np.concatenate(([True], block[1:] != block[:-1])))
        group_pos = np.add.reduceat(pos, firsts)
        group_neg = np.add.reduceat(neg, firsts)
        under = np.cumsum(group_neg)
        under -= group_neg
        under += below
        under += 0.5 * group_neg
        numerator += float(np.dot(group_pos, under))
        below += float(group_neg.sum())
        start = stop
    return numerator / (total_pos * total_neg)


def _sum(values: NDArray[np.floating[Any]]) -> float:
    """The sum of ``values`` in float64 (numpy widens float32 ones a buffer at a time, not as a copy)."""
    return float(values.sum(dtype=np.float64))


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


def _auc(scores: NDArray[np.floating[Any]], weights: NDArray[np.floating[Any]], binary: bool) -> float | None:
    """Binary: AUC of the last column; multiclass: the mean one-vs-rest AUC (None if any class weighs nothing)."""
    columns = [scores.shape[1] - 1] if binary else range(scores.shape[1])
    values = [weighted_auc(np.ascontiguousarray(scores[:, k]), np.ascontiguousarray(weights[:, k])) for k in columns]
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


def estimate(raw: NDArray[np.floating[Any]], calibrated: NDArray[np.floating[Any]], predicted: NDArray[np.integer[Any]]) -> Estimate:
    """CBPE: the expected confusion matrix (true class k, predicted class j gains ``calibrated[i, k]`` for each row i
    predicted j), its accuracy and F1, and the ROC-AUC with rows weighted by their calibrated probabilities
    (ranked by the raw, served ones). ``predicted``: class indices of the served labels."""
    rows, size = calibrated.shape
    matrix = np.zeros((size, size), dtype=np.float64)
    for start in range(0, rows, CHUNK):
        _expect(matrix, calibrated[start : start + CHUNK].astype(np.float64), predicted[start : start + CHUNK])
    return _estimated(matrix, rows, _auc(raw, calibrated, size == 2))


def estimate_calibrating(
    raw: Sequence[NDArray[np.floating[Any]]],
    predicted: Sequence[NDArray[np.integer[Any]]],
    calibrate: Callable[[NDArray[np.floating[Any]]], NDArray[np.float64]],
) -> Estimate:
    """:func:`estimate` of ``calibrate(raw)`` for rows given as blocks (``raw[b]`` and ``predicted[b]`` describe the
    same rows, as the join keeps them), calibrated about :data:`CHUNK` rows at a time: the expected confusion matrix
    is summed from each block's float64 probabilities, and the calibrated ones are kept for the ROC-AUC's weights as
    float32 (a weight's 24 bits are far finer than the estimate's precision). A window's rows never stand as one
    float64 array, nor as one array of every class: the ROC-AUC ranks one class's column at a time."""
    rows = sum(block.shape[0] for block in raw)
    size = raw[0].shape[1] if raw else 0
    matrix = np.zeros((size, size), dtype=np.float64)
    binary = size == 2
    weights = np.empty((rows, 1 if binary else size), dtype=np.float32)  # binary: the positive class's only
    start = 0
    for scores, codes in _blocks(raw, predicted):
        block = calibrate(scores)
        _expect(matrix, block, codes)
        weights[start : start + block.shape[0]] = block[:, -1:] if binary else block
        start += block.shape[0]
    values = []
    for k in [size - 1] if binary else range(size):
        column = np.concatenate([block[:, k] for block in raw]) if raw else np.zeros(0, dtype=np.float32)
        values.append(weighted_auc(column, weights[:, 0 if binary else k]))
    roc_auc = None if not values or any(v is None for v in values) else float(np.mean([v for v in values if v is not None]))
    return _estimated(matrix, rows, roc_auc)


def _blocks(
    raw: Sequence[NDArray[np.floating[Any]]], predicted: Sequence[NDArray[np.integer[Any]]]
) -> Iterator[tuple[NDArray[np.floating[Any]], NDArray[np.integer[Any]]]]:
    """The rows in blocks of about :data:`CHUNK`: small blocks joined, large ones cut."""
    pending: list[tuple[NDArray[np.floating[Any]], NDArray[np.integer[Any]]]] = []
    held = 0
    for scores, codes in zip(raw, predicted, strict=True):
        for start in range(0, scores.shape[0], CHUNK):
            pending.append((scores[start : start + CHUNK], codes[start : start + CHUNK]))
            held += pending[-1][0].shape[0]
            if held >= CHUNK:
                yield _joined(pending)
                pending, held = [], 0
    if pending:
        yield _joined(pending)


def _joined(
    pieces: list[tuple[NDArray[np.floating[Any]], NDArray[np.integer[Any]]]],
) -> tuple[NDArray[np.floating[Any]], NDArray[np.integer[Any]]]:
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate([p for p, _ in pieces]), np.concatenate([c for _, c in pieces])


def _expect(matrix: NDArray[np.float64], calibrated: NDArray[np.float64], predicted: NDArray[np.integer[Any]]) -> None:
    for j in range(matrix.shape[1]):
        matrix[:, j] += calibrated[predicted == j].sum(axis=0)


def _estimated(matrix: NDArray[np.float64], rows: int, roc_auc: float | None) -> Estimate:
    return Estimate(
        accuracy=float(np.trace(matrix) / rows) if rows else 0.0,
        f1=f1_from_matrix(matrix, matrix.shape[0] == 2),
        roc_auc=roc_auc,
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
