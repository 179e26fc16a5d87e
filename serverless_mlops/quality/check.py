"""The quality verdict of one window: realized metrics per version, CBPE estimates, and the spec's thresholds.

Per version that served predictions in the window:

- fewer than ``quality.min_labels`` joined labels: ``insufficient_labels`` — metrics are still shown, never an alert;
- else each realized metric is held to ``quality.floors`` (a minimum; a maximum for log_loss, ece, rmse, mae and
  bias) and ``quality.max_drop`` (how far below the training holdout's value it may fall; above, for errors);
  any crossing is a breach.

Classifiers also get CBPE estimates (:func:`serverless_mlops.quality.metrics.estimate`) over every prediction of the
window, and over the labelled rows alone; the difference of the latter from realized is the estimation error. When it
exceeds what sampling explains (``max(0.03, 3 standard errors)`` of the realized accuracy), the version's
``estimate_reliable`` is false and a note says the labels disagree with the probabilities.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from serverless_mlops.drift.result import Window
from serverless_mlops.model.calibration import calibrate
from serverless_mlops.model.quality_spec import Quality
from serverless_mlops.quality import metrics
from serverless_mlops.quality.joined import Joined, VersionRows
from serverless_mlops.quality.result import (
    CBPE_ASSUMPTION,
    ESTIMATE_OFF,
    NO_CALIBRATION,
    NO_PROBABILITIES,
    NOT_ESTIMATED,
    Breach,
    CalibrationPoint,
    QualityResult,
    Status,
    VersionQuality,
)

MIN_ESTIMATE_GAP = 0.03  # below this an estimate is "close enough" whatever the sample size


def _breaches(values: Mapping[str, float | None], holdout: Mapping[str, float], config: Quality) -> list[Breach]:
    found: list[Breach] = []
    for metric, bound in config.floors.items():
        value = values.get(metric.value)
        if value is not None and (value < bound if metric.higher_is_better else value > bound):
            found.append(Breach(metric=metric.value, value=value, rule="floor", threshold=bound))
    for metric, drop in config.max_drop.items():
        value, reference = values.get(metric.value), holdout.get(metric.value)
        if value is None or reference is None:
            continue
        bound = reference - drop if metric.higher_is_better else reference + drop
        if value < bound if metric.higher_is_better else value > bound:
            found.append(Breach(metric=metric.value, value=value, rule="max_drop", threshold=bound, holdout=reference))
    return found


def _reliable(estimated: float, realized: float, rows: int) -> bool:
    error = math.sqrt(max(realized * (1.0 - realized), 1e-12) / max(rows, 1))
    return abs(estimated - realized) <= max(MIN_ESTIMATE_GAP, 3.0 * error)


def _difference(estimated: float | None, realized: float | None) -> float | None:
    return None if estimated is None or realized is None else estimated - realized


def _round(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None or not math.isfinite(v) else float(v) for k, v in values.items()}


def check_version(
    rows: VersionRows,
    *,
    classes: list[Any] | None,
    calibration: Mapping[str, Any] | None,
    holdout: Mapping[str, float],
    config: Quality,
) -> VersionQuality:
    """One version's verdict (``classes`` None: a regressor)."""
    labelled = rows.labelled
    count = len(labelled.truth)
    notes: list[str] = []
    update: dict[str, Any] = {}
    estimated: dict[str, float | None] = {}
    estimated_labelled: dict[str, float | None] = {}
    error: dict[str, float | None] = {}
    reliable: bool | None = None
    if classes is None:
        truth = np.asarray(labelled.truth, dtype=np.float64)
        predicted = np.asarray(labelled.predicted, dtype=np.float64)
        realized = metrics.regression(truth, predicted).values() if count else {}
        notes.append(NOT_ESTIMATED)
    else:
        width = len(classes)
        probabilities = np.array(labelled.probabilities, dtype=np.float64) if len(labelled.probabilities) == count and count else None
        found = metrics.classification(labelled.truth, labelled.predicted, probabilities, classes)
        realized = found.values() if count else {}
        notes.extend(found.notes)
        update = {
            "classes": found.classes,
            "confusion_matrix": found.confusion_matrix,
            "calibration": [CalibrationPoint(**vars(b)) for b in found.calibration],
        }
        if sum(block.shape[0] for block in rows.probabilities) != rows.predictions:
            notes.append(NO_PROBABILITIES)
        elif calibration is None:
            notes.append(NO_CALIBRATION)
        else:
            calibrating = functools.partial(calibrate, calibration)
            estimated = metrics.estimate_calibrating(rows.probabilities, rows.codes, calibrating).values()
            if probabilities is not None:
                codes = np.asarray(
                    [found.classes.index(str(p)) if str(p) in found.classes[:width] else -1 for p in labelled.predicted], dtype=np.int64
                )
                codes[codes < 0] = probabilities[codes < 0].argmax(axis=1)
                estimated_labelled = metrics.estimate(probabilities, calibrate(calibration, probabilities), codes).values()
                error = {k: _difference(v, realized.get(k)) for k, v in estimated_labelled.items()}
                if count >= config.min_labels:
                    reliable = _reliable(float(estimated_labelled["accuracy"] or 0.0), found.accuracy, count)
                    if not reliable:
                        notes.append(
                            ESTIMATE_OFF.format(estimated=estimated_labelled["accuracy"] or 0.0, realized=found.accuracy, rows=count)
                        )
    enough = count >= config.min_labels
    if not enough:
        notes.append(f"{count} labelled rows, at least {config.min_labels} needed (quality.min_labels) for a verdict")
    breaches = _breaches(realized, holdout, config) if enough else []
    return VersionQuality(
        version=rows.version,
        status="insufficient_labels" if not enough else "breach" if breaches else "ok",
        predictions=rows.predictions,
        labelled=count,
        coverage=count / rows.predictions if rows.predictions else 0.0,
        realized=_round(realized),
        estimated=_round(estimated),
        estimated_labelled=_round(estimated_labelled),
        estimation_error=_round(error),
        estimate_reliable=reliable,
        holdout=dict(holdout),
        breaches=breaches,
        notes=notes,
        **update,
    )


