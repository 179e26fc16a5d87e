"""The retraining workflow's release function (inference layer, no scikit-learn): steps register,
request_approval, promote, reject, notify.

Event: ``{"step", "state", "execution", "execution_name"}`` (+ ``"token"`` for request_approval); the answer is the
whole workflow document with the step's key added. Settings come from the environment on the first invocation,
validated by :class:`ReleaseSettings` (in Lambda a missing MLOPS_BUCKET, MLOPS_TABLE or MLOPS_RETRAINING_TABLE fails
the step naming it): MLOPS_BUCKET, MLOPS_TABLE, MLOPS_RETRAINING_TABLE (locks, approval requests), MLOPS_KMS_KEY_ID,
MLOPS_ALERT_TOPIC_ARN and, locally, MLOPS_ENDPOINT_URL. Metrics (EMF, namespace ServerlessMlops):
RetrainingStepsCompleted (dimensions ``model``, ``step``) and, from notify, one of RetrainingPromoted /
RetrainingRejected / RetrainingFailed (dimension ``model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import Field

from functions.observability import observability, retraining_step_handler
from serverless_mlops.aws import client
from serverless_mlops.retraining import release_steps
from serverless_mlops.retraining.contract import NOTIFY, PROMOTE, REGISTER, REJECT, RELEASE_STEPS, REQUEST_APPROVAL
from serverless_mlops.retraining.state import parse_task_event
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.lifecycle import Backends

obs = observability("release")


class ReleaseSettings(FunctionSettings):
    """The release function's environment (validated on its first invocation: ``ReleaseSettings.from_env()``)."""

    NAME = "release"
    REQUIRED = ("MLOPS_RETRAINING_TABLE",)  # locks and approval requests

    alert_topic_arn: str | None = Field(default=None, alias="MLOPS_ALERT_TOPIC_ARN", description="approval requests and outcomes go here")
    release_state_machine_arn: str | None = Field(
        default=None, alias="MLOPS_RELEASE_STATE_MACHINE_ARN", description="retraining.promote_with: release starts it"
    )


@dataclass(frozen=True)
class Dependencies:
    backends: Backends
    sns: Any
    topic_arn: str | None
    releaser: release_steps.Releaser | None = None


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """Clients built once per cold start from the environment."""
    settings = ReleaseSettings.from_env()
    backends = Backends.from_settings(settings.aws)
    releaser = None
    if settings.release_state_machine_arn:
        from serverless_mlops.release.control import start_release
        from serverless_mlops.release.lock import ReleaseLockTable

        sfn, machine = client("stepfunctions", settings.aws), settings.release_state_machine_arn
        locks = ReleaseLockTable(settings.aws.retraining_table, client("dynamodb", settings.aws))

        def releaser(model: str, version: int, reason: str, shadow_first_seconds: int | None) -> str:
            return start_release(
                sfn, machine, locks, model, version, shadow_first_seconds=shadow_first_seconds, requested_by="retraining", reason=reason
            )

    return Dependencies(backends=backends, sns=client("sns", settings.aws), topic_arn=settings.alert_topic_arn, releaser=releaser)


def handle(event: Any, deps: Dependencies | None = None) -> dict[str, Any]:
    """Run one release-side step; returns the workflow document with the step's key added."""
    task = parse_task_event(event, RELEASE_STEPS)
    deps = deps or default_dependencies()
    state, backends, arn, name = task.state, deps.backends, task.execution, task.execution_name
    if task.step == REGISTER:
        state = release_steps.register(state, backends, execution_arn=arn, execution_name=name)
    elif task.step == REQUEST_APPROVAL:
        state = release_steps.request_approval(
            state, backends, deps.sns, deps.topic_arn, token=task.token or "", execution_arn=arn, execution_name=name
        )
    elif task.step == PROMOTE:
        state = release_steps.promote(state, backends, execution_name=name, releaser=deps.releaser)
    elif task.step == REJECT:
        state = release_steps.reject(state, backends, execution_name=name)
    else:  # NOTIFY: parse_task_event admits RELEASE_STEPS only
        state = release_steps.notify(state, backends, deps.sns, deps.topic_arn, execution_arn=arn)
    return state.document()


OUTCOME_METRICS = {"promoted": "RetrainingPromoted", "rejected": "RetrainingRejected", "failed": "RetrainingFailed"}


def outcome_metric(document: dict[str, Any], step: str) -> None:
    """The notify step's outcome as one of ``RetrainingPromoted`` / ``RetrainingRejected`` / ``RetrainingFailed``
    (dimension ``model``), which an alarm can watch."""
    outcome = document.get("notification", {}).get("outcome") if step == NOTIFY else None
    if outcome in OUTCOME_METRICS:
        obs.count(OUTCOME_METRICS[outcome], model=str(document["model"]))


lambda_handler = retraining_step_handler(obs, handle, more_metrics=outcome_metric)
