"""``mlops local``: the whole stack on this machine (moto, the provisioned template, the Lambdas in-process, the HTTP
API) as a background daemon that other shells use and ``mlops local down`` stops; the commands and what they print.

``up`` resolves the template in the foreground (cdk.out or build/local.out when fresh, else a synthesis it
announces), starts the daemon (:mod:`serverless_mlops.cli.local_daemon`: the process, its state file and log), trains
and promotes the deployed models once the stack answers, and prints what to try next. ``status``, ``env``, ``tick``
and ``alerts`` read the state file from any shell; ``down`` stops the daemon and removes it.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from serverless_mlops.cli.common import console, emit_json, say, state
from serverless_mlops.cli.local_daemon import (
    STOP_SECONDS,
    current,
    daemon_command,
    log_path,
    make_state_dir,
    recorded_start,
    remove_state,
    run_stack,
    running,
    start_daemon,
    state_path,
    stop_daemon,
)
from serverless_mlops.cli.ui import DEFAULT_PORT as UI_PORT
from serverless_mlops.errors import MlopsError

if TYPE_CHECKING:
    from serverless_mlops.local.environment import LocalInfo, Seeded

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

local_app = typer.Typer(
    name="local",
    help="Run the whole stack on this machine (moto, no AWS, no docker) in the background: up, use it from any shell, down.",
    no_args_is_help=True,
)


# -- what to show ---------------------------------------------------------------------------------------------------


def uptime(started_at: str, now: datetime | None = None) -> str:
    try:
        started = datetime.fromisoformat(started_at)
    except ValueError:
        return "?"
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - started).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def export_lines(environment: dict[str, str]) -> list[str]:
    return [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]


def next_steps(info: LocalInfo, example: str | None, model: str | None) -> list[str]:
    """The commands to try next, each one working as printed (``example``: a curl line, when a model is in production)."""
    name = model or (info.models[0] if info.models else "MODEL")
    lines = ['eval "$(mlops local env)"    # this shell now talks to the local stack']
    if example:
        lines.append(example)
    else:  # started with --no-train
        lines.append(f"mlops retrain {name} --wait    # nothing is in production yet: this trains {name} and promotes it")
    lines += [
        f"curl -s {info.api_url}/openapi.json    # the API's OpenAPI document",
        "mlops list",
        f"mlops ui    # the console on http://127.0.0.1:{UI_PORT}: models, versions, drift, quality, retraining (Ctrl-C stops)",
        f"mlops local tick {name}    # run its drift check now (the schedule's stand-in)",
        "mlops local alerts --wait 5    # what the alert topic's subscribers received",
    ]
    if example:
        lines += [
            f"mlops retrain {name} --wait    # the workflow promotes the candidate only if it beats production (the gate)",
            f"mlops rollback {name} --reason 'back to the previous version'    # after a promotion: production goes back one version",
        ]
    return [*lines, "mlops local down"]


def fired_line(fired: Any) -> str:
    """One line per fired schedule target: the rule, then the drift check's outcome (or the error)."""
    result = fired.result if isinstance(fired.result, dict) else {"result": fired.result}
    head = fired.target.description
    if fired.errored:
        error = result.get("errorType") or result.get("error") or "error"
        message = " ".join(str(result.get("errorMessage") or result.get("cause") or "").split())[:200]
        return f"✗ {head}: {error}: {message}".rstrip(": ")
    if "status" not in result:
        return f"✓ {head}: {json.dumps(result, default=str)[:200]}"
    parts = [str(result["status"])]
    if result.get("version") is not None:
        parts[0] = f"v{result['version']} {parts[0]}"
    if result.get("rows") is not None:
        parts.append(f"{result['rows']} rows")
    if result.get("drifted_share") is not None and result["status"] != "insufficient_data":
        features = result.get("drifted_features") or []
        parts.append(f"drifted share {float(result['drifted_share']):.2f}" + (f" ({', '.join(map(str, features))})" if features else ""))
    if result.get("alerted"):
        parts.append("alert sent")
    elif result.get("alert_note"):
        parts.append(f"no alert: {result['alert_note']}")
    if result.get("retraining_execution"):
        parts.append(f"retraining {str(result['retraining_execution']).rsplit(':', 1)[-1]}")
    if result.get("report"):
        parts.append(f"report {_report_uri(result['report'])}")
    return f"✓ {head}: {', '.join(parts)}"


def _report_uri(report: Any) -> str:
    if isinstance(report, dict):
        return str(report.get("html") or report.get("json") or next(iter(report.values()), ""))
    return str(report)


