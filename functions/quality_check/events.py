"""The events the quality-check Lambda accepts, as pydantic models (an invalid event is refused naming the field).

- the EventBridge rule's input: ``{"model": NAME, "trigger": "schedule", "time": <event time>}``;
- a direct invoke: ``{"model": NAME, "end": ISO, "window": "7d"}`` (both optional: now, and the spec's window);
- a raw scheduled event (EventBridge rule or Scheduler) with the request in ``detail``: its ``time`` ends the window.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from functions.drift_check.events import DriftCheckEvent
from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.quality_spec import Duration
from serverless_mlops.model.spec import ModelName


class QualityCheckEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    trigger: Literal["schedule", "manual"] = "manual"
    time: AwareDatetime | None = Field(default=None, description="the schedule's fire time: the window ends here")
    end: AwareDatetime | None = Field(default=None, description="a direct invoke's window end (default now)")
    window: Duration | None = Field(default=None, description="the window's length, e.g. 7d (default: the spec's quality.window)")

    @model_validator(mode="before")
    @classmethod
    def _unwrap_scheduled_event(cls, data: Any) -> Any:
        unwrap: Any = DriftCheckEvent._unwrap_scheduled_event  # one reading of EventBridge's envelopes, the drift check's
        return unwrap(data)

    @model_validator(mode="after")
    def _one_end(self) -> QualityCheckEvent:
        if self.time is not None and self.end is not None:
            raise ValueError("end: give either time (a schedule's) or end, not both")
        return self


def parse_event(event: Any) -> QualityCheckEvent:
    """The event as a :class:`QualityCheckEvent`; raises InvalidInputError naming each wrong field."""
    try:
        return QualityCheckEvent.model_validate(event)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise InvalidInputError("invalid quality-check event: " + "; ".join(problems)) from exc
