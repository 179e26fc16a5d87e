"""Retraining commands: ``mlops retrain MODEL`` starts the Step Functions workflow (deployed, or ``--local`` on an
embedded moto server with the synthesized definition), ``mlops approve`` / ``mlops reject`` answer a version that
waits for approval. The logic is :mod:`serverless_mlops.retraining.control`; this module parses and shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from serverless_mlops.cli.common import caller_identity, console, emit_json, say, state, user
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.retraining import contract as c
from serverless_mlops.settings import Settings

ModelArg = Annotated[str, typer.Argument(help="model name", show_default=False)]
VersionArg = Annotated[int, typer.Argument(min=1, help="the version waiting for approval", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
STATE_MACHINE_ENV = "MLOPS_RETRAIN_STATE_MACHINE_ARN"
TERMINAL_OUTCOMES = {
    c.STATE_PROMOTED: "promoted",
    c.STATE_NOT_PROMOTED: "not_promoted",
    c.STATE_ALREADY_RUNNING: "already_running",
    c.STATE_FAILED: "failed",
}


@dataclass
class Step:
    """One state the execution passed: when it was entered and, once it left, how long it took."""

    name: str
    entered: datetime
    seconds: float | None = None


@dataclass
class Followed:
    """What :func:`follow` saw of an execution."""

    arn: str
    status: str
    steps: list[Step] = field(default_factory=list)
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None
    terminal_entered: str | None = None  # the Succeed or Fail state, once entered
    latest_input: str = "{}"  # the workflow document as the latest state received it

    @property
    def terminal(self) -> str:
        return self.steps[-1].name if self.steps else ""

    @property
    def outcome(self) -> str:
        if self.status == "RUNNING":
            return "waiting_for_approval" if self.terminal == c.STATE_WAIT_FOR_APPROVAL else "running"
        if self.status != "SUCCEEDED":
            return "failed"
        return TERMINAL_OUTCOMES.get(self.terminal, "succeeded")

    def document(self) -> dict[str, Any]:
        return {
            "execution_arn": self.arn,
            "status": self.status,
            "state": self.terminal,
            "outcome": self.outcome,
            "states": [{"name": s.name, "seconds": s.seconds} for s in self.steps],
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
        }


def follow(
    sfn: Any,
    execution_arn: str,
    *,
    poll_seconds: float = 0.25,
    show: Callable[[str], None] | None = None,
    stop_at: str | None = None,
) -> Followed:
    """Poll the execution's history until it ends (or enters ``stop_at``), calling ``show`` with a line per event:
    each state as it is entered and left (with its time), each failed attempt of a task (e.g. a retried throttle)."""
    seen: set[int] = set()
    followed = Followed(arn=execution_arn, status="RUNNING")
    open_steps: dict[str, Step] = {}
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        for event in _history(sfn, execution_arn):
            if event["id"] in seen:
                continue
            seen.add(event["id"])
            line = _record(event, followed, open_steps)
            if line and show is not None:
                show(line)
        if described["status"] != "RUNNING" or (stop_at is not None and stop_at in open_steps):
            break
        time.sleep(poll_seconds)
    followed.status = described["status"]
    followed.output = json.loads(described.get("output") or (followed.latest_input if followed.status == "RUNNING" else "{}"))
    followed.error, followed.cause = described.get("error"), described.get("cause")
    return followed


def _history(sfn: Any, execution_arn: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {}))
        yield from page["events"]
        token = page.get("nextToken")
        if not token:
            return


def _record(event: dict[str, Any], followed: Followed, open_steps: dict[str, Step]) -> str | None:
    kind = event["type"]
    if kind.endswith("StateEntered"):
        details = event["stateEnteredEventDetails"]
        step = Step(name=details["name"], entered=event["timestamp"])
        followed.latest_input = details.get("input") or followed.latest_input
        followed.steps.append(step)
        open_steps[step.name] = step
        terminal = kind in ("SucceedStateEntered", "FailStateEntered")
        if terminal:
            followed.terminal_entered = step.name
        return f"[bold]■ {escape(step.name)}[/bold]" if terminal else f"→ {escape(step.name)}"
    if kind.endswith("StateExited"):
        name = event["stateExitedEventDetails"]["name"]
        if name not in open_steps or name == followed.terminal_entered:
            return None
        step = open_steps.pop(name)
        step.seconds = (event["timestamp"] - step.entered).total_seconds()
        return f"[green]✓[/green] {escape(step.name):<18} {step.seconds:7.2f} s"
    if kind == "TaskFailed":
        from serverless_mlops.retraining.state import TaskError

        details = event.get("taskFailedEventDetails", {})
        error = TaskError.model_validate({"Error": details.get("error", "error"), "Cause": details.get("cause", "")})
        cause = " ".join(error.message.split())[:160]
        return f"  [yellow]![/yellow] {escape(error.error)}: {escape(cause)}"
    return None


def outcome_line(followed: Followed) -> str:
    """One sentence for people: what happened to the candidate, and why."""
    from serverless_mlops.retraining.state import TaskError, WorkflowState

    output = followed.output
    document = WorkflowState.model_validate(output) if output.get("model") else None
    if followed.outcome == "promoted" and document is not None and document.promotion is not None:
        promotion = document.promotion
        reason = document.evaluation.reason if document.evaluation is not None else ""
        change = f"v{promotion.from_version} → v{promotion.to_version}" if promotion.from_version else f"v{promotion.to_version}"
        return f"[green]promoted[/green]: {escape(document.model)} {change} in production; {escape(reason)}"
    if followed.outcome == "not_promoted" and document is not None:
        number = f"v{document.version.number} " if document.version is not None else ""
        if document.approval is not None and not document.approval.approved:
            by = f" by {document.approval.by}" if document.approval.by else ""
            return f"[yellow]not promoted[/yellow]: {number}rejected{escape(by)}: {escape(document.approval.reason)}"
        if document.error is not None:  # the approval timed out
            return (
                f"[yellow]not promoted[/yellow]: {number}rejected: {escape(document.error.error)} {escape(document.error.message)}".rstrip()
            )
        reason = document.evaluation.reason if document.evaluation is not None else ""
        return f"[yellow]not promoted[/yellow]: {number}registered as rejected: {escape(reason)}"
    if followed.outcome == "already_running":
        cause = TaskError.model_validate(output["error"]).message if isinstance(output.get("error"), dict) else ""
        return f"[yellow]not started[/yellow]: another execution is retraining this model ({escape(cause)})"
    if followed.outcome == "waiting_for_approval":
        model = escape(str(output.get("model", "MODEL")))
        version = output.get("version", {}).get("number", "VERSION")
        return f"[yellow]waiting for approval[/yellow]: mlops approve {model} {version} / mlops reject {model} {version} --reason ..."
    if followed.outcome == "running":
        return "still running"
    return f"[red]failed[/red] ({escape(followed.status)}): {escape(followed.error or '')} {escape(followed.cause or '')}".rstrip()


def _report(followed: Followed) -> None:
    if state.json:
        emit_json(followed.document())
    else:
        console.print(outcome_line(followed), highlight=False)
    if followed.outcome == "failed":
        raise typer.Exit(1)


def _check_published(model: str, settings: Settings) -> None:
    """An unknown model fails here, before an execution starts: its spec is not published in the artifact bucket."""
    from botocore.exceptions import ClientError

    from serverless_mlops.aws import client
    from serverless_mlops.retraining.specs import load_published_spec

    try:
        load_published_spec(model, client("s3", settings), settings.bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            raise MlopsError(
                f"artifact bucket {settings.bucket!r} does not exist: pass --bucket (or set MLOPS_BUCKET): the ArtifactBucketName output"
            ) from exc
        raise


def retrain(
    model: ModelArg,
    reason: Annotated[str, typer.Option("--reason", help="why (kept with the new version, its alias move and the notification)")] = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow the execution to its end (always with --local)")] = False,
    local: Annotated[
        bool, typer.Option("--local", help="run the synthesized workflow on an embedded moto server, its Lambdas in this process")
    ] = False,
    state_machine: Annotated[
        str | None,
        typer.Option("--state-machine", envvar=STATE_MACHINE_ENV, help="the state machine ARN (the stack's StateMachineArn output)"),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template",
            exists=True,
            dir_okay=False,
            help="with --local: a synthesized template (default: a fresh cdk.out or build/local.out, else a synthesis)",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the retraining workflow for MODEL (manual trigger); with --wait or --local, show each state as it passes."""
    state.json = state.json or as_json
    if local:
        _retrain_local(model, reason=reason, template=template)
        return
    if not state_machine:
        raise MlopsError(
            f"no retraining state machine: pass --state-machine ARN or set {STATE_MACHINE_ENV} (the stack's StateMachineArn output), "
            "or run it locally with --local"
        )
    from serverless_mlops.aws import client
    from serverless_mlops.retraining.control import start_retraining

    settings = state.settings()
    _check_published(model, settings)
    sfn = client("stepfunctions", settings)
    execution = start_retraining(sfn, state_machine, model, trigger="manual", reason=reason, requested_by=user())
    if not wait:
        if state.json:
            emit_json({"execution_arn": execution, "status": "RUNNING"})
        else:
            say(f"started {escape(execution.rsplit(':', 1)[-1])}\n  {escape(execution)}")
            say(f"follow it: mlops retrain {model} --wait (or the Step Functions console)")
        return
    say(f"following {escape(execution)}")
    _report(follow(sfn, execution, poll_seconds=2.0, show=say))


