"""``mlops release start|status|abort``: roll a registered version out through the release workflow (canary, linear,
all at once), see where a release stands, abort one. The logic is :mod:`serverless_mlops.release.control`; this module
parses and shows (docs/releasing.md).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from serverless_mlops.cli.common import caller_identity, emit_json, say, state, user
from serverless_mlops.errors import MlopsError

STATE_MACHINE_ENV = "MLOPS_RELEASE_STATE_MACHINE_ARN"
ModelArg = Annotated[str, typer.Argument(help="model name", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

release_app = typer.Typer(help="Roll a version out gradually, watched by guard metrics and rolled back by itself.", no_args_is_help=True)


def _bake(value: str | None) -> int | None:
    if value is None:
        return None
    from serverless_mlops.model.release_spec import duration_seconds

    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise MlopsError(f"--bake: {exc}") from exc


def _shadow_first(value: str | None) -> int | None:
    """``--shadow-first``'s duration in seconds (at most 24h, like a bake)."""
    if value is None:
        return None
    from serverless_mlops.model.release_spec import bounded_seconds

    try:
        return bounded_seconds(value)
    except ValueError as exc:
        raise MlopsError(f"--shadow-first: {exc}") from exc


@release_app.command("start")
def start(
    model: ModelArg,
    version: Annotated[int, typer.Argument(min=1, help="the registered version to roll out", show_default=False)],
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy", help="all-at-once, canary{W}-{D} (canary10-10m), linear{W}-{D} (linear20-5m) or steps; default: the spec's"
        ),
    ] = None,
    bake: Annotated[str | None, typer.Option("--bake", help="every step's bake time instead of the strategy's (30s, 10m)")] = None,
    shadow_first: Annotated[
        str | None,
        typer.Option(
            "--shadow-first",
            help="first let VERSION score production's requests in the background this long (30m, 90s, 1h); the canary "
            "follows only if it agreed with production (the spec's release.shadow)",
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="why (kept in the notification)")] = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait for the release to end and show its outcome")] = False,
    state_machine: Annotated[
        str | None,
        typer.Option(
            "--state-machine", envvar=STATE_MACHINE_ENV, help="the release state machine ARN (the stack's ReleaseStateMachineArn output)"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start releasing VERSION of MODEL (refused while another release of MODEL runs), with a shadow phase first if asked."""
    from serverless_mlops.aws import client
    from serverless_mlops.model.release_spec import check_strategy
    from serverless_mlops.release.control import start_release, wait_for_end
    from serverless_mlops.release.lock import ReleaseLockTable

    state.json = state.json or as_json
    if not state_machine:
        raise MlopsError(
            f"no release state machine: pass --state-machine ARN or set {STATE_MACHINE_ENV} (the stack's ReleaseStateMachineArn output)"
        )
    if strategy is not None:
        try:
            check_strategy(strategy)
        except ValueError as exc:
            raise MlopsError(f"--strategy: {exc}") from exc
    bake_seconds, shadow_seconds = _bake(bake), _shadow_first(shadow_first)
    backends = state.backends()
    backends.registry.describe(model, version)  # an unknown model or version fails here, naming it
    settings = state.settings()
    sfn = client("stepfunctions", settings)
    locks = ReleaseLockTable(settings.retraining_table, client("dynamodb", settings))
    arn = start_release(
        sfn,
        state_machine,
        locks,
        model,
        version,
        strategy=strategy,
        bake_seconds=bake_seconds,
        shadow_first_seconds=shadow_seconds,
        requested_by=user(),
        reason=reason,
    )
    if not wait:
        if state.json:
            emit_json({"execution_arn": arn, "status": "RUNNING"})
        else:
            say(
                f"releasing {escape(model)} v{version}: {escape(arn.rsplit(':', 1)[-1])}\n  follow it: mlops release status {escape(model)}"
            )
        return
    import json

    described = wait_for_end(sfn, arn, timeout=48 * 3600, poll_seconds=2.0)
    output = json.loads(described.get("output") or "{}")
    if state.json:
        emit_json({"execution_arn": arn, "status": described["status"], "output": output})
    else:
        outcome = output.get("outcome") or described["status"].lower()
        why = str(output.get("outcome_reason") or described.get("cause") or "")
        say(f"{escape(model)} v{version}: {escape(str(outcome))}: {escape(why)}")
    if described["status"] != "SUCCEEDED":
        raise typer.Exit(1)


@release_app.command("status")
def status(model: ModelArg, as_json: JsonOpt = False) -> None:
    """Where MODEL's release stands: production, the canary's version and weight (or the shadow phase's shadow), the running
    release and its state."""
    from serverless_mlops.aws import client
    from serverless_mlops.release.control import release_status
    from serverless_mlops.release.lock import ReleaseLockTable

    state.json = state.json or as_json
    settings = state.settings()
    locks = ReleaseLockTable(settings.retraining_table, client("dynamodb", settings))
    found = release_status(state.backends().registry, locks, model, sfn=client("stepfunctions", settings))
    if state.json:
        emit_json(found.document())
        return
    production = f"v{found.production}" if found.production is not None else "none"
    canary = f"v{found.canary.version} at {found.canary.weight:g}% (release {found.canary.release_id})" if found.canary else "none"
    say(f"{escape(model)}: production {production}; canary {escape(canary)}")
    if found.shadow is not None:
        owner = f"shadow phase of release {found.shadow.release_id}" if found.shadow.release_id else "set by hand"
        say(f"shadow: v{found.shadow.version} scores {found.shadow.sample:.0%} of requests in the background ({escape(owner)})")
    if found.release is None:
        say("no release running")
        return
    where = f", {found.execution_status} in {found.execution_state}" if found.execution_state else ""
    aborted = f"; abort requested by {found.release.aborted_by}" if found.release.aborted_by else ""
    say(f"running: {escape(found.release.describe())}{escape(where)}{escape(aborted)}\n  {escape(found.release.owner)}")


@release_app.command("abort")
def abort(
    model: ModelArg,
    reason: Annotated[str, typer.Option("--reason", help="why (in the alias history and the notification)")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Abort MODEL's running release: the canary is cleared at once (all traffic on production), the workflow ends rolled back."""
    from serverless_mlops.aws import client
    from serverless_mlops.release.control import abort_release
    from serverless_mlops.release.lock import ReleaseLockTable

    state.json = state.json or as_json
    settings = state.settings()
    locks = ReleaseLockTable(settings.retraining_table, client("dynamodb", settings))
    aborted = abort_release(state.backends().registry, locks, model, by=caller_identity(settings), reason=reason)
    if state.json:
        emit_json(aborted.model_dump(mode="json"))
        return
    say(f"aborted {escape(aborted.describe())}: all of {escape(model)}'s traffic is on production; the workflow ends rolled back")


def register_commands(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")
