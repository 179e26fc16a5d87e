"""The release workflow's function (inference layer): steps begin, set_weight, promote, rollback, notify
(serverless_mlops/release/steps.py) and set_shadow (serverless_mlops/release/shadow_phase.py). CheckGuards and
CheckShadow are a function of their own (functions/release_guards), with a role that reads metrics and alarms and
writes the alias only.

Event: ``{"step", "state", "execution", "execution_name"}``; the answer is the whole release document. Settings
(:class:`ReleaseWorkflowSettings`, validated on the first invocation): MLOPS_BUCKET, MLOPS_TABLE,
MLOPS_RETRAINING_TABLE (the release locks), MLOPS_ALERT_TOPIC_ARN, MLOPS_RELEASE_LOCK_TTL_SECONDS and
MLOPS_RELEASE_MAX_PLAN_SECONDS (both from the machine's timeout). Metrics (EMF): ReleaseStepsCompleted (dimensions
``model``, ``step``) and, from notify, one of ReleasePromoted / ReleaseRolledBack / ReleaseFailed (dimension ``model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field

from functions.observability import observability
from serverless_mlops.aws import client
from serverless_mlops.release import shadow_phase, steps
from serverless_mlops.release.contract import BEGIN, NOTIFY, PROMOTE, SET_SHADOW, SET_WEIGHT, WORKFLOW_STEPS
from serverless_mlops.release.lock import ReleaseLockTable
from serverless_mlops.release.state import parse_release_event
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry
from serverless_mlops.store.registry import Registry

obs = observability("release-workflow")


class ReleaseWorkflowSettings(FunctionSettings):
    NAME = "release workflow"
    REQUIRED = ("MLOPS_RETRAINING_TABLE", "MLOPS_ALERT_TOPIC_ARN")

    alert_topic_arn: str | None = Field(default=None, alias="MLOPS_ALERT_TOPIC_ARN", description="release outcomes go here")
    lock_ttl_seconds: float = Field(default=48 * 3600, gt=0, alias="MLOPS_RELEASE_LOCK_TTL_SECONDS")
    max_plan_seconds: float = Field(default=47 * 3600, gt=0, alias="MLOPS_RELEASE_MAX_PLAN_SECONDS")


@dataclass(frozen=True)
class Dependencies:
    registry: Registry
    locks: ReleaseLockTable
    sns: Any
    topic_arn: str | None
    limits: steps.Limits


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """Clients built once per cold start from the environment."""
    settings = ReleaseWorkflowSettings.from_env()
    dynamodb = client("dynamodb", settings.aws)
    return Dependencies(
        registry=DynamoDBRegistry(settings.aws.table, dynamodb),
        locks=ReleaseLockTable(settings.aws.retraining_table, dynamodb),
        sns=client("sns", settings.aws),
        topic_arn=settings.alert_topic_arn,
        limits=steps.Limits(lock_ttl_seconds=settings.lock_ttl_seconds, max_plan_seconds=settings.max_plan_seconds),
    )


def handle(event: Any, deps: Dependencies | None = None) -> dict[str, Any]:
    """Run one step; returns the release document with the step's part added."""
    task = parse_release_event(event, WORKFLOW_STEPS)
    deps = deps or default_dependencies()
    state = task.state
    if task.step == BEGIN:
        state = steps.begin(
            state, deps.registry, deps.locks, execution_arn=task.execution, execution_name=task.execution_name, limits=deps.limits
        )
    elif task.step == SET_SHADOW:
        state = shadow_phase.set_shadow(state, deps.registry, deps.locks)
    elif task.step == SET_WEIGHT:
        state = steps.set_weight(state, deps.registry, deps.locks)
    elif task.step == PROMOTE:
        state = steps.promote(state, deps.registry)
    elif task.step == NOTIFY:
        state = steps.notify(state, deps.locks, deps.sns, deps.topic_arn, execution_arn=task.execution)
    else:  # ROLLBACK: parse_release_event admits WORKFLOW_STEPS only
        state = steps.rollback(state, deps.registry)
    return state.document()


OUTCOME_METRICS = {"promoted": "ReleasePromoted", "rolled_back": "ReleaseRolledBack", "failed": "ReleaseFailed"}


@obs.logger.inject_lambda_context(log_event=False)
@obs.metrics.log_metrics
@obs.trace_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    obs.logger.info("release step", extra={"step": event.get("step"), "execution": event.get("execution")})
    document = handle(event)
    step = str(event["step"])
    obs.metrics.add_dimension(name="model", value=str(document["model"]))
    obs.metrics.add_dimension(name="step", value=step)
    obs.metrics.add_metric(name="ReleaseStepsCompleted", unit=MetricUnit.Count, value=1)
    outcome = document.get("notification", {}).get("outcome") if step == NOTIFY else None
    if outcome in OUTCOME_METRICS:
        obs.count(OUTCOME_METRICS[outcome], model=str(document["model"]))
    return document
