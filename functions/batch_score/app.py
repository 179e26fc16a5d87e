"""The batch workflow's Score function (inference layer: numpy, onnxruntime, msgspec, pydantic; no pandas, no
scikit-learn): one shard of a job, the child execution of the Distributed Map.

Event: ``{"job": {...}, "shard": {...}}`` (the Map's ItemSelector: the prepared job and one manifest item); the answer
is the shard's counts (``rows``, ``scored``, ``refused``, ``skipped`` when a previous run had done it). A failure is
recorded under ``batch/jobs/{job}/errors/`` (what Finalize names) and raised again, so the state machine retries the
shard. Settings: MLOPS_BUCKET, MLOPS_TABLE, MLOPS_KMS_KEY_ID and, locally, MLOPS_ENDPOINT_URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from functions.observability import observability
from serverless_mlops.aws import client
from serverless_mlops.batch.contract import Job, Shard, error_key
from serverless_mlops.batch.models import PinnedModels
from serverless_mlops.batch.objects import Objects
from serverless_mlops.batch.score import score_shard
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.lifecycle import Backends

obs = observability("batch-score")


class ScoreSettings(FunctionSettings):
    NAME = "batch score"


@dataclass(frozen=True)
class Dependencies:
    objects: Objects
    models: PinnedModels


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """Clients (and the model cache) built once per cold start from the environment."""
    settings = ScoreSettings.from_env()
    objects = Objects(client("s3", settings.aws), settings.aws.bucket, kms_key_id=settings.aws.kms_key_id)
    return Dependencies(objects, PinnedModels(Backends.from_settings(settings.aws)))


def handle(event: Any, deps: Dependencies | None = None) -> dict[str, Any]:
    """Score the event's shard with the job's pinned version."""
    job, shard = Job.model_validate(event["job"]), Shard.model_validate(event["shard"])
    deps = deps or default_dependencies()
    try:
        return score_shard(job, shard, deps.objects, deps.models.load).document()
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        deps.objects.write_json(deps.objects.bucket, error_key(job.job_id, shard.index), {"error": reason})
        raise


@obs.logger.inject_lambda_context(log_event=False)
@obs.metrics.log_metrics
@obs.trace_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = handle(event)
    obs.logger.info("shard scored", extra=result)
    return result
