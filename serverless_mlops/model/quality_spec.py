"""The spec's ``quality:`` section: how the quality check joins ground truth to predictions and when it alerts.

::

    quality:
      schedule: rate(1 day)        # EventBridge expression; omitted: the drift check's schedule
      window: 7d                   # predictions checked per run: [now - window, now)
      label_delay: 3d              # a label joins a prediction made at most this long before the label's event time
      min_labels: 200              # fewer labelled rows in a version: "insufficient_labels", never an alert
      floors: {accuracy: 0.8}      # absolute bounds on realized metrics (a ceiling for the error metrics)
      max_drop: {accuracy: 0.05}   # how far a realized metric may fall below the version's training holdout
      retrain_on_quality: false    # a breach also starts the retraining workflow

Durations are a whole number of minutes, hours or days (``30m``, ``12h``, ``7d``). A floor or drop for a metric the
model's task does not have is refused when the check runs (:meth:`Quality.check_task`), naming the field.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from serverless_mlops.errors import SpecError
from serverless_mlops.model.schedule import ScheduleExpression

_DURATION = re.compile(r"^\s*(\d+)\s*(m|h|d)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` → a timedelta; anything else (or zero) is a ValueError saying what is expected."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"expected a positive duration such as '30m', '12h' or '7d', got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _duration(value: str) -> str:
    parse_duration(value)
    return value.strip()


Duration = Annotated[str, AfterValidator(_duration)]


class QualityMetric(StrEnum):
    ACCURACY = "accuracy"
    F1 = "f1"
    ROC_AUC = "roc_auc"
    LOG_LOSS = "log_loss"
    ECE = "ece"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"
    BIAS = "bias"

    @property
    def higher_is_better(self) -> bool:
        return self in (QualityMetric.ACCURACY, QualityMetric.F1, QualityMetric.ROC_AUC, QualityMetric.R2)

    @property
    def for_classification(self) -> bool:
        return self in CLASSIFICATION_METRICS


CLASSIFICATION_METRICS = frozenset(
    {QualityMetric.ACCURACY, QualityMetric.F1, QualityMetric.ROC_AUC, QualityMetric.LOG_LOSS, QualityMetric.ECE}
)


class Quality(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: ScheduleExpression | None = Field(default=None, description="EventBridge schedule expression; none: the drift check's")
    window: Duration = Field(default="7d", description="the predictions one check looks at, ending at the check's time")
    label_delay: Duration = Field(default="7d", description="how long after a prediction its label may arrive and still count")
    min_labels: Annotated[int, Field(ge=1)] = Field(default=200, description="below this, a version's verdict is insufficient_labels")
    floors: dict[QualityMetric, float] = Field(default_factory=dict, description="absolute bounds (ceilings for error metrics)")
    max_drop: dict[QualityMetric, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="largest allowed fall below the training holdout's value (rise, for errors)"
    )
    retrain_on_quality: bool = False

    @property
    def window_delta(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def label_delay_delta(self) -> timedelta:
        return parse_duration(self.label_delay)

    def check_task(self, classification: bool) -> None:
        """Raise SpecError naming ``quality.floors.X`` / ``quality.max_drop.X`` for a metric the task has not."""
        for section in ("floors", "max_drop"):
            for metric in getattr(self, section):
                if metric.for_classification != classification:
                    kind = "classifier" if classification else "regressor"
                    raise SpecError(f"quality.{section}.{metric.value}: a {kind} has no such metric")