def alert_line(alert: Any) -> str:
    """An alert's subject and the gist of its message."""
    message = alert.message
    if isinstance(message, dict):
        keys = ("outcome", "status", "severity", "version", "rows", "drifted_share", "reason", "report")
        gist = ", ".join(f"{k}={message[k]}" for k in keys if message.get(k) not in (None, "", []))
    else:
        gist = " ".join(str(message).split())
    gist = gist if len(gist) <= 300 else gist[:300] + " …"
    return f"{alert.subject or '(no subject)'}: {gist}" if gist else str(alert.subject or "(no subject)")


def _status_rows(info: LocalInfo) -> list[tuple[str, str]]:
    return [
        ("pid", str(info.pid)),
        ("uptime", uptime(info.started_at)),
        ("stack", info.stack_name),
        ("AWS endpoint", info.endpoint_url),
        ("API", info.api_url),
        ("bucket", info.bucket),
        ("table", info.table),
        ("state machine", info.state_machine_arn),
        ("alert topic", info.alert_topic_arn),
        ("models", ", ".join(info.models) or "(none)"),
        ("log", str(log_path())),
    ]


# -- commands -------------------------------------------------------------------------------------------------------


def _seed(info: LocalInfo) -> None:
    from serverless_mlops.local.environment import seed_models
    from serverless_mlops.local.moto import use_fake_credentials

    use_fake_credentials()  # this process talks to moto only: never sign with a real account's keys
    say(f"training and promoting the deployed models ({escape(', '.join(info.models))}) …")
    for seeded in seed_models(info.settings, info.models):
        say(f"  {escape(seeded_line(seeded))}")


def seeded_line(seeded: Seeded) -> str:
    return f"{seeded.model:<14} v{seeded.version} in production  {seeded.metric}={seeded.value:.3f}  ({seeded.seconds:.1f} s)"


def _show_ready(info: LocalInfo, *, foreground: bool) -> None:
    from serverless_mlops.cli.serve import curl_example
    from serverless_mlops.local.moto import use_fake_credentials
    from serverless_mlops.store.lifecycle import Backends

    use_fake_credentials()
    backends = Backends.from_settings(info.settings)
    example, model = None, None
    for name in info.models:
        if _in_production(backends, name):
            example, model = curl_example(info.api_url, backends, [name]), name
            break
    if state.json:
        emit_json(json.loads(info.model_dump_json()) | {"example": example})
        return
    how = "in this terminal; Ctrl-C stops it" if foreground else f"pid {info.pid}; log {log_path()}"
    console.print(f"[green]the local stack is up[/green] ({escape(how)})", highlight=False, soft_wrap=True)
    typer.echo(f"  API {info.api_url}\n  AWS endpoint {info.endpoint_url} (bucket {info.bucket}, table {info.table})")
    say("try next:")
    typer.echo("\n".join(f"  {line}" for line in next_steps(info, example, model)))


def _in_production(backends: Any, name: str) -> bool:
    from serverless_mlops.errors import NotFoundError
    from serverless_mlops.store.registry import PRODUCTION

    try:
        backends.registry.resolve(name, PRODUCTION)
    except NotFoundError:
        return False
    return True


@local_app.command()
def up(
    aws_port: Annotated[int, typer.Option("--aws-port", min=0, max=65535, help="the moto server's port (0: a free one)")] = 0,
    api_port: Annotated[int, typer.Option("--api-port", min=0, max=65535, help="the HTTP API's port (0: a free one)")] = 8080,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template",
            help="a synthesized template (default: cdk.out or build/local.out when fresh, else a synthesis into the latter)",
        ),
    ] = None,
    train: Annotated[bool, typer.Option("--train/--no-train", help="train and promote the deployed models once the stack is up")] = True,
    foreground: Annotated[bool, typer.Option("--foreground", help="run in this terminal until Ctrl-C, not in the background")] = False,
) -> None:
    """Start the stack in the background: moto on 127.0.0.1, the template's resources, the Lambdas, the HTTP API."""
    from serverless_mlops.local.environment import check_port, local_template

    existing = current()
    if existing is not None:
        raise MlopsError(f"a local stack is already running (pid {existing.pid}, API {existing.api_url}): run mlops local down first")
    if api_port and api_port == aws_port:
        raise MlopsError(f"--api-port and --aws-port are both {api_port}: the HTTP API and moto need a port each (0 picks a free one)")
    check_port("--api-port", api_port)
    check_port("--aws-port", aws_port)
    make_state_dir()
    _, assembly, stack_name = local_template(template, announce=say)
    assembly = Path(assembly).resolve()
    template_file = assembly / f"{stack_name}.template.json"
    state_file = state_path()

    def ready(info: LocalInfo) -> None:
        if train:
            _seed(info)
        _show_ready(info, foreground=foreground)

    if foreground:
        say(f"starting the local stack in this terminal (stack {escape(stack_name)}) …")
        run_stack(template_file, assembly, stack_name, aws_port=aws_port, api_port=api_port, state_file=state_file, on_ready=ready)
        say("stopped the local stack")
        return
    say(f"starting the local stack (stack {escape(stack_name)}) …")
    command = daemon_command(template_file, assembly, stack_name, aws_port=aws_port, api_port=api_port, state_file=state_file)
    info = start_daemon(command, state_file, log_path())
    try:
        ready(info)
    except BaseException:
        stop_daemon(info.pid)
        remove_state(state_file)
        raise


