"""The shadow phase of a release (``mlops release start --shadow-first 30m``): before the first SetWeight, the candidate
scores a sample of production's requests in the background, never answering, and the release goes on to its canary
steps only if the shadow agreed with production and stayed healthy (serverless_mlops/release/shadow_guards.py).

- SetShadow (functions/release_workflow) sets the production alias's ``shadow`` to the candidate, owned by the
  release (``release_id``), in one optimistic-concurrency write kept in the alias history; a release found aborted sets
  nothing and bakes 0 s.
- ShadowBake waits the phase's seconds (``$.shadow_phase.bake_seconds``).
- CheckShadow (functions/release_guards, whose role only reads metrics and alarms and updates the alias item) reads the
  shadow's metrics (role ``shadow``: requests, errors, invalid outputs, latency, compared and agreed rows) and the
  champion's, decides, and clears the shadow whatever it decided, unless it waits for more traffic. The candidate never
  served: a rollback here leaves production exactly as it was.
"""

from __future__ import annotations

import time
from typing import Any

from serverless_mlops.release import lock
from serverless_mlops.release.metrics import GuardMetricsReader
from serverless_mlops.release.shadow_guards import ShadowObservation, decide_shadow
from serverless_mlops.release.state import GuardCheck, ReleaseState, ReleaseStateError, ShadowPlan, ShadowRun
from serverless_mlops.release.steps import ReleaseRefused, by_release
from serverless_mlops.serving.guard_metrics import PRODUCTION as PRODUCTION_ROLE
from serverless_mlops.store.registry import PRODUCTION, Registry


def need_shadow(state: ReleaseState) -> ShadowPlan:
    shadow = state.need_plan().shadow
    if shadow is None:
        raise ReleaseStateError(f"model {state.model!r}: release {state.release_id} has no shadow phase (started without --shadow-first)")
    return shadow


def set_shadow(state: ReleaseState, registry: Registry, locks: lock.ReleaseLockTable, *, now: float | None = None) -> ReleaseState:
    """The candidate as production's shadow for this release (unless the release was aborted: then nothing is set and
    the bake is 0)."""
    shadow = need_shadow(state)
    release_id = str(state.release_id)
    started = time.time() if now is None else now
    update: dict[str, Any] = {"extensions": 0, "decision": None, "decision_reason": ""}
    held = locks.get(state.model)
    if held is not None and held.release_id == release_id and held.aborted_by is not None:
        update["shadow_phase"] = ShadowRun(bake_seconds=0, started_at=started)  # straight to CheckShadow, which rolls back
        update["aborted"] = f"aborted by {held.aborted_by}" + (f": {held.abort_reason}" if held.abort_reason else "")
        return state.model_copy(update=update)
    current = registry.get_alias(state.model, PRODUCTION).shadow
    if current is not None and current.release_id != release_id:
        raise ReleaseRefused(
            f"model {state.model!r}: production got a shadow (v{current.version}) after release {release_id} began; stop it with "
            f"`mlops shadow stop {state.model}` and start the release again"
        )
    registry.set_shadow(
        state.model,
        state.version,
        shadow.sample,
        release_id=release_id,
        by=by_release(release_id),
        reason=f"shadow phase: {shadow.sample:.0%} of production's requests for {shadow.bake_seconds} s",
    )
    update["shadow_phase"] = ShadowRun(bake_seconds=shadow.bake_seconds, started_at=started)
    return state.model_copy(update=update)


def shadow_gone(state: ReleaseState, registry: Registry) -> str | None:
    """Why the alias no longer carries this release's shadow (None: it does)."""
    alias = registry.get_alias(state.model, PRODUCTION)
    release_id = str(state.release_id)
    if alias.shadow is not None and alias.shadow.release_id == release_id:
        return None
    cleared = [c for c in alias.history if c.action == "shadow-clear" and c.release_id == release_id]
    if cleared:
        last = cleared[-1]
        if last.by == by_release(release_id):
            return None  # this CheckShadow's own clear, and Step Functions retried it: decide again on the same metrics
        return f"aborted by {last.by}" + (f": {last.reason}" if last.reason else "")
    return state.aborted or f"the shadow of release {release_id} is no longer on alias production"


def check_shadow(state: ReleaseState, registry: Registry, reader: GuardMetricsReader, *, now: float | None = None) -> ReleaseState:
    """Read the shadow's and the champion's metrics since the shadow was set and the named alarms, decide, and (unless
    waiting for traffic) clear the shadow: the canary steps that follow, or the rollback, start without it."""
    plan, shadow = state.need_plan(), need_shadow(state)
    run = state.shadow_phase
    if run is None:
        raise ReleaseStateError(f"model {state.model!r}: the release document has no shadow phase under way (SetShadow did not run)")
    release_id = str(state.release_id)
    now = time.time() if now is None else now
    gone = shadow_gone(state, registry)
    counts, agreement = reader.shadow_counts(state.model, state.version, start=run.started_at, end=now)
    champion = reader.counts(state.model, int(state.champion or 0), PRODUCTION_ROLE, start=run.started_at, end=now)
    in_alarm, missing = reader.alarm_findings(plan.guards.alarms)
    observation = ShadowObservation(
        shadow=counts,
        agreement=agreement,
        champion=champion,
        alarms_in_alarm=in_alarm,
        missing_alarms=missing,
        shadow_gone=gone,
    )
    verdict = decide_shadow(
        observation,
        plan.guards,
        min_agreement=shadow.min_agreement,
        extensions=state.extensions,
        max_extensions=plan.max_extensions,
        low_traffic=plan.low_traffic,
    )
    if verdict.decision != "wait" and gone is None:
        registry.clear_shadow(state.model, release_id=release_id, by=by_release(release_id), reason=verdict.reason)
    check = GuardCheck(
        at=now,
        weight=0.0,
        decision=verdict.decision,
        reason=verdict.reason,
        candidate=counts,
        champion=champion,
        phase="shadow",
        agreement=agreement,
    )
    update: dict[str, Any] = {
        "decision": verdict.decision,
        "decision_reason": verdict.reason,
        "checks": [*state.checks, check],
        "extensions": state.extensions + 1 if verdict.decision == "wait" else 0,
    }
    if verdict.decision == "advance":
        update["phase"] = "canary"
    return state.model_copy(update=update)
