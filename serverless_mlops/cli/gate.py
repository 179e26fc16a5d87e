"""``mlops retrain-if-changed``: the model gate a deploy pipeline runs after each stage, before the smoke test.

For each deployed model (``--model``, else the inference function's ``MLOPS_MODELS`` with ``--stack``) it compares the
published spec (what the deploy just put in ``specs/{model}/``) with the spec the production version was trained from
(:mod:`serverless_mlops.retraining.spec_change`). A change to what the model is trained from starts the retraining
workflow and follows it to its end, one line per state, then one outcome line; a change to drift settings, evaluation
or the description does not retrain. Exit 1 when a retraining fails or its candidate is not promoted (the deployed spec
is then not what production serves); a candidate waiting for approval is reported with the command that answers it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from serverless_mlops.cli.common import say, state, user
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.retraining import contract as c
from serverless_mlops.retraining.spec_change import Decision, decide
from serverless_mlops.settings import Settings

FAILING_OUTCOMES = ("failed", "not_promoted", "already_running")


def stack_outputs(stack: str, settings: Settings) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_mlops.aws import client

    try:
        described = client("cloudformation", settings).describe_stacks(StackName=stack)["Stacks"][0]
    except (BotoCoreError, ClientError) as exc:
        raise MlopsError(f"cannot describe stack {stack}: {exc}") from exc
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def decisions(models: list[str], settings: Settings) -> list[Decision]:
    """The gate's decision for each model: its published spec against its production version's."""
    from serverless_mlops.aws import client
    from serverless_mlops.retraining.specs import load_published_spec
    from serverless_mlops.store.lifecycle import Backends
    from serverless_mlops.store.registry import PRODUCTION

    registry = Backends.from_settings(settings).registry
    s3 = client("s3", settings)
    found = []
    for model in models:
        deployed = load_published_spec(model, s3, settings.bucket)  # NotFoundError names the model and where it looked
        try:
            production: dict[str, Any] | None = registry.resolve(model, PRODUCTION).spec
        except NotFoundError:
            production = None
        found.append(decide(model, deployed, production))
    return found


def retrain_if_changed(
    stack: Annotated[
        str | None, typer.Option("--stack", help="a deployed stack: its outputs name the bucket, tables and workflow; its served models")
    ] = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="decide for this model (repeatable; default: the served models)")
    ] = None,
    state_machine: Annotated[
        str | None, typer.Option("--state-machine", help="the retraining workflow's ARN (default: the stack's StateMachineArn output)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would retrain; start nothing")] = False,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", min=0.05, max=60, help="how often to read the execution's history")
    ] = 5.0,
) -> None:
    """Retrain each deployed model whose spec changed what it is trained from (not drift settings), and wait for each
    workflow's end. One line per decision and per state; exit 1 if a retraining fails or is not promoted."""
    from serverless_mlops.aws import client
    from serverless_mlops.cli.retrain import follow, outcome_line
    from serverless_mlops.retraining.control import start_retraining

    settings = state.settings()
    names = list(dict.fromkeys(models or []))
    if stack is not None:
        from serverless_mlops.cli.smoke import stack_target

        outputs = stack_outputs(stack, settings)
        settings = settings.model_copy(
            update={
                "bucket": outputs.get("ArtifactBucketName", settings.bucket),
                "table": outputs.get("RegistryTableName", settings.table),
                "retraining_table": outputs.get("RetrainingTableName", settings.retraining_table),
            }
        )
        state_machine = state_machine or outputs.get("StateMachineArn")
        names = names or stack_target(stack, settings, [], None).models
    if not names:
        raise MlopsError("no model to decide for: pass --model NAME, or --stack NAME whose inference function serves models")
    if not state_machine and not dry_run:
        raise MlopsError("no retraining workflow: pass --state-machine ARN or --stack NAME (its StateMachineArn output)")
    failed = []
    for decision in decisions(names, settings):
        if not decision.retrain:
            _line(f"- {decision.model}: no retraining: {decision.reason}")
            continue
        _line(f"↻ {decision.model}: retraining: {decision.reason}")
        if dry_run:
            continue
        sfn = client("stepfunctions", settings)
        execution = start_retraining(
            sfn, str(state_machine), decision.model, trigger="manual", reason=f"deploy: {decision.reason}", requested_by=user()
        )
        _line(f"  following {execution}")
        followed = follow(sfn, execution, poll_seconds=poll_seconds, show=say, stop_at=c.STATE_WAIT_FOR_APPROVAL)
        say(f"  {outcome_line(followed)}")
        if followed.outcome in FAILING_OUTCOMES:
            failed.append(f"{decision.model} ({followed.outcome.replace('_', ' ')})")
    if failed:
        raise MlopsError(f"retraining after the deploy did not put the deployed spec in production: {', '.join(failed)}")


def _line(text: str) -> None:
    """One line, never wrapped (a pipeline's log keeps it whole)."""
    if not state.json:
        typer.echo(text)


def register_commands(app: typer.Typer) -> None:
    app.command("retrain-if-changed")(retrain_if_changed)
