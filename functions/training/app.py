"""The retraining workflow's training function (training layer): steps prepare, train, evaluate.

Event (from the state machine's LambdaInvoke payload): ``{"step", "state", "execution", "execution_name"}``; the
answer is the whole workflow document with the step's key added. Settings come from the environment on the first invocation,
validated by :class:`TrainingSettings` (in Lambda a missing MLOPS_BUCKET, MLOPS_TABLE or MLOPS_RETRAINING_TABLE fails
the step naming it): MLOPS_BUCKET, MLOPS_TABLE, MLOPS_RETRAINING_TABLE (its lock), MLOPS_KMS_KEY_ID, MLOPS_LOCK_TTL_SECONDS and, locally,
MLOPS_ENDPOINT_URL. Metrics (EMF, namespace ServerlessMlops): RetrainingStepsCompleted with dimensions ``model``
and ``step``. Errors propagate: their class name is the Lambda errorType the state machine catches
(``RetrainingInProgress`` → AlreadyRunning, anything else → NotifyFailure).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import Field

from functions.observability import observability, retraining_step_handler
from serverless_mlops.retraining import candidate_steps
from serverless_mlops.retraining.contract import PREPARE, TRAIN, TRAINING_STEPS
from serverless_mlops.retraining.lock import DEFAULT_LOCK_TTL_SECONDS
from serverless_mlops.retraining.state import parse_task_event
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.lifecycle import Backends

obs = observability("training")


class TrainingSettings(FunctionSettings):
    """The training function's environment (validated on its first invocation: ``TrainingSettings.from_env()``)."""

    NAME = "training"
    REQUIRED = ("MLOPS_RETRAINING_TABLE",)  # its lock

    lock_ttl_seconds: int = Field(default=DEFAULT_LOCK_TTL_SECONDS, gt=0, alias="MLOPS_LOCK_TTL_SECONDS")


@dataclass(frozen=True)
class Dependencies:
    backends: Backends
    lock_ttl_seconds: int


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """Clients built once per cold start from the environment."""
    settings = TrainingSettings.from_env()
    return Dependencies(backends=Backends.from_settings(settings.aws), lock_ttl_seconds=settings.lock_ttl_seconds)


def handle(event: Any, deps: Dependencies | None = None) -> dict[str, Any]:
    """Run one training-side step; returns the workflow document with the step's key added."""
    task = parse_task_event(event, TRAINING_STEPS)
    deps = deps or default_dependencies()
    if task.step == PREPARE:
        state = candidate_steps.prepare(task.state, deps.backends, execution_arn=task.execution, lock_ttl_seconds=deps.lock_ttl_seconds)
    elif task.step == TRAIN:
        state = candidate_steps.train(task.state, deps.backends, execution_name=task.execution_name)
    else:  # EVALUATE: parse_task_event admits TRAINING_STEPS only
        state = candidate_steps.evaluate(task.state, deps.backends, execution_name=task.execution_name)
    return state.document()


lambda_handler = retraining_step_handler(obs, handle)
