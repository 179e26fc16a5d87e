"""The release workflow document: what every release task reads and returns, as pydantic models.

The execution starts with ``{"model", "version"}`` (+ ``strategy``, ``bake_seconds`` overrides, ``shadow_first_seconds``,
``requested_by``, ``reason``); Begin adds ``release_id``, ``champion``, ``plan`` and ``phase`` (``shadow`` when the
release starts with a shadow phase: SetShadow sets ``shadow_phase``, whose ``bake_seconds`` the ShadowBake Wait reads,
and CheckShadow appends a check with ``phase: shadow`` and turns ``phase`` to ``canary`` when it passes); SetWeight
moves ``position`` and sets ``current`` (the Wait state's SecondsPath is ``$.current.bake_seconds``); CheckGuards
appends to ``checks`` and sets ``decision`` (the Choice reads it); Promote/Rollback set ``outcome``; Notify adds
``notification``; a Catch puts ``error``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serverless_mlops.errors import MlopsError
from serverless_mlops.model.release_spec import Guards
from serverless_mlops.release.contract import Outcome
from serverless_mlops.release.guards import Decision, VersionCounts
from serverless_mlops.release.shadow_guards import AgreementCounts

Phase = Literal["shadow", "canary"]


class ReleaseStateError(MlopsError):
    """A release task received a document (or event) it cannot read; the message names the field."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PlanStep(_Part):
    weight: float
    bake_seconds: int


class ShadowPlan(_Part):
    """The shadow phase a release starts with (``--shadow-first``): how long, on what share of production's requests,
    and the agreement it needs (the spec's ``release.shadow``)."""

    bake_seconds: int
    sample: float
    min_agreement: float


class Plan(_Part):
    strategy: str
    steps: list[PlanStep]
    guards: Guards
    low_traffic: Literal["rollback", "promote"]
    max_extensions: int
    shadow: ShadowPlan | None = None


class ShadowRun(_Part):
    """The shadow phase under way: this bake's seconds (the ShadowBake Wait's SecondsPath; 0 when SetShadow found the
    release aborted) and when the shadow was set (CheckShadow's metric window starts there)."""

    bake_seconds: int
    started_at: float


class GuardCheck(_Part):
    at: float
    weight: float
    decision: Decision
    reason: str
    candidate: VersionCounts
    champion: VersionCounts
    phase: Phase = "canary"  # shadow: the candidate scored in the background (weight 0), agreement says how it compared
    agreement: AgreementCounts | None = None


class TaskError(_Part):
    """What a Catch put at ``$.error`` (the Cause of a Lambda error is its JSON error document)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    error: str = Field(default="", alias="Error")
    cause: str = Field(default="", alias="Cause")

    @property
    def message(self) -> str:
        try:
            document = json.loads(self.cause)
        except ValueError:
            return self.cause
        if isinstance(document, dict) and isinstance(document.get("errorMessage"), str):
            return f"{document.get('errorType', self.error)}: {document['errorMessage']}"
        return self.cause


class Notification(_Part):
    outcome: Outcome
    message_id: str
    subject: str


class ReleaseState(_Part):
    model: str = Field(min_length=1)
    version: int = Field(ge=1)
    strategy: str | None = None  # overrides the spec's release.strategy
    bake_seconds: int | None = Field(default=None, ge=0)  # overrides every step's bake (tests and demos: 0-1 s)
    shadow_first_seconds: int | None = Field(default=None, ge=0)  # --shadow-first: a shadow phase this long comes first
    requested_by: str = ""
    reason: str = ""
    release_id: str | None = None
    champion: int | None = None
    plan: Plan | None = None
    phase: Phase | None = None
    shadow_phase: ShadowRun | None = None
    position: int = -1
    current: PlanStep | None = None
    step_started_at: float | None = None
    extensions: int = 0
    aborted: str | None = None  # SetWeight found the release aborted before it set the canary: who and why
    decision: Decision | None = None
    decision_reason: str = ""
    checks: list[GuardCheck] = Field(default_factory=list)
    outcome: Outcome | None = None
    outcome_reason: str = ""
    revision: int | None = None
    error: TaskError | None = None
    notification: Notification | None = None

    def need_plan(self) -> Plan:
        if self.plan is None or self.release_id is None:
            raise ReleaseStateError(f"model {self.model!r}: the release document has no plan (Begin did not run)")
        return self.plan

    def need_current(self) -> PlanStep:
        if self.current is None or self.step_started_at is None:
            raise ReleaseStateError(f"model {self.model!r}: the release document has no current step (SetWeight did not run)")
        return self.current

    @property
    def last_step(self) -> bool:
        return self.plan is not None and self.position >= len(self.plan.steps) - 1

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class ReleaseTask(_Part):
    step: str
    state: ReleaseState
    execution: str
    execution_name: str


def parse_release_event(event: Any, steps: tuple[str, ...]) -> ReleaseTask:
    """Validate a task event; an unknown step is a ValueError naming it, a bad document a ReleaseStateError."""
    if not isinstance(event, dict):
        raise ReleaseStateError(f"expected a task event object, got {type(event).__name__}")
    step = event.get("step")
    if step not in steps:
        raise ValueError(f"unknown step {step!r}: this function runs {', '.join(steps)}")
    try:
        return ReleaseTask.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ReleaseStateError(f"invalid {step} task event: {problems}") from exc