@local_app.command()
def down() -> None:
    """Stop the local stack (SIGTERM, then SIGKILL after 15 s); nothing is left running. Idempotent."""
    info = current()
    if info is None:
        say("no local stack is running")
        return
    killed = stop_daemon(info.pid, recorded_start(state_path()))
    remove_state(state_path())
    say(f"stopped the local stack (pid {info.pid})" + (f" by SIGKILL: it ignored SIGTERM for {STOP_SECONDS:.0f} s" if killed else ""))


@local_app.command()
def status(as_json: JsonOpt = False) -> None:
    """Whether the local stack is running, and where (exit 0 when it is, 1 when it is not)."""
    as_json = as_json or state.json
    info = current(report_stale=not as_json)
    if info is None:
        if as_json:
            emit_json({"running": False})
        else:
            console.print("no local stack is running (start one with mlops local up)", highlight=False)
        raise typer.Exit(1)
    if as_json:
        emit_json({"running": True, "uptime": uptime(info.started_at)} | json.loads(info.model_dump_json()))
        return
    console.print("[green]the local stack is running[/green]", highlight=False)
    for key, value in _status_rows(info):
        console.print(f"  {key:<14} {escape(value)}", highlight=False, soft_wrap=True)


@local_app.command()
def env(as_json: JsonOpt = False) -> None:
    """The environment that points mlops (and the aws CLI, with --endpoint-url) at the stack: eval "$(mlops local env)"."""
    environment = running().environment()
    if as_json or state.json:
        emit_json(environment)
        return
    typer.echo("\n".join(export_lines(environment)))


@local_app.command()
def tick(
    model: Annotated[str | None, typer.Argument(help="fire only this model's schedules (default: all)", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fire the template's schedules now (the local stand-in for EventBridge): each target runs as its rule would run it."""
    from serverless_mlops.local.environment import fire_schedules

    info = running()
    fired = fire_schedules(info, model)
    if as_json or state.json:
        emit_json([{"target": f.target.model_dump(), "event": f.event, "result": f.result, "errored": f.errored} for f in fired])
    else:  # fire_schedules refuses a stack (or model) without schedules: never empty
        for one in fired:
            console.print(escape(fired_line(one)), highlight=False, soft_wrap=True)
        if any(isinstance(f.result, dict) and f.result.get("status") == "insufficient_data" for f in fired):
            say(INSUFFICIENT_HINT)
    if any(f.errored for f in fired):
        raise typer.Exit(1)


# why a check just after some curl requests sees no rows: capture is buffered in the inference environment
INSUFFICIENT_HINT = (
    "  insufficient_data: the window holds fewer captured rows than the spec's drift.min_rows. The inference function"
    " buffers captured rows and writes them to S3 when a request finds 1,000 buffered or the oldest 60 s old"
    " (MLOPS_CAPTURE_MAX_ROWS / MLOPS_CAPTURE_MAX_SECONDS): send more requests, or one more a minute later, then tick"
    " again."
)


@local_app.command()
def alerts(
    wait: Annotated[float, typer.Option("--wait", min=0, max=20, help="seconds to wait for an alert when none is there yet")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Show (and take) the alerts the alert topic sent: the inbox of an SQS queue subscribed to it."""
    from serverless_mlops.local.environment import receive_alerts

    received = receive_alerts(running(), wait)
    if as_json or state.json:
        emit_json([{"subject": a.subject, "message": a.message, "attributes": a.attributes} for a in received])
        return
    if not received:
        say("no alerts" + (f" (waited {wait:g} s)" if wait else ""))
        return
    for alert in received:
        console.print(escape(alert_line(alert)), highlight=False, soft_wrap=True)


def register_commands(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
