"""The release workflow's steps (functions/release_workflow: begin, set_weight, promote, rollback, notify;
functions/release_guards: check_guards). Each takes the document and returns it with its part added. The shadow
phase's steps (set_shadow, check_shadow) are serverless_mlops/release/shadow_phase.py.

Traffic only ever moves through the alias's canary (serverless_mlops/store/registry.py): SetWeight sets it, Promote
moves the alias to the candidate and clears it in one write, Rollback (and CheckGuards, the moment a guard is
breached) clears it in one conditional write. The champion stays the alias's version, and cached in every inference
environment, until the promotion, so a rollback only changes where the canary's share of requests goes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from serverless_mlops.errors import ConflictError, MlopsError, NotFoundError, ReleaseInProgressError
from serverless_mlops.model.release_spec import ReleaseSpec, plan_steps
from serverless_mlops.release import lock
from serverless_mlops.release.contract import NOTIFICATION_KIND, Outcome
from serverless_mlops.release.guards import Observation, decide
from serverless_mlops.release.metrics import GuardMetricsReader
from serverless_mlops.release.state import GuardCheck, Notification, Plan, PlanStep, ReleaseState, ShadowPlan
from serverless_mlops.serving.guard_metrics import CANARY
from serverless_mlops.serving.guard_metrics import PRODUCTION as PRODUCTION_ROLE
from serverless_mlops.store.registry import PRODUCTION, Alias, Registry

SUBJECT_MAX = 100


class ReleaseRefused(MlopsError):
    """The release cannot start: the version or its spec's release section says no; the message says why."""


class ReleaseNotificationError(MlopsError):
    """The release function has no topic to publish to (MLOPS_ALERT_TOPIC_ARN)."""


def by_release(release_id: str) -> str:
    """Who the alias history names for a change this release made."""
    return f"release:{release_id}"


@dataclass(frozen=True)
class Limits:
    """What the deployed machine allows: its lock TTL (the machine's timeout) and the longest plan it can run."""

    lock_ttl_seconds: float
    max_plan_seconds: float


