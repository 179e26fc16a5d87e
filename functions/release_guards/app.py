"""CheckGuards (inference layer): reads the candidate's and the champion's guard metrics (GetMetricData) and the
alarms the spec names (DescribeAlarms), decides (serverless_mlops/release/guards.py) and, on a breach, clears the
canary at once. CheckShadow (a release's shadow phase, serverless_mlops/release/shadow_phase.py) reads the shadow's
metrics and agreement the same way and clears the shadow. Its role may do exactly that: read metrics and alarms, read
and update the registry's items.

Event: ``{"step": "check_guards" | "check_shadow", "state", "execution", "execution_name"}``; the answer is the release document with
the check appended and ``decision`` set. Settings: MLOPS_BUCKET, MLOPS_TABLE, MLOPS_GUARD_NAMESPACE (the inference
function's metric namespace, default ServerlessMlops). Metrics (EMF): ReleaseGuardChecks (dimensions ``model``,
``decision``).
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
from serverless_mlops.release.contract import CHECK_SHADOW, GUARD_STEPS
from serverless_mlops.release.metrics import GuardMetricsReader
from serverless_mlops.release.state import parse_release_event
from serverless_mlops.serving.guard_metrics import NAMESPACE
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry
from serverless_mlops.store.registry import Registry

obs = observability("release-guards")


class GuardSettings(FunctionSettings):
    NAME = "release guards"

    namespace: str = Field(default=NAMESPACE, min_length=1, alias="MLOPS_GUARD_NAMESPACE")


@dataclass(frozen=True)
class Dependencies:
    registry: Registry
    reader: GuardMetricsReader


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    settings = GuardSettings.from_env()
    return Dependencies(
        registry=DynamoDBRegistry(settings.aws.table, client("dynamodb", settings.aws)),
        reader=GuardMetricsReader(client("cloudwatch", settings.aws), settings.namespace),
    )


def handle(event: Any, deps: Dependencies | None = None) -> dict[str, Any]:
    task = parse_release_event(event, GUARD_STEPS)
    deps = deps or default_dependencies()
    if task.step == CHECK_SHADOW:
        return shadow_phase.check_shadow(task.state, deps.registry, deps.reader).document()
    return steps.check_guards(task.state, deps.registry, deps.reader).document()


@obs.logger.inject_lambda_context(log_event=False)
@obs.metrics.log_metrics
@obs.trace_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    document = handle(event)
    obs.logger.info("guards checked", extra={"decision": document.get("decision"), "reason": document.get("decision_reason")})
    obs.metrics.add_dimension(name="model", value=str(document["model"]))
    obs.metrics.add_dimension(name="decision", value=str(document.get("decision")))
    obs.metrics.add_metric(name="ReleaseGuardChecks", unit=MetricUnit.Count, value=1)
    return document
