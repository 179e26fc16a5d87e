"""The pluggable Train contract: a run folder in S3 and the S3 reads and writes the steps share.

Any trainer (this project's Lambda, a SageMaker training job, an ECS Fargate task) that writes the
:class:`~serverless_mlops.model.fit.TrainedModel` folder layout — ``model.onnx``, ``profile.json.gz``, ``run.json`` —
to ``s3://{bucket}/runs/{model}/{execution name}/`` can stand in for the Train state: Evaluate collects the folder
itself when the state has no ``candidate``. No scikit-learn here: the release function (inference layer) reads
run records too.
"""

from __future__ import annotations

from typing import Any

from serverless_mlops.errors import DataError, NotFoundError
from serverless_mlops.model.fit import (
    MODEL_FILE,
    PROFILE_FILE,
    RUN_FILE,
    RunRecord,
    TrainedModel,
    sha256_hex,  # noqa: F401 - one definition, still importable from here (tests, trainers)
)
from serverless_mlops.retraining.contract import RUNS_PREFIX, SNAPSHOTS_PREFIX
from serverless_mlops.store.artifacts import ArtifactStore, encryption_args, read_failure


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise DataError(f"{uri}: expected s3://bucket/key")
    return bucket, key


def read_object(s3: Any, uri: str) -> bytes:
    """The bytes at an s3:// URI; a missing object is a NotFoundError naming the URI."""
    bucket, key = split_uri(uri)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
    except s3.exceptions.NoSuchBucket as exc:
        raise NotFoundError(f"{uri}: no such bucket") from exc
    except s3.exceptions.ClientError as exc:
        if (meaning := read_failure(exc)) is None:
            raise
        raise NotFoundError(f"{uri}: {meaning}") from exc


def put_object(store: ArtifactStore, key: str, body: bytes, content_type: str) -> str:
    """Write ``body`` at ``key`` of the artifact bucket, encrypted as the store encrypts; returns its s3:// URI."""
    store.s3.put_object(Bucket=store.bucket, Key=key, Body=body, ContentType=content_type, **encryption_args(store.kms_key_id))
    return f"s3://{store.bucket}/{key}"


def snapshot_key(model: str, sha256: str) -> str:
    return f"{SNAPSHOTS_PREFIX}/{model}/{sha256}.csv"


def run_prefix(model: str, execution_name: str) -> str:
    return f"{RUNS_PREFIX}/{model}/{execution_name}"


def write_run(store: ArtifactStore, model: str, execution_name: str, trained: TrainedModel) -> str:
    """Write the run folder (what ``TrainedModel.write`` writes locally) to S3; returns the run.json URI."""
    prefix = run_prefix(model, execution_name)
    put_object(store, f"{prefix}/{MODEL_FILE}", trained.onnx_bytes, "application/octet-stream")
    put_object(store, f"{prefix}/{PROFILE_FILE}", trained.profile_bytes, "application/gzip")
    return put_object(store, f"{prefix}/{RUN_FILE}", trained.record.model_dump_json(indent=2).encode(), "application/json")


def read_record(s3: Any, uri: str) -> RunRecord:
    try:
        return RunRecord.model_validate_json(read_object(s3, uri))
    except ValueError as exc:
        raise DataError(f"{uri}: unreadable run record: {str(exc).splitlines()[0]}") from exc


def read_run(store: ArtifactStore, model: str, execution_name: str) -> tuple[str, TrainedModel]:
    """The run folder a trainer wrote for this execution: (run.json URI, its contents)."""
    prefix = f"s3://{store.bucket}/{run_prefix(model, execution_name)}"
    record_uri = f"{prefix}/{RUN_FILE}"
    try:
        record = read_record(store.s3, record_uri)
        onnx_bytes = read_object(store.s3, f"{prefix}/{MODEL_FILE}")
        profile_bytes = read_object(store.s3, f"{prefix}/{PROFILE_FILE}")
    except NotFoundError as exc:
        raise NotFoundError(
            f"model {model!r}: the trainer left no complete run folder at {prefix}/ ({exc}); "
            f"a trainer must write {MODEL_FILE}, {PROFILE_FILE} and {RUN_FILE} there"
        ) from exc
    return record_uri, TrainedModel(record=record, onnx_bytes=onnx_bytes, profile_bytes=profile_bytes)
