"""The batch workflow's job function (inference layer): steps prepare and finalize.

Events (from the state machine's LambdaInvoke payloads): ``{"step": "prepare", "request": {...}, "execution_name"}``
answers ``{"job": {...}}`` (the request's ``job_id`` defaults to the execution's name); ``{"step": "finalize",
"job": {...}}`` answers the ``_SUCCESS`` document, or raises ``BatchJobFailed`` (the errorType the state machine
sends to its Failed state) naming the failed shards. Settings come from the environment on the first invocation,
validated by :class:`BatchJobSettings`: MLOPS_BUCKET, MLOPS_TABLE, MLOPS_KMS_KEY_ID, MLOPS_BATCH_SHARD_BYTES,
MLOPS_BATCH_TOLERATED_FAILURE_PERCENT and, locally, MLOPS_ENDPOINT_URL. Metrics (EMF, namespace ServerlessMlops):
BatchRowsScored and BatchRowsRefused (dimension ``model``) from finalize.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field

from functions.observability import observability
from serverless_mlops.aws import client
from serverless_mlops.batch.contract import FINALIZE, PREPARE, BatchError, BatchRequest, Job
from serverless_mlops.batch.finalize import finalize
from serverless_mlops.batch.objects import Objects
from serverless_mlops.batch.prepare import prepare
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.lifecycle import Backends

obs = observability("batch")
DEFAULT_SHARD_BYTES = 64 << 20


class BatchJobSettings(FunctionSettings):
    """The job function's environment (validated on its first invocation)."""

    NAME = "batch job"

    shard_bytes: int = Field(default=DEFAULT_SHARD_BYTES, ge=1024, alias="MLOPS_BATCH_SHARD_BYTES")
    tolerated_failure_percent: float = Field(default=0.0, ge=0, le=100, alias="MLOPS_BATCH_TOLERATED_FAILURE_PERCENT")


@dataclass(frozen=True)
class Dependencies:
    backends: Backends
    objects: Objects
    settings: BatchJobSettings


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """Clients built once per cold start from the environment."""
    settings = BatchJobSettings.from_env()
    backends = Backends.from_settings(settings.aws)
    return Dependencies(backends, Objects(client("s3", settings.aws), settings.aws.bucket, kms_key_id=settings.aws.kms_key_id), settings)


def handle(event: Any, deps: Dependencies | None = None) -> dict[str, Any]:
    """Run one step of the job: prepare (pin and split) or finalize (write ``_SUCCESS``)."""
    step = event.get("step") if isinstance(event, dict) else None
    if step not in (PREPARE, FINALIZE):
        raise BatchError(f"step: expected {PREPARE!r} or {FINALIZE!r}, got {step!r}")
    deps = deps or default_dependencies()
    if step == PREPARE:
        request = BatchRequest.model_validate(event.get("request"))
        job_id = request.job_id or str(event.get("execution_name") or "")
        job = prepare(
            request,
            deps.backends,
            deps.objects,
            job_id=job_id,
            shard_bytes=deps.settings.shard_bytes,
            tolerated_failure_percent=deps.settings.tolerated_failure_percent,
        )
        return {"job": job.model_dump(mode="json")}
    summary = finalize(Job.model_validate(event.get("job")), deps.objects)
    obs.metrics.add_dimension(name="model", value=str(summary["model"]))
    obs.metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=summary["rows_scored"])
    obs.metrics.add_metric(name="BatchRowsRefused", unit=MetricUnit.Count, value=summary["rows_refused"])
    return summary


@obs.logger.inject_lambda_context(log_event=False)
@obs.metrics.log_metrics
@obs.trace_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    obs.logger.info("batch step", extra={"step": event.get("step")})
    return handle(event)
