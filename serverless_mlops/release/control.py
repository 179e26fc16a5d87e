"""What people (``mlops release start|status|abort``) and the retraining workflow (``retraining.promote_with: release``)
do to releases: start one, see where it stands, abort it.

- start: refused at once while a live release holds the model's lock (the machine's Begin refuses it too, ending in
  AlreadyRunning, for a start that races this check); the execution is named by the release id.
- abort: one conditional write marks the lock aborted (who, why) and one clears the canary (or, in a shadow phase, the
  release's shadow), so traffic is back on the champion alone at once; the running execution sees the canary (shadow)
  gone at its next CheckGuards (CheckShadow), or SetWeight (SetShadow) sees the mark, rolls back and notifies, naming
  who aborted.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.release import lock
from serverless_mlops.release.lock import ReleaseInProgress, ReleaseLock, ReleaseLockTable
from serverless_mlops.release.steps import clear_release_shadow
from serverless_mlops.store.registry import PRODUCTION, Alias, Canary, Registry, Shadow

_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NAME_MAX = 80  # Step Functions execution names


def release_id(model: str, version: int, now: datetime | None = None) -> str:
    """The release id, also the execution's name: ``{model}-v{version}-{UTC time}`` (at most 80 characters)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{model}-v{version}-{stamp}"[-NAME_MAX:]


def start_release(
    sfn: Any,
    state_machine_arn: str,
    locks: ReleaseLockTable,
    model: str,
    version: int,
    *,
    strategy: str | None = None,
    bake_seconds: int | None = None,
    shadow_first_seconds: int | None = None,
    requested_by: str = "",
    reason: str = "",
    now: datetime | None = None,
) -> str:
    """Start the release workflow for ``model`` ``version`` (with ``shadow_first_seconds``: a shadow phase that long
    first); returns the execution ARN. ReleaseInProgress if a live release holds the model's lock."""
    if not _MODEL_NAME.match(model):
        raise MlopsError(f"invalid model name {model!r}: expected lower-case letters, digits and '-', starting with a letter")
    if version < 1:
        raise MlopsError(f"invalid version {version}: versions are numbered from 1")
    holder = lock.live(locks, model)
    if holder is not None:
        raise ReleaseInProgress(
            f"model {model!r} is already being released: {holder.describe()}; wait for it to end or run `mlops release abort {model}`"
        )
    document: dict[str, Any] = {"model": model, "version": version}
    if strategy:
        document["strategy"] = strategy
    if bake_seconds is not None:
        document["bake_seconds"] = bake_seconds
    if shadow_first_seconds is not None:
        document["shadow_first_seconds"] = shadow_first_seconds
    if requested_by:
        document["requested_by"] = requested_by
    if reason:
        document["reason"] = reason
    try:
        response = sfn.start_execution(stateMachineArn=state_machine_arn, name=release_id(model, version, now), input=json.dumps(document))
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise MlopsError(f"release state machine {state_machine_arn} does not exist: deploy the stack or pass --state-machine") from exc
    return str(response["executionArn"])


class ReleaseStatus(BaseModel):
    """Where a model's release stands: the production alias (with its canary and shadow) and the live lock, if any."""

    model_config = ConfigDict(frozen=True)

    model: str
    production: int | None
    canary: Canary | None
    shadow: Shadow | None = None
    release: ReleaseLock | None
    execution_status: str | None = None
    execution_state: str | None = None  # the latest state entered

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def release_status(registry: Registry, locks: ReleaseLockTable, model: str, *, sfn: Any | None = None) -> ReleaseStatus:
    """The production alias with its canary, the live release and (with ``sfn``) its execution's status and state."""
    if not registry.model_exists(model):
        raise NotFoundError(f"model {model!r} is not registered")
    alias: Alias | None
    try:
        alias = registry.get_alias(model, PRODUCTION)
    except NotFoundError:
        alias = None
    held = lock.live(locks, model)
    status = state = None
    if held is not None and sfn is not None:
        status = sfn.describe_execution(executionArn=held.owner)["status"]
        events = sfn.get_execution_history(executionArn=held.owner, maxResults=100, reverseOrder=True)["events"]
        events = sorted(events, key=lambda e: int(e["id"]), reverse=True)  # newest first, also where reverseOrder is ignored (moto)
        entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
        state = entered[0] if entered else None
    return ReleaseStatus(
        model=model,
        production=alias.version if alias else None,
        canary=alias.canary if alias else None,
        shadow=alias.shadow if alias else None,
        release=held,
        execution_status=status,
        execution_state=state,
    )


def abort_release(registry: Registry, locks: ReleaseLockTable, model: str, *, by: str, reason: str = "") -> ReleaseLock:
    """Mark the live release aborted and clear its canary and its shadow (traffic is all on the champion, and nothing
    shadows it for the release, when this returns)."""
    held = lock.live(locks, model)
    if held is None:
        raise NotFoundError(f"model {model!r} has no release running: nothing to abort")
    why = reason or "aborted by hand"
    if not locks.mark_aborted(model, held.release_id, by=by, reason=why):
        raise NotFoundError(f"model {model!r}: release {held.release_id} ended while it was being aborted")
    reason_text = f"release {held.release_id} aborted: {why}"
    clear_release_shadow(registry, model, held.release_id, by=by, reason=reason_text)
    registry.clear_canary(model, release_id=held.release_id, by=by, reason=reason_text)
    return held.model_copy(update={"aborted_by": by, "abort_reason": why})


def wait_for_end(sfn: Any, execution_arn: str, *, timeout: float, poll_seconds: float = 0.25) -> dict[str, Any]:
    """Poll until the execution ends (``describe_execution``'s answer); MlopsError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            raise MlopsError(f"release {execution_arn.rsplit(':', 1)[-1]} still running after {timeout:g} s")
        time.sleep(poll_seconds)