@contextmanager
def local_deployment(template: Path | None) -> Iterator[Any]:
    """The synthesized stack (``template``, else cdk.out or build/local.out when fresh, else a synthesis) on an embedded moto server."""
    from serverless_mlops.local.deployment import deployed_locally
    from serverless_mlops.local.environment import local_template

    document, assembly, stack_name = local_template(template, announce=say)
    with deployed_locally(document, assembly, stack_name=stack_name, settings=state.settings()) as deployment:
        yield deployment


def _retrain_local(model: str, *, reason: str, template: Path | None) -> None:
    from serverless_mlops.aws import client
    from serverless_mlops.retraining.control import start_retraining

    with local_deployment(template) as deployment:
        stack = deployment.stack
        stack.output("ArtifactBucketName")  # a template without the stack's outputs fails here, naming the output
        settings = deployment.settings
        _check_published(model, settings)
        sfn = client("stepfunctions", settings)
        execution = start_retraining(sfn, stack.output("StateMachineArn"), model, trigger="manual", reason=reason, requested_by=user())
        say(f"retraining {escape(model)} on a local moto server\n  execution {escape(execution.rsplit(':', 1)[-1])}")
        try:
            followed = follow(sfn, execution, show=say, stop_at=c.STATE_WAIT_FOR_APPROVAL)
        finally:
            if sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
                sfn.stop_execution(executionArn=execution, error="LocalServerStopped", cause="mlops retrain --local ended")
        if followed.outcome == "waiting_for_approval":
            say("the spec asks for approval: the local server stops with this command, so nothing can answer it here")
        _report(followed)


