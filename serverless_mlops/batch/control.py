"""Starting a batch job and waiting for it: what ``mlops batch score`` calls (the deployed machine's input is a
:class:`BatchRequest`; its ``job_id`` names the job's records, so starting the same job id again resumes it)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from serverless_mlops.batch.contract import SUCCESS, BatchError, BatchRequest, parse_s3_uri

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def new_job_id(model: str) -> str:
    """``{model}-{yyyymmddThhmmss}-{4 hex}``: readable, sortable, unique enough to need no lookup."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in model)[:50]
    return f"{safe}-{stamp}-{uuid.uuid4().hex[:4]}"


def start_job(sfn: Any, state_machine_arn: str, request: BatchRequest) -> tuple[BatchRequest, str]:
    """Start the batch machine for ``request`` (a job id is made when it has none); (the request sent, execution ARN).

    Each start is its own execution (named ``{job id}-{8 hex}``): Step Functions keeps an execution name for 90 days,
    while a job id may be started again to resume it."""
    if request.job_id is None:
        request = request.model_copy(update={"job_id": new_job_id(request.model)})
    assert request.job_id is not None
    name = f"{request.job_id[:71]}-{uuid.uuid4().hex[:8]}"
    started = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=request.model_dump_json(exclude_none=True))
    return request, str(started["executionArn"])


@dataclass(frozen=True)
class JobOutcome:
    execution_arn: str
    status: str
    summary: dict[str, Any] | None  # the _SUCCESS document
    error: str | None
    cause: str | None

    def document(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "status": self.status,
            "summary": self.summary,
            "error": self.error,
            "cause": self.cause,
        }


def wait_job(
    sfn: Any,
    s3: Any,
    execution_arn: str,
    request: BatchRequest,
    *,
    poll_seconds: float = 2.0,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobOutcome:
    """Poll the execution until it ends; a success comes with the ``_SUCCESS`` document Finalize wrote."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise BatchError(f"{execution_arn}: still running after {timeout_seconds:g} s")
        sleep(poll_seconds)
    summary = None
    if described["status"] == "SUCCEEDED":
        bucket, prefix = parse_s3_uri(request.output_prefix, "output")
        summary = json.loads(s3.get_object(Bucket=bucket, Key=prefix + SUCCESS)["Body"].read())
    return JobOutcome(execution_arn, described["status"], summary, described.get("error"), described.get("cause"))
