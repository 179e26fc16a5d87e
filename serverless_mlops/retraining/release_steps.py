"""The workflow's release-side steps (release Lambda, inference layer): register, request_approval, promote, reject,
notify.

No scikit-learn, pandas, skl2onnx or scipy here, not even transitively: this runs beside onnxruntime in the
inference layer (a test imports it in a fresh interpreter and checks ``sys.modules``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any, Literal

from serverless_mlops.errors import ConflictError, MlopsError, NotFoundError
from serverless_mlops.retraining import approvals, lock
from serverless_mlops.retraining.contract import (
    STATE_EVALUATE,
    STATE_NOTIFY_PROMOTED,
    STATE_NOTIFY_REJECTED,
    STATE_PREPARE,
    STATE_PROMOTE,
    STATE_REGISTER,
    STATE_REGISTER_REJECTED,
    STATE_REJECT,
    STATE_TRAIN,
    STATE_WAIT_FOR_APPROVAL,
    Outcome,
)
from serverless_mlops.retraining.gate import fmt_value
from serverless_mlops.retraining.runs import read_record
from serverless_mlops.retraining.state import Approval, Notification, Promotion, VersionInfo, WorkflowState
from serverless_mlops.store.lifecycle import Backends, lineage_of, register_record
from serverless_mlops.store.registry import PRODUCTION, STAGING

SUBJECT_MAX = 100
TIMEOUT_ERROR = "States.Timeout"


class NotificationConfigError(MlopsError):
    """The release function has no alert topic to publish to (MLOPS_ALERT_TOPIC_ARN)."""


def _by(execution_name: str) -> str:
    return f"retraining:{execution_name}"


def _topic(topic_arn: str | None, model: str) -> str:
    if not topic_arn:
        raise NotificationConfigError(f"model {model!r}: MLOPS_ALERT_TOPIC_ARN is not set, so the release function cannot notify anyone")
    return topic_arn


def _subject(text: str) -> str:
    """SNS subjects are ASCII, one line, at most 100 characters."""
    ascii_text = text.replace("→", "->").replace("≥", ">=").encode("ascii", "replace").decode().replace("\n", " ")
    return ascii_text if len(ascii_text) <= SUBJECT_MAX else ascii_text[: SUBJECT_MAX - 3] + "..."


def _publish(sns: Any, topic_arn: str, model: str, outcome: str, subject: str, body: dict[str, Any]) -> str:
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=subject,
        Message=json.dumps(body, allow_nan=False, default=str),
        MessageAttributes={
            "model": {"DataType": "String", "StringValue": model},
            "outcome": {"DataType": "String", "StringValue": outcome},
        },
    )
    return str(response.get("MessageId", ""))


def _trigger(state: WorkflowState) -> str:
    """The trigger with what its starter said (drift's finding, ``mlops retrain --reason``), for the version's description."""
    return f"{state.trigger}: {state.reason}" if state.reason else state.trigger


# -- register ---------------------------------------------------------------------------------------------------------
def register(state: WorkflowState, backends: Backends, *, execution_arn: str, execution_name: str) -> WorkflowState:
    """Register the candidate with full lineage: status "registered" if the gate passed, else "rejected" (kept, with
    the gate's reason, so what was tried and why stays in the registry). Idempotent on retry (same run id)."""
    data, candidate, evaluation = state.need_data(), state.need_candidate(), state.need_evaluation()
    record = read_record(backends.store.s3, candidate.record)
    recent = {"recent_rows": evaluation.recent.model_dump(mode="json")} if evaluation.recent is not None else {}
    lineage = lineage_of(record, trigger=state.trigger, execution_arn=execution_arn).model_copy(
        update={"data_uri": data.uri, "data_sha256": data.sha256, **recent}
    )
    status: Literal["registered", "rejected"] = "registered" if evaluation.passed else "rejected"
    entry = register_record(
        backends,
        record,
        candidate.artifact,
        candidate.profile,
        by=_by(execution_name),
        lineage=lineage,
        status=status,
        description=f"retraining ({_trigger(state)}): {evaluation.reason}",
    )
    return state.model_copy(update={"version": VersionInfo(number=entry.version, status=status)})


# -- approval ---------------------------------------------------------------------------------------------------------
def approval_message(state: WorkflowState, *, execution_arn: str) -> tuple[str, dict[str, Any]]:
    version, evaluation = state.need_version(), state.need_evaluation()
    model, number = state.model, version.number
    champion = evaluation.champion
    versus = f" vs v{champion.version} {fmt_value(champion.value)}" if champion and champion.value is not None else ""
    subject = _subject(f"Approve {model} v{number}? {evaluation.metric} {fmt_value(evaluation.candidate)}{versus}")
    body = {
        "type": "retraining_approval",
        "model": model,
        "version": number,
        "metric": evaluation.metric,
        "candidate": evaluation.candidate,
        "champion": champion.model_dump() if champion else None,
        "improvement": evaluation.improvement,
        "reason": evaluation.reason,
        "trigger": state.trigger,
        "execution": execution_arn,
        "approve": f"mlops approve {model} {number}",
        "reject": f"mlops reject {model} {number} --reason '...'",
        "how": f"v{number} is on alias staging. Approve to promote it to production: mlops approve {model} {number}. "
        f"Reject to keep production as it is: mlops reject {model} {number} --reason '...'",
    }
    return subject, body


def request_approval(
    state: WorkflowState, backends: Backends, sns: Any, topic_arn: str | None, *, token: str, execution_arn: str, execution_name: str
) -> WorkflowState:
    """Point staging at the version, store the task token (the retraining table's APPROVAL# item, which only the
    release function and approvers can read) and tell people how to decide."""
    version = state.need_version()
    if not token:
        raise MlopsError(f"model {state.model!r} version {version.number}: request_approval needs the task token")
    topic = _topic(topic_arn, state.model)
    backends.registry.set_alias(state.model, STAGING, version.number, by=_by(execution_name), reason="waiting for approval")
    approvals.put_pending(backends.workflow, state.model, version.number, token=token, execution_arn=execution_arn)
    subject, body = approval_message(state, execution_arn=execution_arn)
    _publish(sns, topic, state.model, "approval_requested", subject, body)
    return state


# -- promote / reject -------------------------------------------------------------------------------------------------
Releaser = Callable[[str, int, str], str]  # (model, version, reason) → the release execution's ARN


def promote(state: WorkflowState, backends: Backends, *, execution_name: str, releaser: Releaser | None = None) -> WorkflowState:
    """Move production to the version if it is still where Evaluate saw it (else ConflictError: nothing promoted); with
    the spec's ``retraining.promote_with: release``, start the release workflow for it instead (``releaser``)."""
    version, evaluation = state.need_version(), state.need_evaluation()
    champion = evaluation.champion
    expected = champion.alias_revision if champion else 0
    by = _by(execution_name)
    change = ""
    if champion and champion.value is not None:
        change = f"{evaluation.metric} {fmt_value(champion.value)} -> {fmt_value(evaluation.candidate)}"
    reason = f"retraining ({_trigger(state)}): {change or evaluation.reason}"
    if state.approval is not None and state.approval.approved:  # the alias history names who let it through
        reason += f"; approved by {state.approval.by}"
    spec = backends.registry.describe(state.model, version.number).spec
    if champion is not None and (spec.get("retraining") or {}).get("promote_with") == "release":
        if releaser is None:
            raise MlopsError(f"model {state.model!r}: retraining.promote_with is release, but MLOPS_RELEASE_STATE_MACHINE_ARN is not set")
        execution = releaser(state.model, version.number, reason)
        current = backends.registry.get_alias(state.model, PRODUCTION)
        promotion = Promotion(
            alias=PRODUCTION, from_version=champion.version, to_version=version.number, revision=current.revision, release=execution
        )
        return state.model_copy(update={"promotion": promotion})
    try:
        alias = backends.registry.promote(state.model, version.number, alias=PRODUCTION, expected_revision=expected, by=by, reason=reason)
    except ConflictError as exc:
        current = backends.registry.get_alias(state.model, PRODUCTION)
        last = current.history[-1] if current.history else None
        if not (current.version == version.number and last is not None and last.by == by and current.revision == expected + 1):
            raise ConflictError(
                f"model {state.model!r}: production moved to v{current.version} (revision {current.revision}) while v{version.number} "
                f"was evaluated against revision {expected}; v{version.number} was not promoted, retrain to compare with the new champion",
                current_revision=current.revision,
            ) from exc
        alias = current  # our own promotion, retried after it succeeded
    promotion = Promotion(
        alias=PRODUCTION,
        from_version=champion.version if champion else None,
        to_version=version.number,
        revision=alias.revision,
    )
    return state.model_copy(update={"promotion": promotion})


def reject(state: WorkflowState, backends: Backends, *, execution_name: str) -> WorkflowState:
    """Mark the version rejected (a person said no, or approval timed out); staging stays where it is."""
    version = state.need_version()
    approval = state.approval
    update: dict[str, Any] = {"version": VersionInfo(number=version.number, status="rejected")}
    if state.error is not None and state.error.error == TIMEOUT_ERROR:
        approval = Approval(approved=False, by="timeout", reason="approval timed out: nobody approved or rejected in time")
        update |= {"approval": approval, "error": None}
        # decided meanwhile (its token no longer works) or never stored: the version is rejected either way
        with contextlib.suppress(ConflictError, NotFoundError):
            approvals.decide(backends.workflow, state.model, version.number, "expired", by=_by(execution_name), reason=approval.reason)
    backends.registry.set_status(state.model, version.number, "rejected")
    return state.model_copy(update=update)


# -- notify -----------------------------------------------------------------------------------------------------------
def failed_state(state: WorkflowState) -> str:
    """The state that failed: the first whose result is missing from the document."""
    if state.data is None:
        return STATE_PREPARE
    if state.candidate is None:
        return STATE_TRAIN
    if state.evaluation is None:
        return STATE_EVALUATE
    passed = state.evaluation.passed
    if state.version is None:
        return STATE_REGISTER if passed else STATE_REGISTER_REJECTED
    if not passed:
        return STATE_NOTIFY_REJECTED
    if state.approval is not None and not state.approval.approved:
        return STATE_REJECT
    if state.evaluation.require_approval and state.approval is None:
        return STATE_WAIT_FOR_APPROVAL
    if state.promotion is None:
        return STATE_PROMOTE
    return STATE_NOTIFY_PROMOTED


def outcome_of(state: WorkflowState) -> Outcome:
    if state.error is not None and state.error.error != TIMEOUT_ERROR:
        return "failed"
    if state.promotion is not None:
        return "promoted"
    return "rejected"


def _rejection_reason(state: WorkflowState) -> str:
    approval = state.approval
    if approval is not None and not approval.approved:
        return approval.reason if approval.by == "timeout" else f"rejected by {approval.by}: {approval.reason}"
    if state.error is not None:  # approval timed out and no reject step turned it into an approval
        return "approval timed out: nobody approved or rejected in time"
    return state.evaluation.reason if state.evaluation else "not promoted"


def notification_message(state: WorkflowState, *, execution_arn: str) -> tuple[Outcome, str, dict[str, Any]]:
    """(outcome, subject, body) of the message that ends an execution."""
    outcome = outcome_of(state)
    evaluation, model = state.evaluation, state.model
    number = state.version.number if state.version else None
    champion = evaluation.champion if evaluation else None
    body: dict[str, Any] = {
        "type": "retraining",
        "outcome": outcome,
        "model": model,
        "version": number,
        "metric": evaluation.metric if evaluation else None,
        "candidate": evaluation.candidate if evaluation else None,
        "champion": champion.model_dump() if champion else None,
        "improvement": evaluation.improvement if evaluation else None,
        "reason": "",
        "trigger": state.trigger,
        "trigger_reason": state.reason or None,
        "execution": execution_arn,
    }
    if state.error is not None and outcome == "failed":
        error, where = state.error, failed_state(state)
        body |= {"failed_state": where, "error": {"type": error.error_type, "message": error.message}}
        body["reason"] = f"{where} failed: {error.error_type}: {error.message}"
        subject = f"Retraining {model} failed at {where}: {error.error_type}"
    elif evaluation is not None and outcome == "promoted":
        if champion is None:
            change = f"{evaluation.metric} {fmt_value(evaluation.candidate)} (first production version)"
        elif champion.value is None:
            change = f"{evaluation.metric} {fmt_value(evaluation.candidate)} (v{champion.version} could not be scored)"
        else:
            moved = f"v{champion.version} -> v{number}"
            change = f"{evaluation.metric} {fmt_value(champion.value)} -> {fmt_value(evaluation.candidate)} ({moved})"
        approved = f"; approved by {state.approval.by}" if state.approval and state.approval.approved else ""
        body |= {"reason": f"{evaluation.reason}{approved}", "change": change}
        subject = f"Retraining {model}: v{number} promoted, {change}"
        if state.promotion is not None and state.promotion.release:  # retraining.promote_with: release
            body["release"] = state.promotion.release
            subject = f"Retraining {model}: v{number} handed to the release workflow, {change}"
    else:
        body["reason"] = _rejection_reason(state)
        subject = (f"Retraining {model}: v{number} not promoted" if number else f"Retraining {model}: not promoted") + f", {body['reason']}"
    return outcome, _subject(subject), body


def notify(state: WorkflowState, backends: Backends, sns: Any, topic_arn: str | None, *, execution_arn: str) -> WorkflowState:
    """Release the lock (only if this execution holds it), then publish the outcome on the alert topic."""
    lock.release(backends.workflow, state.model, execution_arn)
    topic = _topic(topic_arn, state.model)
    outcome, subject, body = notification_message(state, execution_arn=execution_arn)
    message_id = _publish(sns, topic, state.model, outcome, subject, body)
    return state.model_copy(update={"notification": Notification(outcome=outcome, message_id=message_id, subject=subject)})
