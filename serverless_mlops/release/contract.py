"""Names the release workflow's parts agree on: the CDK state machine (infra/release.py), the two Lambda handlers
(functions/release_workflow, functions/release_guards), the CLI and the tests import them from here.

The workflow document (:class:`serverless_mlops.release.state.ReleaseState`) is what every task reads and returns:
the plan (steps of weight and bake seconds; the shadow phase, if any), the phase, the position in it, ``current``
(the step running: the Wait state reads its ``bake_seconds`` with a SecondsPath, so no JSONPath needs ``[n]``), the
last ``decision`` (the Choice reads it), every guard check, and at the end the outcome and the notification.
"""

from __future__ import annotations

from typing import Final, Literal

# -- Lambda task "step" values -----------------------------------------------------------------------------------------
# functions/release_workflow/app.py
BEGIN: Final = "begin"  # take the model's release lock, resolve the plan from the version's spec
SET_WEIGHT: Final = "set_weight"  # put the canary at the current step's weight
PROMOTE: Final = "promote"  # the alias to the candidate, the canary cleared, in one write
ROLLBACK: Final = "rollback"  # the canary cleared in one write; production never moved
NOTIFY: Final = "notify"  # release the lock, publish the outcome (SNS, attribute kind=release)
SET_SHADOW: Final = "set_shadow"  # --shadow-first: the candidate shadows production (serverless_mlops/release/shadow_phase.py)
WORKFLOW_STEPS: Final = (BEGIN, SET_WEIGHT, PROMOTE, ROLLBACK, NOTIFY, SET_SHADOW)
# functions/release_guards/app.py: metrics and alarms read, the alias item updated, nothing else
CHECK_GUARDS: Final = "check_guards"
CHECK_SHADOW: Final = "check_shadow"  # the shadow phase's verdict; clears the shadow whatever it decides
GUARD_STEPS: Final = (CHECK_GUARDS, CHECK_SHADOW)
Step = Literal["begin", "set_weight", "promote", "rollback", "notify", "check_guards", "set_shadow", "check_shadow"]

# -- state names (what `mlops release status` shows and the tests assert) ---------------------------------------------
STATE_BEGIN: Final = "Begin"
STATE_SET_WEIGHT: Final = "SetWeight"
STATE_BAKE: Final = "Bake"  # Wait, SecondsPath $.current.bake_seconds
STATE_CHECK_GUARDS: Final = "CheckGuards"
STATE_DECIDE: Final = "Decide"  # Choice on $.decision
STATE_PROMOTE: Final = "Promote"
STATE_ROLLBACK: Final = "Rollback"
STATE_ROLLBACK_ON_FAILURE: Final = "RollbackOnFailure"
# the shadow phase (mlops release start --shadow-first), between Begin and the first SetWeight
STATE_SHADOW_FIRST: Final = "ShadowFirst"  # Choice on $.phase: "shadow" → SetShadow, else SetWeight
STATE_SET_SHADOW: Final = "SetShadow"
STATE_SHADOW_BAKE: Final = "ShadowBake"  # Wait, SecondsPath $.shadow_phase.bake_seconds
STATE_CHECK_SHADOW: Final = "CheckShadow"
STATE_SHADOW_DECIDE: Final = "ShadowDecide"  # Choice on $.decision: advance → SetWeight, wait → ShadowBake, else Rollback
STATE_NOTIFY_PROMOTED: Final = "NotifyPromoted"
STATE_NOTIFY_ROLLED_BACK: Final = "NotifyRolledBack"
STATE_NOTIFY_FAILURE: Final = "NotifyFailure"
# terminal states
STATE_PROMOTED: Final = "Promoted"  # Succeed: the candidate is production
STATE_ROLLED_BACK: Final = "RolledBack"  # Succeed: guards, low traffic or abort; production unchanged
STATE_ALREADY_RUNNING: Final = "AlreadyRunning"  # Succeed: another release of this model holds the lock
STATE_FAILED: Final = "Failed"  # Fail, error FAILED_ERROR (the canary was cleared first)
TERMINAL: Final = (STATE_PROMOTED, STATE_ROLLED_BACK, STATE_ALREADY_RUNNING, STATE_FAILED)

# -- errors a task raises on purpose (Lambda errorType = exception class name) ----------------------------------------
ALREADY_RUNNING_ERROR: Final = "ReleaseInProgress"
FAILED_ERROR: Final = "ReleaseFailed"

Outcome = Literal["promoted", "rolled_back", "failed"]

# -- the retraining table (the workflows' coordination table) item of a model's release lock ---------------------------
# pk RELEASE#{model}, sk lock: a prefix apart from the retraining lock's LOCK#, so IAM can tell them apart
LOCK_PREFIX: Final = "RELEASE#"
LOCK_SORT_KEY: Final = "lock"

# the SNS message attribute that tells a release notification from drift and retraining ones
NOTIFICATION_KIND: Final = "release"
