"""The workflow document: the state every retraining task reads and returns, as pydantic models.

Step Functions passes the document from task to task; each handler validates it (:class:`WorkflowState`), adds its
own key and returns the whole document (``model_dump(mode="json", exclude_none=True)``). It holds references and
numbers only, never data or model bytes, so it stays far below Step Functions' 256 KB limit.

Keys, in the order the workflow adds them: ``data`` (PrepareData), ``candidate`` (Train), ``evaluation`` (Evaluate),
``version`` (Register), ``approval`` (WaitForApproval, from ``send_task_success``), ``promotion`` (Promote),
``notification`` (Notify*), ``error`` (any Catch, Step Functions' ``{"Error", "Cause"}``). A start by a quality breach carries
``recent`` from the input on (:class:`RecentRows`).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serverless_mlops.errors import MlopsError
from serverless_mlops.retraining.contract import HOLDOUT_RECENT_PREFIX, Outcome, Step, Trigger
from serverless_mlops.store.artifacts import ArtifactRef


class WorkflowStateError(MlopsError):
    """A task received a workflow document (or event) it cannot read; the message names the field."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


PartT = TypeVar("PartT", bound=_Part)


class DataSnapshot(_Part):
    """``data``: the exact rows this run trains and evaluates on, content-addressed under snapshots/."""

    spec_uri: str
    uri: str
    sha256: str
    rows: int
    base_rows: int
    feedback_rows: int
    feedback_files: list[str] = Field(default_factory=list)
    lock_owner: str


