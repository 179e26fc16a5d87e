"""Prepare: pin the version a job scores with and split its input into shards, written as the job's JSON manifest.

The alias is resolved once, here: every shard is scored by the version pinned in ``batch/jobs/{job}/job.json``, however the
alias moves while the job runs. Splitting reads no data: a shard is a byte range of one object (``shard_bytes`` at
most), and Score finishes the line that straddles its end (:meth:`Objects.blocks`). Only a CSV object's first line is
read, to check that it names every feature. A re-run with the same job id finds ``job.json`` and returns the job as it
was pinned (same version, same manifest), so Score skips the shards already done.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from serverless_mlops.batch.contract import (
    FORMATS,
    PREDICTION_COLUMN,
    PROBABILITY_PREFIX,
    VERSION_COLUMN,
    BatchError,
    BatchRequest,
    Job,
    Shard,
    job_key,
    manifest_key,
    parse_s3_uri,
    part_name,
)
from serverless_mlops.batch.objects import Objects
from serverless_mlops.model.signature import Signature
from serverless_mlops.store.lifecycle import Backends, resolve_version

HEADER_BYTES = 64 << 10  # a CSV header longer than this is refused


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def output_columns(signature: Signature) -> list[str]:
    """The columns Score adds to each row: the prediction, one probability per class (classifiers), the version."""
    columns = [PREDICTION_COLUMN]
    if signature.is_classification and signature.probabilities_output is not None and signature.classes is not None:
        columns += [f"{PROBABILITY_PREFIX}{label}" for label in signature.classes]
    return [*columns, VERSION_COLUMN]


def list_inputs(objects: Objects, uri: str) -> list[dict[str, Any]]:
    """Every non-empty object under the input prefix (``Key``, ``Size``), in key order."""
    bucket, prefix = parse_s3_uri(uri, "input")
    found: list[dict[str, Any]] = []
    for page in objects.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item for item in page.get("Contents", []) if item["Size"] > 0 and not item["Key"].endswith("/")]
    if not found:
        raise BatchError(f"input: no objects under {uri}")
    return sorted(found, key=lambda item: str(item["Key"]))


def csv_header(objects: Objects, bucket: str, key: str, size: int, signature: Signature) -> str:
    """The CSV object's first line, checked to name every feature and none of the columns Score adds."""
    head = objects.read_range(bucket, key, 0, min(size, HEADER_BYTES) - 1)
    newline = head.find(b"\n")
    if newline < 0 and size > HEADER_BYTES:
        raise BatchError(f"s3://{bucket}/{key}: the first line (the CSV header) is longer than {HEADER_BYTES:,} bytes")
    try:
        line = (head if newline < 0 else head[:newline]).decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise BatchError(f"s3://{bucket}/{key}: the CSV header is not UTF-8 text") from exc
    columns = next(csv.reader([line]), [])
    missing = [name for name in signature.feature_names if name not in columns]
    if missing:
        raise BatchError(f"s3://{bucket}/{key}: the CSV header lacks feature column(s) {', '.join(missing)} of model {signature.model!r}")
    taken = [name for name in output_columns(signature) if name in columns]
    if taken:
        raise BatchError(f"s3://{bucket}/{key}: the CSV header already has column(s) {', '.join(taken)}, which scoring adds")
    return line


def plan_shards(objects: Objects, request: BatchRequest, signature: Signature, shard_bytes: int) -> list[Shard]:
    """The shards of every input object: byte ranges of at most ``shard_bytes``."""
    bucket, _ = parse_s3_uri(request.input, "input")
    out_bucket, out_prefix = parse_s3_uri(request.output_prefix, "output")
    if out_bucket == bucket and out_prefix.startswith(parse_s3_uri(request.input, "input")[1]):
        raise BatchError(f"output {request.output} lies under input {request.input}: a re-run would score its own output")
    shards: list[Shard] = []
    for item in list_inputs(objects, request.input):
        key, size = str(item["Key"]), int(item["Size"])
        fmt = FORMATS.get(PurePosixPath(key).suffix.lower())
        if fmt is None:
            raise BatchError(f"s3://{bucket}/{key}: not a CSV (.csv) or JSON Lines (.jsonl, .ndjson) object")
        header = csv_header(objects, bucket, key, size, signature) if fmt == "csv" else None
        for start in range(0, size, shard_bytes):
            index = len(shards)
            shards.append(
                Shard(
                    index=index,
                    bucket=bucket,
                    key=key,
                    start=start,
                    end=min(start + shard_bytes, size),
                    size=size,
                    format=fmt,
                    header=header,
                    output=request.output_prefix + part_name(index, fmt),
                )
            )
    return shards


def prepare(
    request: BatchRequest,
    backends: Backends,
    objects: Objects,
    *,
    job_id: str,
    shard_bytes: int,
    tolerated_failure_percent: float = 0.0,
) -> Job:
    """The job for ``request``: pinned and split now, or, for a job id seen before, as it was pinned then."""
    started = _now()
    stored = objects.read_json(objects.bucket, job_key(job_id))
    if stored is not None:
        job = Job.model_validate(stored)
        if job.request.model_copy(update={"job_id": None}) != request.model_copy(update={"job_id": None}):
            raise BatchError(
                f"job id {job_id!r} was used for another job ({job.request.model}: {job.request.input} → {job.request.output})"
            )
        return job.model_copy(update={"started": started})
    entry = resolve_version(backends, request.model, version=request.version, alias=request.alias)
    shards = plan_shards(objects, request, entry.signature, shard_bytes)
    job = Job(
        job_id=job_id,
        model=request.model,
        version=entry.version,
        request=request.model_copy(update={"job_id": job_id}),
        manifest_bucket=objects.bucket,
        manifest_key=manifest_key(job_id),
        shards=len(shards),
        objects=len({shard.key for shard in shards}),
        bytes=sum(shard.end - shard.start for shard in shards),
        created=started,
        started=started,
        tolerated_failure_percent=tolerated_failure_percent,
    )
    objects.write_json(objects.bucket, job.manifest_key, [shard.model_dump() for shard in shards])
    objects.write_json(objects.bucket, job_key(job_id), job.model_dump(mode="json"))  # last: its presence means the manifest is there
    return job
