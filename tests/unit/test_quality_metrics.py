"""The quality check's numpy metrics equal scikit-learn's on the same arrays (within 1e-9), and ECE equals its
definition computed the slow way."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as m

from serverless_mlops.quality import metrics

TOL = 1e-9


def _classifier_outputs(rng: np.random.Generator, rows: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    logits = rng.normal(size=(rows, classes))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities = np.round(probabilities, 3)  # ties in the scores, as float32 outputs have
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predicted = probabilities.argmax(axis=1)
    truth = np.where(rng.random(rows) < 0.7, predicted, rng.integers(0, classes, rows))
    return truth, predicted, probabilities


@pytest.mark.parametrize(("classes", "seed"), [(2, 1), (3, 2), (5, 3)])
def test_classification_metrics_equal_scikit_learn(classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, predicted, probabilities = _classifier_outputs(rng, 3_000, classes)
    names = [f"c{k}" for k in range(classes)]
    y, yhat = np.array(names)[truth], np.array(names)[predicted]
    found = metrics.classification(y, yhat, probabilities, names)
    assert found.accuracy == pytest.approx(m.accuracy_score(y, yhat), abs=TOL)
    if classes == 2:
        assert found.f1 == pytest.approx(m.f1_score(y, yhat, pos_label="c1"), abs=TOL)
        assert found.roc_auc == pytest.approx(m.roc_auc_score(truth == 1, probabilities[:, 1]), abs=TOL)
    else:
        assert found.f1 == pytest.approx(m.f1_score(y, yhat, average="macro"), abs=TOL)
        assert found.roc_auc == pytest.approx(m.roc_auc_score(y, probabilities, multi_class="ovr", labels=names), abs=TOL)
    assert found.log_loss == pytest.approx(m.log_loss(y, probabilities, labels=names), abs=TOL)
    assert found.confusion_matrix == m.confusion_matrix(y, yhat, labels=names).tolist()
    # ECE, the slow way: top-label confidence in 10 equal-width bins (the last one closed)
    confidence, hit = probabilities.max(axis=1), probabilities.argmax(axis=1) == truth
    ece = 0.0
    for b in range(10):
        inside = (confidence > b / 10) & (confidence <= (b + 1) / 10) if b else confidence <= 0.1
        if inside.any():
            ece += inside.mean() * abs(hit[inside].mean() - confidence[inside].mean())
    assert found.ece == pytest.approx(ece, abs=TOL)
    assert sum(point.rows for point in found.calibration) == truth.size


def test_macro_f1_counts_labels_present_in_truth_or_prediction_only() -> None:
    y = np.array(["a", "a", "b", "b", "b"])
    yhat = np.array(["a", "b", "b", "b", "a"])
    found = metrics.classification(y, yhat, None, ["a", "b", "c"])
    assert found.f1 == pytest.approx(m.f1_score(y, yhat, average="macro"), abs=TOL)
    assert found.roc_auc is None
    assert found.log_loss is None


def test_auc_is_none_when_a_class_has_no_labelled_row_and_unknown_labels_are_named() -> None:
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7]])
    found = metrics.classification(["0", "0"], ["0", "1"], probabilities, ["0", "1"])
    assert found.roc_auc is None
    assert "ROC-AUC needs labelled rows of every class" in found.notes
    odd = metrics.classification(["0", "7"], ["0", "1"], probabilities, ["0", "1"])
    assert odd.classes == ["0", "1", "7"]
    assert odd.log_loss is None
    assert any("outside the model's classes: 7" in note for note in odd.notes)


def test_regression_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(100, 20, 5_000)
    predicted = truth + rng.normal(3, 10, 5_000)
    found = metrics.regression(truth, predicted)
    assert found.rmse == pytest.approx(np.sqrt(m.mean_squared_error(truth, predicted)), abs=TOL)
    assert found.mae == pytest.approx(m.mean_absolute_error(truth, predicted), abs=TOL)
    assert found.r2 == pytest.approx(m.r2_score(truth, predicted), abs=TOL)
    assert found.bias == pytest.approx(np.mean(predicted - truth), abs=TOL)
    constant = np.full(4, 2.0)
    assert metrics.regression(constant, constant).r2 == m.r2_score(constant, constant) == 1.0
    assert metrics.regression(constant, constant + 1).r2 == m.r2_score(constant, constant + 1) == 0.0


def test_weighted_auc_with_hard_weights_is_the_roc_auc_and_none_without_one_side() -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(2_000), 2)
    truth = (rng.random(2_000) < scores).astype(np.float64)
    assert metrics.weighted_auc(scores, truth, 1 - truth) == pytest.approx(m.roc_auc_score(truth, scores), abs=TOL)
    assert metrics.weighted_auc(scores, np.ones(2_000), np.zeros(2_000)) is None


def test_cbpe_of_hard_probabilities_is_the_realized_metric() -> None:
    # probabilities of 0 and 1 that are right: the expected confusion matrix is the confusion matrix
    truth = np.array([0, 1, 1, 0, 1, 0])
    predicted = np.array([0, 1, 0, 0, 1, 1])
    onehot = np.eye(2)[truth]
    found = metrics.estimate(np.eye(2)[predicted] * 0.6 + 0.2, onehot, predicted)
    assert found.accuracy == pytest.approx(m.accuracy_score(truth, predicted), abs=TOL)
    assert found.f1 == pytest.approx(m.f1_score(truth, predicted), abs=TOL)
    assert found.rows == 6
