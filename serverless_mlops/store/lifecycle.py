"""The operations that span the artifact store and the registry: register a training run, load a served model.

The CLI, the Lambda handlers and local mode all call these, so each step happens one way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from serverless_mlops.aws import client
from serverless_mlops.errors import MlopsError
from serverless_mlops.settings import Settings
from serverless_mlops.store.artifacts import ArtifactRef, ArtifactStore
from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry
from serverless_mlops.store.registry import PRODUCTION, Lineage, ModelVersion, Registry, Status

if TYPE_CHECKING:
    from serverless_mlops.model.fit import RunRecord, TrainedModel
    from serverless_mlops.retraining.table import RetrainingStore


@dataclass(frozen=True)
class Backends:
    store: ArtifactStore
    registry: Registry
    # the retraining workflow's locks and pending approvals (task tokens): a table apart from the registry, which
    # only the retraining functions and approvers are granted (serverless_mlops/retraining/table.py)
    retraining: RetrainingStore | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        from serverless_mlops.retraining.table import RetrainingTable

        dynamodb = client("dynamodb", settings)
        return cls(
            store=ArtifactStore(settings.bucket, client("s3", settings), kms_key_id=settings.kms_key_id),
            registry=DynamoDBRegistry(settings.table, dynamodb),
            retraining=RetrainingTable(settings.retraining_table, dynamodb),
        )

    @property
    def workflow(self) -> RetrainingStore:
        """The retraining table; an error naming the setting when these backends were built without one."""
        if self.retraining is None:
            raise MlopsError("no retraining table: set MLOPS_RETRAINING_TABLE (the stack's RetrainingTableName output)")
        return self.retraining


def lineage_of(record: RunRecord, *, run_id: str | None = None, trigger: str = "manual", execution_arn: str | None = None) -> Lineage:
    """The lineage a version records for a training run (``run_id`` overrides the run's own, for tests and tools)."""
    return Lineage(
        run_id=run_id or record.run_id,
        data_uri=record.data_uri,
        data_sha256=record.data_sha256,
        code_version=record.code_version,
        estimator=record.estimator,
        params=record.params,
        trigger=trigger,
        execution_arn=execution_arn,
        trained_at=record.trained_at,
        trained_by=record.trained_by,
        search=record.search.model_dump() if record.search else None,
    )


def register_run(
    trained: TrainedModel,
    backends: Backends,
    *,
    by: str,
    trigger: str = "manual",
    execution_arn: str | None = None,
) -> ModelVersion:
    """Upload a run's artifacts (content-addressed, so re-uploading is harmless) and register it once."""
    record = trained.record
    artifact = backends.store.put(record.model, trained.onnx_bytes, "model.onnx")
    profile = backends.store.put(record.model, trained.profile_bytes, "profile.json.gz")
    return register_record(
        backends, record, artifact, profile, by=by, lineage=lineage_of(record, trigger=trigger, execution_arn=execution_arn)
    )


def register_record(
    backends: Backends,
    record: RunRecord,
    artifact: ArtifactRef,
    profile: ArtifactRef,
    *,
    by: str,
    lineage: Lineage,
    status: Status = "registered",
    description: str | None = None,
) -> ModelVersion:
    """Register a run whose artifacts are already in the store (``lineage`` may differ from the run's own; the
    description is the spec's unless given)."""
    return backends.registry.register(
        record.model,
        signature=record.signature,
        artifact=artifact,
        profile=profile,
        metrics=record.metrics,
        parity=record.parity.model_dump(),
        lineage=lineage,
        created_by=by,
        status=status,
        description=str(record.spec.get("description", "")) if description is None else description,
        spec=record.spec,
    )


def resolve_version(backends: Backends, model: str, *, version: int | None = None, alias: str | None = None) -> ModelVersion:
    """A version by number, or the version an alias (default production) points at."""
    if version is not None:
        return backends.registry.describe(model, version)
    return backends.registry.resolve(model, alias or PRODUCTION)
