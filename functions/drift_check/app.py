"""The drift-check Lambda: parse the event → ``serverless_mlops.drift.service.run_check`` → metrics and a summary.

Settings come from the environment on the first invocation (never at import time), validated by
:class:`DriftSettings`: MLOPS_BUCKET and MLOPS_TABLE (required in Lambda: a missing one fails the invocation naming
it), MLOPS_KMS_KEY_ID, MLOPS_ALERT_TOPIC_ARN, MLOPS_RETRAIN_STATE_MACHINE_ARN (optional) and, locally,
MLOPS_ENDPOINT_URL. Metrics (EMF, namespace ServerlessMlops): DatasetDrift, DriftedShare, RowsChecked with
dimension ``model``, and DriftScore per feature with dimensions ``model`` and ``feature``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.drift_check.events import parse_event
from functions.observability import observability
from serverless_mlops.aws import client
from serverless_mlops.drift.result import DriftResult
from serverless_mlops.drift.service import DriftOutcome, Notifier, run_check
from serverless_mlops.retraining.control import start_for_drift
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.lifecycle import Backends

obs = observability("drift_check")


class DriftSettings(FunctionSettings):
    """The drift-check function's environment (validated on its first invocation: ``DriftSettings.from_env()``)."""

    NAME = "drift-check"

    alert_topic_arn: str | None = Field(default=None, alias="MLOPS_ALERT_TOPIC_ARN", description="where drift alerts go")
    retrain_state_machine_arn: str | None = Field(
        default=None, alias="MLOPS_RETRAIN_STATE_MACHINE_ARN", description="the retraining workflow drift starts (optional)"
    )


@dataclass(frozen=True)
class Dependencies:
    backends: Backends
    notifier: Notifier


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """Clients built once per cold start from the environment."""
    settings = DriftSettings.from_env()
    machine = settings.retrain_state_machine_arn
    return Dependencies(
        backends=Backends.from_settings(settings.aws),
        notifier=Notifier(
            sns=client("sns", settings.aws) if settings.alert_topic_arn else None,
            topic_arn=settings.alert_topic_arn,
            retrain=partial(start_for_drift, client("stepfunctions", settings.aws), machine) if machine else None,
        ),
    )


def handle(event: Any, deps: Dependencies | None = None) -> DriftOutcome:
    """Parse ``event`` and run one drift check (``deps`` defaults to clients from the environment)."""
    request = parse_event(event)
    deps = deps or default_dependencies()
    start = end = None
    if request.window is not None:
        start, end = request.window.start, request.window.end
    return run_check(
        request.model,
        deps.backends,
        start=start,
        end=end if end is not None else request.time,
        window_hours=request.window_hours,
        notifier=deps.notifier,
    )


def emit_metrics(result: DriftResult) -> None:
    """RowsChecked always; DatasetDrift and DriftedShare when there was enough data; DriftScore per checked feature.

    Dimensions: ``model`` (and ``feature`` for DriftScore), plus the ``service`` dimension powertools always adds.
    """
    metrics = obs.metrics
    metrics.add_dimension(name="model", value=result.model)
    metrics.add_metric(name="RowsChecked", unit=MetricUnit.Count, value=result.rows)
    if result.status != "insufficient_data":
        metrics.add_metric(name="DatasetDrift", unit=MetricUnit.Count, value=float(result.dataset_drift))
        metrics.add_metric(name="DriftedShare", unit=MetricUnit.NoUnit, value=result.drifted_share)
    for feature in result.features:
        if feature.statistic is not None:
            dimensions = {"model": result.model, "feature": feature.name, "service": str(metrics.service)}
            score = {"name": "DriftScore", "unit": MetricUnit.NoUnit, "value": feature.statistic}
            with single_metric(**score, namespace=metrics.namespace, default_dimensions=dimensions):  # type: ignore[arg-type]
                pass


@obs.logger.inject_lambda_context(log_event=True)
@obs.metrics.log_metrics
@obs.trace_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = handle(event)
    emit_metrics(outcome.result)
    summary = outcome.summary()
    obs.logger.info("drift check done", extra={k: summary[k] for k in ("model", "status", "drifted_share", "rows", "alerted")})
    return summary
