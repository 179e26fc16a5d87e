"""Start a retraining execution and answer a pending approval: what ``mlops retrain|approve|reject`` call.

``start_retraining`` names the execution ``{model}-{trigger}-{yyyymmddThhmmss}`` (at most 80 characters), so a
repeated start within the same second returns the running execution instead of starting a second one
(:func:`fit_execution_name` and :func:`start_named` are that naming and that idempotent start, for any starter).
``approve`` / ``reject`` claim the pending decision in the registry first (a conditional write: a second decision
is refused), then send the task token back with ``send_task_success``; the workflow continues from WaitForApproval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, get_args

from serverless_mlops.drift.result import DriftResult
from serverless_mlops.errors import ConflictError, MlopsError
from serverless_mlops.retraining.approvals import ApprovalRecord, ApprovalState, decide, describe_decision, get_approval
from serverless_mlops.retraining.contract import Trigger
from serverless_mlops.store.capture_format import parse_timestamp
from serverless_mlops.store.lifecycle import Backends

EXECUTION_NAME_MAX = 80
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class ApprovalExpiredError(MlopsError):
    """The execution no longer waits for this decision (approval timed out, or the execution ended)."""


def fit_execution_name(model: str, suffix: str) -> str:
    """``{model}-{suffix}``, the model part made safe and shortened so the name fits Step Functions' 80 characters."""
    suffix = f"-{suffix}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", model)[: EXECUTION_NAME_MAX - len(suffix)] + suffix


def execution_name(model: str, trigger: str, now: datetime | None = None) -> str:
    """``{model}-{trigger}-{yyyymmddThhmmss}``, the model part shortened so the name fits Step Functions' 80."""
    return fit_execution_name(model, f"{trigger}-{(now or datetime.now(UTC)):%Y%m%dT%H%M%S}")


def start_named(sfn: Any, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
    """Start an execution called ``name``; returns its ARN, the existing one's if the name is taken (idempotent by name)."""
    try:
        response = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    except sfn.exceptions.ExecutionAlreadyExists:
        return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
    return str(response["executionArn"])


def start_retraining(
    sfn: Any,
    state_machine_arn: str,
    model: str,
    *,
    trigger: str = "manual",
    reason: str = "",
    requested_by: str = "",
    now: datetime | None = None,
) -> str:
    """Start the retraining workflow for ``model``; returns the execution ARN (the existing one if the name is taken)."""
    if not _MODEL_NAME.match(model):
        raise MlopsError(f"invalid model name {model!r}: expected lower-case letters, digits and '-', starting with a letter")
    if trigger not in get_args(Trigger):
        raise MlopsError(f"invalid trigger {trigger!r}: expected one of {', '.join(get_args(Trigger))}")
    name = execution_name(model, trigger, now)
    payload: dict[str, str] = {"model": model, "trigger": trigger}
    if reason:
        payload["reason"] = reason
    if requested_by:
        payload["requested_by"] = requested_by
    try:
        return start_named(sfn, state_machine_arn, name, payload)
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise MlopsError(f"retraining state machine {state_machine_arn} does not exist: deploy the stack or pass --state-machine") from exc


def _answer(backends: Backends, sfn: Any, model: str, version: int, *, approved: bool, by: str, reason: str) -> ApprovalRecord:
    if not by:
        raise MlopsError(f"model {model!r} version {version}: say who decides (by)")
    pending = get_approval(backends.workflow, model, version)  # NotFoundError names model and version
    if pending.state != "pending":
        raise ConflictError(describe_decision(pending))
    state: ApprovalState = "approved" if approved else "rejected"
    decided = decide(backends.workflow, model, version, state, by=by, reason=reason)
    output = json.dumps({"approved": approved, "by": by, "reason": reason})
    try:
        sfn.send_task_success(taskToken=pending.token, output=output)
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.InvalidToken, sfn.exceptions.TaskDoesNotExist) as exc:
        decide(backends.workflow, model, version, "expired", by=by, reason=f"{state} after the request expired", expected=state)
        raise ApprovalExpiredError(
            f"model {model!r} version {version}: the approval request expired (execution {pending.execution_arn} no longer waits); "
            "start a new retraining to try again"
        ) from exc
    except BaseException:
        decide(backends.workflow, model, version, "pending", by="", reason="", expected=state)  # let the decision be retried
        raise
    return decided


def approve(backends: Backends, sfn: Any, model: str, version: int, *, by: str, reason: str = "") -> ApprovalRecord:
    """Approve the pending version: the waiting execution promotes it to production."""
    return _answer(backends, sfn, model, version, approved=True, by=by, reason=reason)


def reject(backends: Backends, sfn: Any, model: str, version: int, *, by: str, reason: str) -> ApprovalRecord:
    """Reject the pending version: the waiting execution marks it rejected; production stays as it is."""
    if not reason.strip():
        raise MlopsError(f"model {model!r} version {version}: a rejection needs a reason (--reason)")
    return _answer(backends, sfn, model, version, approved=False, by=by, reason=reason)


REASON_FEATURES = 3  # drifted features named in the reason a retraining starts with


def drift_execution_name(model: str, window_end: str | datetime) -> str:
    """``{model}-drift-{yyyymmddThhmm}`` of the window's end, named as every retraining start is (made safe and
    shortened to Step Functions' 80 characters)."""
    end = parse_timestamp(window_end) if isinstance(window_end, str) else window_end
    return fit_execution_name(model, f"drift-{end:%Y%m%dT%H%M}")


def start_for_drift(sfn: Any, state_machine_arn: str, result: DriftResult, report_uri: str) -> str:
    """Start the retraining workflow for a drift check's verdict, once per model and window; returns the execution ARN
    (an existing one on retry). The drift-check function hands it to the drift service (``Notifier.retrain``), so
    drift never imports retraining."""
    if result.window is None:
        raise ValueError("retraining needs a window")
    name = drift_execution_name(result.model, result.window.end)
    # the reason travels into the version's description, the alias history and the notification: name the first
    # few features (the report has them all), so one line stays readable with 30 drifted features
    names = [f.name for f in result.drifted()]
    shown = ", ".join(names[:REASON_FEATURES]) + (f" and {len(names) - REASON_FEATURES} more" if len(names) > REASON_FEATURES else "")
    reason = (
        f"dataset drift: {result.drifted_features} of {result.checked_features} features drifted "
        f"(share {result.drifted_share:.2f} >= {result.drift_share}): {shown}"
    )
    payload = {"model": result.model, "trigger": "drift", "reason": reason, "report": report_uri}
    return start_named(sfn, state_machine_arn, name, payload)
