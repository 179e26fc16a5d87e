"""The events the drift-check Lambda accepts, as pydantic models (an invalid event is refused naming the field).

- the EventBridge rule's input: ``{"model": NAME, "trigger": "schedule", "time": <event time>}``;
- a direct invoke: ``{"model": NAME, "window": {"start": ISO, "end": ISO}}`` or ``{"model": NAME, "window_hours": N}``;
- a raw scheduled event (EventBridge rule or Scheduler) with the request in ``detail`` (a JSON string from
  Scheduler): ``{"detail-type": "Scheduled Event", "time": ..., "detail": {"model": NAME}}``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.spec import ModelName


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> WindowIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class DriftCheckEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    trigger: Literal["schedule", "manual"] = "manual"
    time: AwareDatetime | None = Field(default=None, description="the schedule's fire time: the window ends here")
    window: WindowIn | None = None
    window_hours: Annotated[int, Field(ge=1, le=24 * 31)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap_scheduled_event(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "detail" not in data:
            return data
        detail = data["detail"]
        if isinstance(detail, str):
            try:
                detail = json.loads(detail) if detail.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"detail: not valid JSON ({exc.msg})") from exc
        if not isinstance(detail, dict):
            raise ValueError("detail: expected an object (or a JSON string of one) naming the model")
        if "model" not in detail:
            raise ValueError("detail.model: required in a scheduled event (set the rule's or schedule's input to name the model)")
        return {"trigger": "schedule", "time": data.get("time"), **detail}

    @model_validator(mode="after")
    def _one_window(self) -> DriftCheckEvent:
        if self.window is not None and (self.window_hours is not None or self.time is not None):
            raise ValueError("window: give either window, or time and/or window_hours, not both")
        return self


def parse_event(event: Any) -> DriftCheckEvent:
    """The event as a :class:`DriftCheckEvent`; raises InvalidInputError naming each wrong field."""
    try:
        return DriftCheckEvent.model_validate(event)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise InvalidInputError("invalid drift-check event: " + "; ".join(problems)) from exc
