"""The quality check's result: per version, realized metrics (labelled rows), CBPE estimates, breaches; JSON as is."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from serverless_mlops.drift.result import Window

VersionStatus = Literal["ok", "breach", "insufficient_labels"]
Status = Literal["ok", "breach", "insufficient_labels", "no_predictions"]

CBPE_ASSUMPTION = (
    "Estimated metrics (CBPE) come from the model's probabilities, calibrated on the training holdout: they hold while "
    "only the inputs move (covariate shift) and the relation between features and label stays as in training. Under "
    "concept shift (the same inputs now mean other labels) they are off; realized metrics from labels are the truth."
)
NOT_ESTIMATED = "not estimated: performance estimation before labels is implemented for classifiers (CBPE) only"
NO_PROBABILITIES = "not estimated: no probabilities (the captured rows hold none and no scorer was given)"
NO_CALIBRATION = "not estimated: this version was trained before calibration was stored with the model (retrain it)"
ESTIMATE_OFF = (
    "estimated accuracy {estimated:.3f} vs realized {realized:.3f} on the same {rows} labelled rows: the labels disagree with "
    "the calibrated probabilities (concept shift?); the estimate for the rows still unlabelled may be off as much"
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class CalibrationPoint(_Model):
    low: float
    high: float
    rows: int
    confidence: float | None
    accuracy: float | None


class Breach(_Model):
    metric: str
    value: float
    rule: Literal["floor", "max_drop"]
    threshold: float  # the bound the value crossed
    holdout: float | None = None  # the training holdout's value (max_drop)


class VersionQuality(_Model):
    version: int
    status: VersionStatus
    predictions: int
    labelled: int
    coverage: float  # labelled / predictions
    realized: dict[str, float | None]
    estimated: dict[str, float | None]  # CBPE over every prediction of the window
    estimated_labelled: dict[str, float | None]  # CBPE over the labelled rows only: compared with realized
    estimation_error: dict[str, float | None]  # estimated_labelled - realized
    estimate_reliable: bool | None = None  # None: too few labels to tell
    holdout: dict[str, float]
    classes: list[str] = []
    confusion_matrix: list[list[int]] = []
    calibration: list[CalibrationPoint] = []
    breaches: list[Breach] = []
    notes: list[str] = []


class QualityResult(_Model):
    model: str
    task: str
    window: Window
    generated_at: str
    status: Status
    label_delay: str
    min_labels: int
    estimation: Literal["cbpe", "not_estimated"]
    assumption: str
    probabilities: str  # where classifier probabilities came from: captured, recomputed, mixed, none
    join: dict[str, int]
    versions: list[VersionQuality]
    sources: int
    skipped_sources: list[dict[str, str]] = []
    label_objects: int = 0
    skipped_label_objects: list[dict[str, str]] = []

    def breaches(self) -> list[tuple[int, Breach]]:
        return [(v.version, b) for v in self.versions for b in v.breaches]

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window": self.window.model_dump(),
            "status": self.status,
            "versions": [
                {
                    "version": v.version,
                    "status": v.status,
                    "predictions": v.predictions,
                    "labelled": v.labelled,
                    "coverage": round(v.coverage, 4),
                    "realized": v.realized,
                    "estimated": v.estimated,
                    "estimation_error": v.estimation_error,
                    "breaches": [b.model_dump() for b in v.breaches],
                }
                for v in self.versions
            ],
            "join": self.join,
        }