def approve(
    model: ModelArg,
    version: VersionArg,
    reason: Annotated[str, typer.Option("--reason", help="why (recorded with the decision)")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve VERSION of MODEL, waiting in the retraining workflow: the execution promotes it to production."""
    _decide(model, version, approved=True, reason=reason, as_json=as_json)


def reject(
    model: ModelArg,
    version: VersionArg,
    reason: Annotated[str, typer.Option("--reason", help="why (required; recorded with the decision and in the notification)")],
    as_json: JsonOpt = False,
) -> None:
    """Reject VERSION of MODEL, waiting in the retraining workflow: it is marked rejected and production stays as it is."""
    _decide(model, version, approved=False, reason=reason, as_json=as_json)


def _decide(model: str, version: int, *, approved: bool, reason: str, as_json: bool) -> None:
    from serverless_mlops.aws import client
    from serverless_mlops.retraining import control

    state.json = state.json or as_json
    backends = state.backends()
    if not backends.registry.model_exists(model):
        raise NotFoundError(f"model {model!r} is not registered")
    settings = state.settings()
    sfn = client("stepfunctions", settings)
    answer = control.approve if approved else control.reject
    # who decides is who AWS says is calling (STS), not a name the caller picks
    record = answer(backends, sfn, model, version, by=caller_identity(settings), reason=reason)
    if state.json:
        emit_json(record.model_dump(exclude={"token"}))
        return
    if approved:
        say(f"approved {escape(model)} v{version}: the waiting execution promotes it\n  {escape(record.execution_arn)}")
    else:
        say(f"rejected {escape(model)} v{version}: production stays as it is\n  {escape(record.execution_arn)}")


def register_commands(app: typer.Typer) -> None:
    app.command()(retrain)
    app.command()(approve)
    app.command()(reject)