# -- begin ------------------------------------------------------------------------------------------------------------
def resolve_plan(
    spec_document: dict[str, Any],
    *,
    model: str,
    version: int,
    strategy: str | None,
    bake_seconds: int | None,
    shadow_seconds: int | None = None,
) -> Plan:
    """The plan from the version's spec (its ``release:`` section, defaults when absent) and the start's overrides
    (``shadow_seconds``: a shadow phase that long comes first, on the spec's ``release.shadow`` sample and agreement)."""
    try:
        release = ReleaseSpec.model_validate(spec_document.get("release") or {})
    except ValidationError as exc:
        problems = "; ".join(f"release.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ReleaseRefused(f"model {model!r} v{version}: its spec's release section is invalid: {problems}") from exc
    try:
        steps = plan_steps(release, strategy)
    except ValueError as exc:
        raise ReleaseRefused(f"model {model!r} v{version}: strategy: {exc}") from exc
    if bake_seconds is not None:
        steps = [(weight, bake_seconds) for weight, _ in steps]
    shadow = None
    if shadow_seconds is not None:
        shadow = ShadowPlan(bake_seconds=shadow_seconds, sample=release.shadow.sample, min_agreement=release.shadow.min_agreement)
    return Plan(
        strategy=strategy or release.strategy,
        steps=[PlanStep(weight=weight, bake_seconds=bake) for weight, bake in steps],
        guards=release.guards,
        low_traffic=release.low_traffic,
        max_extensions=release.max_extensions,
        shadow=shadow,
    )


def plan_seconds(plan: Plan) -> int:
    """The longest the plan bakes: the shadow phase and every step, with every extension."""
    shadow = plan.shadow.bake_seconds if plan.shadow is not None else 0
    return (shadow + sum(step.bake_seconds for step in plan.steps)) * (1 + plan.max_extensions)


def begin(
    state: ReleaseState, registry: Registry, locks: lock.ReleaseLockTable, *, execution_arn: str, execution_name: str, limits: Limits
) -> ReleaseState:
    """Check the candidate and the champion, resolve the plan, then take the model's release lock."""
    model, version = state.model, state.version
    entry = registry.describe(model, version)
    if entry.status != "registered":
        raise ReleaseRefused(f"model {model!r} v{version} is {entry.status}: only a registered version can be released")
    try:
        production = registry.get_alias(model, PRODUCTION)
    except NotFoundError as exc:
        raise ReleaseRefused(
            f"model {model!r} has no production version to release against: promote the first one with `mlops promote {model} {version}`"
        ) from exc
    if production.version == version:
        raise ReleaseRefused(f"model {model!r} v{version} is already production")
    shadow_seconds = state.shadow_first_seconds
    if shadow_seconds is not None and production.shadow is not None:
        raise ReleaseRefused(
            f"model {model!r}: production already has a shadow (v{production.shadow.version} on {production.shadow.sample:.0%} of "
            f"requests), so a release cannot start with its own: stop it with `mlops shadow stop {model}`"
        )
    plan = resolve_plan(
        entry.spec, model=model, version=version, strategy=state.strategy, bake_seconds=state.bake_seconds, shadow_seconds=shadow_seconds
    )
    if plan_seconds(plan) > limits.max_plan_seconds:
        raise ReleaseRefused(
            f"model {model!r} v{version}: the plan bakes up to {plan_seconds(plan)} s with its extensions, more than the release "
            f"machine's {int(limits.max_plan_seconds)} s: shorten release.bake/steps or release.max_extensions"
        )
    lock.acquire(locks, model, owner=execution_arn, release_id=execution_name, version=version, ttl_seconds=limits.lock_ttl_seconds)
    phase = "shadow" if plan.shadow is not None else "canary"
    return state.model_copy(update={"release_id": execution_name, "champion": production.version, "plan": plan, "phase": phase})


# -- set_weight -------------------------------------------------------------------------------------------------------
def set_weight(state: ReleaseState, registry: Registry, locks: lock.ReleaseLockTable, *, now: float | None = None) -> ReleaseState:
    """The next step's weight on the canary (unless the release was aborted: then nothing moves and the bake is 0)."""
    plan = state.need_plan()
    release_id = str(state.release_id)
    position = state.position + 1
    if position >= len(plan.steps):
        raise ReleaseRefused(f"model {state.model!r}: release {release_id} has no step {position + 1} (the plan has {len(plan.steps)})")
    step = plan.steps[position]
    held = locks.get(state.model)
    update: dict[str, Any] = {"position": position, "extensions": 0, "decision": None, "decision_reason": ""}
    if held is not None and held.release_id == release_id and held.aborted_by is not None:
        update["current"] = PlanStep(weight=step.weight, bake_seconds=0)  # straight to CheckGuards, which rolls back
        update["aborted"] = f"aborted by {held.aborted_by}" + (f": {held.abort_reason}" if held.abort_reason else "")
    else:
        registry.set_canary(
            state.model,
            state.version,
            step.weight,
            release_id=release_id,
            by=by_release(release_id),
            reason=f"step {position + 1} of {len(plan.steps)}: {step.weight:g}% for {step.bake_seconds} s",
        )
        update["current"] = step
    update["step_started_at"] = time.time() if now is None else now
    return state.model_copy(update=update)


# -- check_guards -----------------------------------------------------------------------------------------------------
def canary_gone(state: ReleaseState, registry: Registry) -> str | None:
    """Why the alias no longer carries this release's canary (None: it does)."""
    alias = registry.get_alias(state.model, PRODUCTION)
    release_id = str(state.release_id)
    if alias.canary is not None and alias.canary.release_id == release_id:
        return None
    cleared = [c for c in alias.history if c.action == "canary-clear" and c.release_id == release_id]
    if cleared:
        last = cleared[-1]
        return f"aborted by {last.by}" + (f": {last.reason}" if last.reason else "")
    if state.aborted is not None:
        return state.aborted
    return f"the canary of release {release_id} is no longer on alias production (moved by hand)"


def check_guards(state: ReleaseState, registry: Registry, reader: GuardMetricsReader, *, now: float | None = None) -> ReleaseState:
    """Read both versions' guard metrics since the step began and the named alarms, decide, and on a breach clear the
    canary at once (the Rollback state that follows finds it cleared)."""
    plan, step = state.need_plan(), state.need_current()
    release_id = str(state.release_id)
    now = time.time() if now is None else now
    started = float(state.step_started_at or now)
    gone = canary_gone(state, registry)
    candidate = reader.counts(state.model, state.version, CANARY, start=started, end=now)
    champion = reader.counts(state.model, int(state.champion or 0), PRODUCTION_ROLE, start=started, end=now)
    in_alarm, missing = reader.alarm_findings(plan.guards.alarms)
    observation = Observation(
        candidate=candidate,
        champion=champion,
        alarms_in_alarm=in_alarm,
        missing_alarms=missing,
        canary_gone=gone,
    )
    verdict = decide(
        observation,
        plan.guards,
        last_step=state.last_step,
        extensions=state.extensions,
        max_extensions=plan.max_extensions,
        low_traffic=plan.low_traffic,
    )
    if verdict.decision == "rollback" and gone is None:
        registry.clear_canary(state.model, release_id=release_id, by=by_release(release_id), reason=verdict.reason)
    check = GuardCheck(at=now, weight=step.weight, decision=verdict.decision, reason=verdict.reason, candidate=candidate, champion=champion)
    return state.model_copy(
        update={
            "decision": verdict.decision,
            "decision_reason": verdict.reason,
            "checks": [*state.checks, check],
            "extensions": state.extensions + (1 if verdict.decision == "wait" else 0),
        }
    )


# -- promote / rollback -----------------------------------------------------------------------------------------------
def promote(state: ReleaseState, registry: Registry) -> ReleaseState:
    """The alias to the candidate and the canary cleared, in one write (only this release may)."""
    state.need_plan()
    release_id = str(state.release_id)
    by = by_release(release_id)
    reason = f"release {release_id}: {state.decision_reason}" if state.decision_reason else f"release {release_id}"
    try:
        alias = registry.promote(state.model, state.version, release_id=release_id, by=by, reason=reason)
    except ConflictError:
        alias = registry.get_alias(state.model, PRODUCTION)
        last = alias.history[-1] if alias.history else None
        if not (alias.version == state.version and alias.canary is None and last is not None and last.by == by):
            raise
        # our own promotion, retried after it succeeded
    return state.model_copy(update={"outcome": "promoted", "outcome_reason": state.decision_reason, "revision": alias.revision})


def clear_release_shadow(registry: Registry, model: str, release_id: str, *, by: str, reason: str) -> Alias | None:
    """Clear the shadow if it is ``release_id``'s (its shadow phase); None when there is none of this release's."""
    alias = registry.get_alias(model, PRODUCTION)
    if alias.shadow is None or alias.shadow.release_id != release_id:
        return None
    return registry.clear_shadow(model, release_id=release_id, by=by, reason=reason)


def rollback(state: ReleaseState, registry: Registry) -> ReleaseState:
    """Clear this release's shadow and canary (those still there) in conditional writes; production never moved."""
    failed = state.error is not None
    reason = (state.error.message if state.error is not None else "") or state.decision_reason or "rolled back"
    revision = None
    if state.release_id is not None:
        release_id = state.release_id
        why = ("failed: " if failed else "") + reason
        try:
            cleared = clear_release_shadow(registry, state.model, release_id, by=by_release(release_id), reason=why)
            revision = cleared.revision if cleared is not None else None
            alias = registry.clear_canary(state.model, release_id=release_id, by=by_release(release_id), reason=why)
            revision = alias.revision
        except ReleaseInProgressError:
            pass  # the canary is another release's: nothing of ours to clear
        except NotFoundError:
            pass  # no production alias: nothing was ever routed
    outcome: Outcome = "failed" if failed else "rolled_back"
    return state.model_copy(update={"outcome": outcome, "outcome_reason": reason, "revision": revision})


# -- notify -----------------------------------------------------------------------------------------------------------
def _subject(text: str) -> str:
    ascii_text = text.replace("→", "->").replace("≥", ">=").replace("≤", "<=").encode("ascii", "replace").decode().replace("\n", " ")
    return ascii_text if len(ascii_text) <= SUBJECT_MAX else ascii_text[: SUBJECT_MAX - 3] + "..."


def notification_message(state: ReleaseState, *, execution_arn: str) -> tuple[Outcome, str, dict[str, Any]]:
    outcome: Outcome = state.outcome or ("failed" if state.error is not None else "rolled_back")
    words = {"promoted": "promoted", "rolled_back": "rolled back", "failed": "failed, canary cleared"}[outcome]
    reason = state.outcome_reason or state.decision_reason
    subject = f"Release {state.model} v{state.version}: {words}" + (f", {reason}" if reason else "")
    body: dict[str, Any] = {
        "type": "release",
        "outcome": outcome,
        "model": state.model,
        "version": state.version,
        "champion": state.champion,
        "release_id": state.release_id,
        "strategy": state.plan.strategy if state.plan else state.strategy,
        "reason": reason,
        "checks": [check.model_dump(mode="json") for check in state.checks],
        "requested_by": state.requested_by,
        "execution": execution_arn,
    }
    if state.plan is not None and state.plan.shadow is not None:
        body["shadow_first"] = state.plan.shadow.model_dump(mode="json")
    return outcome, _subject(subject), body


def notify(state: ReleaseState, locks: lock.ReleaseLockTable, sns: Any, topic_arn: str | None, *, execution_arn: str) -> ReleaseState:
    """Release the lock (only if this execution holds it), then publish the outcome (attribute ``kind=release``)."""
    locks.delete(state.model, execution_arn)
    if not topic_arn:
        raise ReleaseNotificationError(f"model {state.model!r}: MLOPS_ALERT_TOPIC_ARN is not set, so the release cannot notify anyone")
    outcome, subject, body = notification_message(state, execution_arn=execution_arn)
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=subject,
        Message=json.dumps(body, allow_nan=False, default=str),
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": NOTIFICATION_KIND},
            "model": {"DataType": "String", "StringValue": state.model},
            "outcome": {"DataType": "String", "StringValue": outcome},
        },
    )
    notification = Notification(outcome=outcome, message_id=str(response.get("MessageId", "")), subject=subject)
    return state.model_copy(update={"notification": notification})
