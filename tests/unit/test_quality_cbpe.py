"""CBPE on a seeded data set with a known logistic relation: within 0.03 of realized accuracy under covariate shift
(20,000 rows: the realized accuracy's own sampling error is about 0.003), off under concept shift, and the verdict
says so. Calibration is fitted on a holdout the way training fits it (serverless_mlops.model.calibration)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from serverless_mlops.model.calibration import calibrate, fit_calibration
from serverless_mlops.model.quality_spec import Quality
from serverless_mlops.quality import metrics
from serverless_mlops.quality.check import check_version
from serverless_mlops.quality.joined import Labelled, VersionRows
from serverless_mlops.quality.result import ESTIMATE_OFF

COEF = np.array([1.5, -1.0, 0.5])
ROWS = 20_000


def _labels(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    return (rng.random(len(x)) < 1 / (1 + np.exp(-(x @ COEF)))).astype(int)


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, dict, np.random.Generator]:
    rng = np.random.default_rng(18)
    x = rng.normal(size=(15_000, 3))
    y = _labels(rng, x)
    # a model that is a little off (no intercept, one feature's weight shrunk), so calibration has work to do
    model = LogisticRegression(C=0.01).fit(x[:10_000] * [1, 1, 0.3], y[:10_000])
    holdout = model.predict_proba(x[10_000:] * [1, 1, 0.3])
    calibration = fit_calibration(y[10_000:], holdout, [0, 1])
    return model, calibration, rng


def _shifted(rng: np.random.Generator) -> np.ndarray:
    """Covariate shift: a pool resampled towards large x0 (the relation P(y | x) is unchanged)."""
    pool = rng.normal(size=(200_000, 3))
    weights = np.exp(1.2 * pool[:, 0])
    return pool[rng.choice(len(pool), size=ROWS, replace=False, p=weights / weights.sum())]


def _estimate(model: LogisticRegression, calibration: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, metrics.Estimate]:
    raw = model.predict_proba(x * [1, 1, 0.3])
    predicted = raw.argmax(axis=1)
    return raw, predicted, metrics.estimate(raw, calibrate(calibration, raw), predicted)


def test_cbpe_estimates_accuracy_within_003_under_covariate_shift(fitted: tuple) -> None:
    model, calibration, rng = fitted
    x = _shifted(rng)
    y = _labels(rng, x)
    _, predicted, estimate = _estimate(model, calibration, x)
    realized = float(np.mean(predicted == y))
    assert abs(estimate.accuracy - realized) < 0.03
    # the shift moved accuracy, so a stale "training accuracy" would not have passed this test
    trained_on = rng.normal(size=(ROWS, 3))
    baseline = float(np.mean(model.predict(trained_on * [1, 1, 0.3]) == _labels(rng, trained_on)))
    assert abs(baseline - realized) > 0.03
    # without calibration the raw probabilities of this model are off by more
    uncalibrated = metrics.estimate(model.predict_proba(x * [1, 1, 0.3]), model.predict_proba(x * [1, 1, 0.3]), predicted)
    assert abs(uncalibrated.accuracy - realized) > abs(estimate.accuracy - realized)


def test_cbpe_is_off_under_concept_shift_and_the_verdict_says_so(fitted: tuple) -> None:
    model, calibration, rng = fitted
    x = _shifted(rng)
    y = _labels(rng, x)
    flipped = y.copy()
    flip = rng.random(ROWS) < 0.3
    flipped[flip] = 1 - flipped[flip]
    raw, predicted, estimate = _estimate(model, calibration, x)
    assert abs(estimate.accuracy - float(np.mean(predicted == flipped))) > 0.1

    def verdict(truth: np.ndarray) -> object:
        rows = VersionRows(
            version=3,
            predictions=ROWS,
            codes=[predicted],
            probabilities=[raw],
            labelled=Labelled(truth=list(truth[:5_000]), predicted=list(predicted[:5_000]), probabilities=list(raw[:5_000])),
        )
        return check_version(rows, classes=[0, 1], calibration=calibration, holdout={"accuracy": 0.8}, config=Quality(min_labels=200))

    honest, shifted = verdict(y), verdict(flipped)
    assert honest.estimate_reliable is True
    assert abs(honest.estimation_error["accuracy"]) < 0.03
    assert not any("concept shift" in note for note in honest.notes)
    assert shifted.estimate_reliable is False
    assert shifted.estimation_error["accuracy"] > 0.1
    off = ESTIMATE_OFF.split("{")[0]
    assert any(note.startswith(off) and "concept shift" in note for note in shifted.notes)
    assert shifted.estimated["accuracy"] == pytest.approx(estimate.accuracy)
