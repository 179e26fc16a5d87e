"""What the batch workflow's parts share: the job request, the pinned job, a shard, where each object is written.

Layout (``{output}`` is the job's output prefix, ``{job}`` its id, ``batch/`` a prefix of the artifact bucket):

- ``{output}part-00000.csv`` (or ``.jsonl``): one output object per shard, the shard's rows with the prediction
  columns and ``model_version`` (CSV in, CSV out; JSON Lines in, JSON Lines out);
- ``{output}refused/part-00000.jsonl``: the shard's refused rows, one line each naming the object, the row's byte
  offset in it, the field and the problem (written only when a row was refused);
- ``{output}_SUCCESS``: the job's manifest (rows in, scored, refused, version, duration, the shards), written last;
  ``{output}_FAILED`` instead when more shards failed than the tolerated share;
- ``batch/jobs/{job}/job.json`` (the pinned job), ``batch/jobs/{job}/manifest.json`` (the shards: what the Distributed Map's
  ItemReader reads), ``batch/jobs/{job}/done/00000.json`` (a shard's counts, written after its output: a re-run with the
  same job id skips that shard), ``batch/jobs/{job}/errors/00000.json`` (why a shard's last attempt failed).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serverless_mlops.errors import MlopsError

PREFIX = "batch/jobs"  # the jobs' own records; batch/ is also where inputs and outputs in the artifact bucket go
SUCCESS = "_SUCCESS"
FAILED = "_FAILED"
VERSION_COLUMN = "model_version"
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
FORMATS: dict[str, Literal["csv", "jsonl"]] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl"}
JOB_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}"  # a Step Functions execution name can be one

# the workflow's states (the CLI and the tests follow them by name)
STATE_PREPARE = "Prepare"
STATE_SCORE_SHARDS = "ScoreShards"
STATE_SCORE = "Score"
STATE_SHARD_FAILED = "ShardFailed"
STATE_FINALIZE = "Finalize"
STATE_SUCCEEDED = "Succeeded"
STATE_FAILED = "Failed"
PREPARE = "prepare"
FINALIZE = "finalize"
STEPS = (PREPARE, FINALIZE)
# Finalize raises this when more shards failed than the job tolerates; the machine's Fail state carries its message
JOB_FAILED_ERROR = "BatchJobFailed"


class BatchError(MlopsError):
    """A batch job cannot run as asked: the message names the object, column or setting."""


class BatchJobFailed(BatchError):
    """More shards failed than the job tolerates; the message names them."""


def parse_s3_uri(uri: str, what: str) -> tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/key``; a :class:`BatchError` naming ``what`` otherwise."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.*)", uri)
    if match is None:
        raise BatchError(f"{what}: expected s3://BUCKET/PREFIX, got {uri!r}")
    return match.group(1), match.group(2)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BatchRequest(_Frozen):
    """What starts a job (the state machine's input; ``mlops batch score`` sends it)."""

    model: Annotated[str, Field(min_length=1)]
    input: str = Field(description="s3://bucket/prefix: every CSV (.csv) and JSON Lines (.jsonl, .ndjson) object under it")
    output: str = Field(description="s3://bucket/prefix/: where the output shards and _SUCCESS go")
    version: Annotated[int, Field(ge=1)] | None = None
    alias: Annotated[str, Field(min_length=1)] | None = None
    job_id: Annotated[str, Field(pattern=f"^{JOB_ID_PATTERN}$")] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> BatchRequest:
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        try:
            parse_s3_uri(self.input, "input")
            parse_s3_uri(self.output, "output")
        except BatchError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def output_prefix(self) -> str:
        """The output URI ending with ``/`` (objects go under it, never beside it)."""
        return self.output if self.output.endswith("/") else self.output + "/"


class Shard(_Frozen):
    """One manifest item: the lines of ``key`` that start in bytes [start, end), scored into ``output``."""

    index: int
    bucket: str
    key: str
    start: int
    end: int
    size: int  # the whole object's size: reading past ``end`` to finish the shard's last line stops there
    format: Literal["csv", "jsonl"]
    header: str | None = None  # CSV: the object's first line (the column names)
    output: str  # s3://... of the output object

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key} bytes {self.start}-{self.end}"


class Job(_Frozen):
    """A prepared job: the version pinned for every shard, where its manifest is, what it tolerates."""

    job_id: str
    model: str
    version: int
    request: BatchRequest
    manifest_bucket: str
    manifest_key: str
    shards: int
    objects: int
    bytes: int
    created: str
    started: str
    tolerated_failure_percent: float = 0.0


def job_key(job_id: str) -> str:
    return f"{PREFIX}/{job_id}/job.json"


def manifest_key(job_id: str) -> str:
    return f"{PREFIX}/{job_id}/manifest.json"


def done_key(job_id: str, index: int) -> str:
    return f"{PREFIX}/{job_id}/done/{index:05d}.json"


def error_key(job_id: str, index: int) -> str:
    return f"{PREFIX}/{job_id}/errors/{index:05d}.json"


def part_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}.{EXTENSIONS[fmt]}"


def refused_uri(output_prefix: str, index: int) -> str:
    return f"{output_prefix}refused/part-{index:05d}.jsonl"
