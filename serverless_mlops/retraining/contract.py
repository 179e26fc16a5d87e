"""Names the workflow's parts agree on: the CDK state machine (infra/retraining.py), the two Lambda handlers
(functions/training, functions/release), the CLI and the tests all import them from here, so none can drift.

The workflow document (the state every task reads and returns, see :mod:`serverless_mlops.retraining.state`) grows
one key per step: ``data`` (PrepareData), ``candidate`` (Train), ``evaluation`` (Evaluate), ``version`` (Register),
``approval`` (WaitForApproval), ``promotion`` (Promote), ``notification`` (Notify*), ``error`` (any Catch). A start by
a quality breach also carries ``recent`` (the newest labelled rows of its window, which Evaluate scores on too).
"""

from __future__ import annotations

from typing import Final, Literal

from serverless_mlops.quality.recent_key import HOLDOUT_RECENT_PREFIX as _RECENT_PREFIX

# -- S3 prefixes of the artifact bucket written by retraining ------------------------------------------------------
SPECS_PREFIX: Final = "specs"  # specs/{model}/spec.json and the spec's base data beside it (published by cdk deploy)
FEEDBACK_PREFIX: Final = "feedback"  # feedback/{model}/*.csv: labelled rows (features + target) users add
SNAPSHOTS_PREFIX: Final = "snapshots"  # snapshots/{model}/{sha256}.csv: the exact data a run trained on
RUNS_PREFIX: Final = "runs"  # runs/{model}/{execution name}/model.onnx|profile.json.gz|run.json: a trainer's output
# holdout-recent/{model}/{window}/{sha256}.csv: the newest labelled rows a quality breach hands to Evaluate (written by
# the quality check, serverless_mlops/quality/recent_rows.py; never trained on: PrepareData reads feedback/ only)
HOLDOUT_RECENT_PREFIX: Final = _RECENT_PREFIX

# -- Lambda task "step" values ---------------------------------------------------------------------------------------
# functions/training/app.py (training layer: scikit-learn, skl2onnx, pandas, onnxruntime)
PREPARE: Final = "prepare"
TRAIN: Final = "train"
EVALUATE: Final = "evaluate"
# functions/release/app.py (inference layer: registry, S3, SNS; no scikit-learn)
REGISTER: Final = "register"
REQUEST_APPROVAL: Final = "request_approval"
PROMOTE: Final = "promote"
REJECT: Final = "reject"
NOTIFY: Final = "notify"

Step = Literal["prepare", "train", "evaluate", "register", "request_approval", "promote", "reject", "notify"]
TRAINING_STEPS: Final = (PREPARE, TRAIN, EVALUATE)
RELEASE_STEPS: Final = (REGISTER, REQUEST_APPROVAL, PROMOTE, REJECT, NOTIFY)

# -- state names in the state machine (what `mlops retrain --local` shows and the tests assert) --------------------
STATE_PREPARE: Final = "PrepareData"
STATE_TRAIN: Final = "Train"
STATE_EVALUATE: Final = "Evaluate"
STATE_GATE: Final = "Gate"
STATE_REGISTER: Final = "Register"
STATE_REGISTER_REJECTED: Final = "RegisterRejected"
STATE_NEEDS_APPROVAL: Final = "NeedsApproval"
STATE_WAIT_FOR_APPROVAL: Final = "WaitForApproval"
STATE_APPROVED: Final = "Approved?"
STATE_PROMOTE: Final = "Promote"
STATE_REJECT: Final = "RejectCandidate"
STATE_NOTIFY_PROMOTED: Final = "NotifyPromoted"
STATE_NOTIFY_REJECTED: Final = "NotifyRejected"
STATE_NOTIFY_FAILURE: Final = "NotifyFailure"
# terminal states
STATE_PROMOTED: Final = "Promoted"  # Succeed
STATE_NOT_PROMOTED: Final = "NotPromoted"  # Succeed: gate or a person said no; production unchanged
STATE_ALREADY_RUNNING: Final = "AlreadyRunning"  # Succeed: another execution holds this model's retraining lock
STATE_FAILED: Final = "Failed"  # Fail, error FAILED_ERROR

# -- errors a task raises on purpose (the Lambda errorType is the exception class name) ----------------------------
ALREADY_RUNNING_ERROR: Final = "RetrainingInProgress"  # PrepareData: the model's lock is held by another execution
FAILED_ERROR: Final = "RetrainingFailed"

# -- triggers --------------------------------------------------------------------------------------------------------
Trigger = Literal["schedule", "drift", "quality", "manual"]
Outcome = Literal["promoted", "rejected", "failed"]

# -- the retraining table (serverless_mlops/retraining/table.py): its items' partition keys, which IAM conditions name --
# the pending approval of a version, with its task token (waitForTaskToken): pk APPROVAL#{model}, sk {version:010d}
APPROVAL_PREFIX: Final = "APPROVAL#"
# the per-model retraining lock: pk LOCK#{model}, sk retraining
LOCK_PREFIX: Final = "LOCK#"
LOCK_SORT_KEY: Final = "retraining"