class RecentRows(_Part):
    """``recent`` (the input of a start by a quality breach): the newest labelled rows of the breaching window, a CSV
    of the spec's features and target under ``holdout-recent/{model}/`` (:mod:`serverless_mlops.quality.recent_rows`).
    Evaluate scores the candidate and the champion on it besides the split holdout; it is never trained on."""

    uri: str = Field(pattern=rf"^s3://[^/]+/{HOLDOUT_RECENT_PREFIX}/[^/]+/.+\.csv$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=1)
    window: str = ""


class Candidate(_Part):
    """``candidate``: the trained run (its run.json) and its artifacts, already in the artifact store."""

    run_id: str
    record: str  # s3://B/runs/M/<execution name>/run.json
    artifact: ArtifactRef
    profile: ArtifactRef
    metrics: dict[str, float]
    parity: dict[str, Any]


class Champion(_Part):
    """The production version the candidate was compared with; ``value`` is None when it could not score the data."""

    version: int
    value: float | None = None
    alias_revision: int


class RecentEvaluation(_Part):
    """``evaluation.recent``: candidate and champion on the quality breach's newest labelled rows (what, how many, the
    metric of each, and the gate's verdict on them alone)."""

    uri: str
    sha256: str
    rows: int
    window: str = ""
    candidate: float
    champion: float | None = None
    improvement: float | None = None
    passed: bool
    reason: str


class Evaluation(_Part):
    """``evaluation``: the gate's decision, computed in Python, with a reason a person can read. ``candidate``,
    ``champion`` and ``improvement`` are the split holdout's; ``recent``, when the start named recent labelled rows,
    their own (``passed`` then follows :func:`serverless_mlops.retraining.gate.decide_with_recent`)."""

    metric: str
    higher_is_better: bool
    candidate: float
    champion: Champion | None = None
    min_improvement: float
    floor: float | None = None
    improvement: float | None = None
    holdout_rows: int
    parity: dict[str, Any]
    passed: bool
    reason: str
    require_approval: bool
    recent: RecentEvaluation | None = None


class VersionInfo(_Part):
    """``version``: the registry version the candidate became."""

    number: int
    status: Literal["registered", "rejected"]


class Approval(_Part):
    """``approval``: what a person decided (``mlops approve`` / ``mlops reject``), or the timeout."""

    approved: bool
    by: str = ""
    reason: str = ""


class Promotion(_Part):
    """``promotion``: the production alias move."""

    alias: str
    from_version: int | None = None
    to_version: int
    revision: int
    release: str | None = None  # retraining.promote_with: release: the release execution that rolls it out instead


class Notification(_Part):
    """``notification``: the SNS message that reported the outcome."""

    outcome: Outcome
    message_id: str
    subject: str


class TaskError(_Part):
    """``error``: what a Catch put at ``$.error`` (``Cause`` of a Lambda error is its JSON error document)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    error: str = Field(default="", alias="Error")
    cause: str = Field(default="", alias="Cause")

    def _from_cause(self, key: str, default: str) -> str:
        """``key`` of the Cause when it is a Lambda error document (JSON with that string), else ``default``."""
        try:
            document = json.loads(self.cause)
        except ValueError:
            return default
        value = document.get(key) if isinstance(document, dict) else None
        return value if isinstance(value, str) else default

    @property
    def message(self) -> str:
        """The error's message: ``errorMessage`` from a Lambda error's Cause, else the Cause itself."""
        return self._from_cause("errorMessage", self.cause)

    @property
    def error_type(self) -> str:
        """The exception class for a Lambda error (``errorType``), else ``Error`` (e.g. ``States.Timeout``)."""
        return self._from_cause("errorType", self.error)


class WorkflowState(BaseModel):
    """The workflow document. Unknown top-level keys are kept, so a task never drops what another state added."""

    model_config = ConfigDict(frozen=True, extra="allow")

    model: str = Field(min_length=1)
    trigger: Trigger = "manual"
    reason: str | None = None
    report: str | None = None
    requested_by: str | None = None
    recent: RecentRows | None = None
    data: DataSnapshot | None = None
    candidate: Candidate | None = None
    evaluation: Evaluation | None = None
    version: VersionInfo | None = None
    approval: Approval | None = None
    promotion: Promotion | None = None
    notification: Notification | None = None
    error: TaskError | None = None

    @model_validator(mode="after")
    def _recent_rows_of_this_model(self) -> WorkflowState:
        if self.recent is not None and not self.recent.uri.split("/", 3)[3].startswith(f"{HOLDOUT_RECENT_PREFIX}/{self.model}/"):
            raise ValueError(f"recent.uri: {self.recent.uri} is not under {HOLDOUT_RECENT_PREFIX}/{self.model}/")
        return self

    def document(self) -> dict[str, Any]:
        """What a task returns to Step Functions."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def need_data(self) -> DataSnapshot:
        return self._need(self.data, "data", "PrepareData")

    def need_candidate(self) -> Candidate:
        return self._need(self.candidate, "candidate", "Train")

    def need_evaluation(self) -> Evaluation:
        return self._need(self.evaluation, "evaluation", "Evaluate")

    def need_version(self) -> VersionInfo:
        return self._need(self.version, "version", "Register")

    def _need(self, value: PartT | None, key: str, state: str) -> PartT:
        if value is None:
            raise WorkflowStateError(f"model {self.model!r}: the workflow document has no {key!r} ({state} has not run)")
        return value


class TaskEvent(BaseModel):
    """What every Lambda task receives: ``{"step", "state", "execution", "execution_name"}`` (+ ``token``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    step: Step
    state: WorkflowState
    execution: str = Field(min_length=1, description="$$.Execution.Id: the execution ARN")
    execution_name: str = Field(min_length=1, description="$$.Execution.Name")
    token: str | None = Field(default=None, description="$$.Task.Token (request_approval only)")


def parse_task_event(event: Any, steps: tuple[str, ...]) -> TaskEvent:
    """Validate a task event; an unknown step is a ValueError naming it, a bad document a WorkflowStateError."""
    if not isinstance(event, dict):
        raise WorkflowStateError(f"expected a task event object, got {type(event).__name__}")
    step = event.get("step")
    if step not in steps:
        raise ValueError(f"unknown step {step!r}: this function runs {', '.join(steps)}")
    try:
        return TaskEvent.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise WorkflowStateError(f"invalid {step} task event: {problems}") from exc
