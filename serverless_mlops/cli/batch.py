"""``mlops batch score MODEL --input s3://… --output s3://…``: start the batch scoring workflow (infra/batch.py) on a
deployed stack and, with ``--wait``, follow it to ``_SUCCESS``. The logic is :mod:`serverless_mlops.batch.control`."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape

from serverless_mlops.aws import client
from serverless_mlops.batch.contract import BatchRequest
from serverless_mlops.batch.control import start_job, wait_job
from serverless_mlops.cli.common import emit_json, say, state
from serverless_mlops.errors import MlopsError

STATE_MACHINE_ENV = "MLOPS_BATCH_STATE_MACHINE_ARN"
batch_app = typer.Typer(help="Batch scoring: a table of any size on S3, scored by one pinned version (Step Functions Distributed Map).")


@batch_app.command("score")
def score(
    model: Annotated[str, typer.Argument(help="model name", show_default=False)],
    input_uri: Annotated[
        str, typer.Option("--input", help="s3://bucket/prefix: every .csv, .jsonl and .ndjson object under it", show_default=False)
    ],
    output_uri: Annotated[
        str, typer.Option("--output", help="s3://bucket/prefix/: output shards, refused rows and _SUCCESS", show_default=False)
    ],
    version: Annotated[int | None, typer.Option("--version", min=1, help="score with this version")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="score with the version this alias names now (default production)")] = None,
    job_id: Annotated[
        str | None, typer.Option("--job-id", help="name the job; starting a job id again resumes it (default: MODEL-TIMESTAMP-XXXX)")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow the job to its end; exit 1 when it fails")] = False,
    state_machine: Annotated[
        str | None,
        typer.Option(
            "--state-machine", envvar=STATE_MACHINE_ENV, help="the batch state machine ARN (the stack's BatchStateMachineArn output)"
        ),
    ] = None,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", min=0.01, help="with --wait: how often to look")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Score every row under --input with MODEL's version (--version, or the alias resolved once when the job starts)."""
    if state_machine is None:
        raise MlopsError(
            f"no batch state machine: pass --state-machine ARN or set {STATE_MACHINE_ENV} (the stack's BatchStateMachineArn output)"
        )
    try:
        request = BatchRequest(model=model, input=input_uri, output=output_uri, version=version, alias=alias, job_id=job_id)
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(part for part in (".".join(map(str, e["loc"])), e["msg"].removeprefix("Value error, ")) if part) for e in exc.errors()
        )
        raise MlopsError(f"invalid batch job: {problems}") from None
    settings = state.settings()
    sfn = client("stepfunctions", settings)
    request, execution = start_job(sfn, state_machine, request)
    if not wait:
        if as_json:
            emit_json({"job_id": request.job_id, "execution_arn": execution, "status": "RUNNING"})
        else:
            say(f"started batch job {escape(str(request.job_id))}\n  execution {escape(execution)}")
        return
    if not as_json:
        say(f"batch job {escape(str(request.job_id))} running: {escape(execution.rsplit(':', 1)[-1])}")
    outcome = wait_job(sfn, client("s3", settings), execution, request, poll_seconds=poll_seconds)
    if as_json:
        emit_json({"job_id": request.job_id, **outcome.document()})
    if outcome.summary is None:
        raise MlopsError(
            f"batch job {request.job_id} {outcome.status.lower()}: {outcome.cause or outcome.error or 'see the execution history'}"
        )
    if not as_json:
        s = outcome.summary
        say(
            f"done: {s['rows_in']:,} rows in, {s['rows_scored']:,} scored, {s['rows_refused']:,} refused by version {s['version']} "
            f"in {s['duration_seconds']:.1f} s ({s['shards']} shards)\n  {escape(request.output_prefix)}_SUCCESS"
        )


def register_commands(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