def overall(versions: list[VersionQuality]) -> Status:
    if not versions:
        return "no_predictions"
    statuses = {v.status for v in versions}
    return "breach" if "breach" in statuses else "ok" if "ok" in statuses else "insufficient_labels"


def check_quality(
    joined: Joined,
    *,
    model: str,
    task: str,
    window: Window,
    generated_at: str,
    config: Quality,
    classes: list[Any] | None,
    calibrations: Mapping[int, Mapping[str, Any] | None],
    holdouts: Mapping[int, Mapping[str, float]],
) -> QualityResult:
    """The result for every version in ``joined`` (``calibrations``/``holdouts``: per version, from its profile and
    registry entry)."""
    config.check_task(classes is not None)
    versions = [
        check_version(
            joined.versions[number],
            classes=classes,
            calibration=calibrations.get(number),
            holdout=holdouts.get(number, {}),
            config=config,
        )
        for number in sorted(joined.versions)
    ]
    estimated = classes is not None and any(v.estimated for v in versions)
    return QualityResult(
        model=model,
        task=task,
        window=window,
        generated_at=generated_at,
        status=overall(versions),
        label_delay=config.label_delay,
        min_labels=config.min_labels,
        estimation="cbpe" if estimated else "not_estimated",
        assumption=CBPE_ASSUMPTION if classes is not None else NOT_ESTIMATED,
        probabilities=joined.probabilities,
        join=vars(joined.counts).copy(),
        versions=versions,
        sources=len(joined.sources),
        skipped_sources=[{"source": s.source, "error": s.error} for s in joined.skipped],
    )
