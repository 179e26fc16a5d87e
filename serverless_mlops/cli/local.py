"""``mlops local``: the whole stack on this machine (moto, the provisioned template, the Lambdas in-process, the HTTP
API) as a background daemon that other shells use and ``mlops local down`` stops.

``up`` resolves the template in the foreground (cdk.out or build/local.out when fresh, else a synthesis it announces), starts a
detached daemon
that runs :func:`serverless_mlops.local.environment.local_environment` and writes the stack's ``LocalInfo`` to the state file
once everything answers, trains and promotes the deployed models, and prints what to try next. ``status``, ``env``,
``tick`` and ``alerts`` read the state file from any shell; ``down`` stops the daemon (SIGTERM, SIGKILL after
:data:`STOP_SECONDS`) and removes it. The state folder is ``$MLOPS_LOCAL_DIR`` (default
``~/.cache/serverless-mlops/local``): ``local.json`` (the state) and ``local.log`` (the daemon's output).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from serverless_mlops.cli.common import console, emit_json, say, state
from serverless_mlops.errors import MlopsError

if TYPE_CHECKING:
    from serverless_mlops.local.environment import LocalInfo, Seeded

DIR_ENV = "MLOPS_LOCAL_DIR"
DEFAULT_DIR = "~/.cache/serverless-mlops/local"
STATE_FILE = "local.json"
START_KEY = "process_start"  # beside the LocalInfo fields in the state file
LOG_FILE = "local.log"
MODULE = __name__  # the daemon's command line names it: how `down` tells our daemon from a recycled pid
START_SECONDS = 120.0  # how long `up` waits for the daemon to report the stack up
STOP_SECONDS = 15.0  # how long `down` waits after SIGTERM before SIGKILL
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

local_app = typer.Typer(
    name="local",
    help="Run the whole stack on this machine (moto, no AWS, no docker) in the background: up, use it from any shell, down.",
    no_args_is_help=True,
)


class NotRunningError(MlopsError):
    """No local stack is running (no state file, or its daemon is gone)."""

    def __init__(self) -> None:
        super().__init__("no local stack is running: start one with mlops local up")


# -- the state folder -----------------------------------------------------------------------------------------------


def state_dir() -> Path:
    """``$MLOPS_LOCAL_DIR``, else ``~/.cache/serverless-mlops/local``."""
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR).expanduser()


def make_state_dir() -> Path:
    """The state folder, created: a one-line error when it cannot be (``$MLOPS_LOCAL_DIR`` names a file, say)."""
    folder = state_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MlopsError(f"the state folder {folder} (${DIR_ENV}) cannot be created: {exc.strerror or exc}") from exc
    return folder


def state_path() -> Path:
    return state_dir() / STATE_FILE


def log_path() -> Path:
    return state_dir() / LOG_FILE


def write_state(info: LocalInfo, path: Path) -> None:
    """Write the state file atomically (a reader sees the whole document or none): the ``LocalInfo``, plus the
    start time of its process, which tells that process from a later one that got the same pid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = json.loads(info.model_dump_json()) | {START_KEY: process_start(info.pid)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_state(path: Path) -> LocalInfo | None:
    """The state file's ``LocalInfo``; None when it is missing or not (yet) a valid document."""
    from pydantic import ValidationError

    from serverless_mlops.local.environment import LocalInfo

    try:
        return LocalInfo.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValidationError):
        return None


def recorded_start(path: Path) -> str | None:
    """The start time of the stack's process, as the state file recorded it."""
    try:
        value = json.loads(path.read_bytes()).get(START_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def remove_state(path: Path, pid: int | None = None) -> None:
    """Remove the state file (only if it is ``pid``'s, when ``pid`` is given)."""
    if pid is not None:
        info = read_state(path)
        if info is not None and info.pid != pid:
            return
    path.unlink(missing_ok=True)


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc); None when it is gone or a zombie. Without /proc
    (macOS), ``"alive"`` when a signal-0 probe finds it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return "alive" if _alive(pid) else None
    state, *fields = stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return None if state in ("Z", "X") else fields[18]


def is_daemon(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` is the stack's live process: the one that started at ``start`` when the state file recorded
    it (``up --foreground`` runs as ``mlops``), else a process whose command line names this module (the daemon)."""
    now = process_start(pid)
    if now is None:
        return False
    if start is not None:
        return now == start
    try:
        return MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc: a live pid is all one can tell
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current(path: Path | None = None, *, report_stale: bool = True) -> LocalInfo | None:
    """The running stack's info; a state file whose process is gone (or that is unreadable) is removed and reported."""
    path = path or state_path()
    if not path.exists():
        return None
    info = read_state(path)
    if info is not None and is_daemon(info.pid, recorded_start(path)):
        return info
    path.unlink(missing_ok=True)
    if report_stale:
        what = f"of pid {info.pid}, which is no longer running" if info is not None else "that was unreadable"
        say(f"removed a stale state file {escape(str(path))} ({what})")
    return None


def running() -> LocalInfo:
    """The running stack's info, or a one-line error."""
    info = current(report_stale=False)
    if info is None:
        raise NotRunningError()
    return info


def last_error(log: Path) -> str:
    """The line of the daemon's log that says why it stopped: the last ``error:`` line, else the last non-blank one."""
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "it wrote no log"
    for line in reversed(lines):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return lines[-1] if lines else "it wrote nothing to its log"


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


# -- the daemon -----------------------------------------------------------------------------------------------------


def run_stack(
    template: Path,
    assembly: Path,
    stack_name: str,
    *,
    aws_port: int,
    api_port: int,
    state_file: Path,
    on_ready: Callable[[LocalInfo], None],
) -> None:
    """Run the stack in this process until SIGTERM or SIGINT; the state file exists exactly while it is up.

    The stop signals are blocked from the start (every thread the stack starts inherits the mask), so a ``down`` that
    arrives while the stack is still starting is taken once it is up, and the stack always stops through its context
    manager: the HTTP API closes (flushing data capture) and the moto server stops.
    """
    from serverless_mlops.local.environment import local_environment

    document = json.loads(template.read_text(encoding="utf-8"))
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        with local_environment(document, assembly, stack_name=stack_name, aws_port=aws_port or None, api_port=api_port or None) as env:
            info = env.info
            write_state(info, state_file)
            try:
                on_ready(info)
                signal.sigwait(STOP_SIGNALS)
            finally:
                remove_state(state_file, os.getpid())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def daemon_command(template: Path, assembly: Path, stack_name: str, *, aws_port: int, api_port: int, state_file: Path) -> list[str]:
    """The daemon's command line. ``-c`` rather than ``-m``: the ``mlops`` package imports this module, and running an
    already-imported module with ``-m`` makes runpy warn. Once ``daemon_main`` returns the stack has stopped (capture
    written, ports closed, state file removed), so the process ends with ``os._exit``: tearing down the interpreter's
    half a million objects (moto, the models) would add over a second to every ``down``, which waits for the pid."""
    code = f"import os, sys; from {MODULE} import daemon_main; code = daemon_main(); sys.stdout.flush(); sys.stderr.flush(); os._exit(code)"
    return [
        sys.executable,
        "-c",
        code,
        *("--template", str(template), "--assembly", str(assembly), "--stack", stack_name),
        *("--aws-port", str(aws_port), "--api-port", str(api_port), "--state-file", str(state_file)),
    ]


def daemon_main(argv: list[str] | None = None) -> int:
    """The daemon: run the stack until SIGTERM; every failure ends as one ``error:`` line in the log, which ``up`` shows."""
    parser = argparse.ArgumentParser(prog="mlops local daemon", description="started by mlops local up; not for direct use")
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--assembly", type=Path, required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--aws-port", type=int, default=0)
    parser.add_argument("--api-port", type=int, default=0)
    parser.add_argument("--state-file", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run_stack(
            args.template,
            args.assembly,
            args.stack,
            aws_port=args.aws_port,
            api_port=args.api_port,
            state_file=args.state_file,
            on_ready=lambda info: print(f"up: API {info.api_url}, AWS endpoint {info.endpoint_url}", file=sys.stderr, flush=True),
        )
    except MlopsError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    print(f"stopped (pid {os.getpid()})", file=sys.stderr, flush=True)
    return 0


def start_daemon(command: list[str], state_file: Path, log: Path, timeout: float = START_SECONDS) -> LocalInfo:
    """Start the daemon detached (own session, no terminal) and wait until it reports the stack up."""
    with log.open("wb") as output:
        child = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while True:
            info = read_state(state_file)
            if info is not None and info.pid == child.pid:
                return info
            code = child.poll()
            if code is not None:
                raise MlopsError(f"{last_error(log)} (the local stack did not start: exit status {code}; log: {log})")
            if time.monotonic() > deadline:
                raise MlopsError(f"the local stack did not start within {timeout:.0f} s; its log: {log}")
            time.sleep(0.1)
    except BaseException:  # includes Ctrl-C while waiting: leave nothing behind
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        remove_state(state_file, child.pid)
        raise


def stop_daemon(pid: int, start: str | None = None, timeout: float = STOP_SECONDS) -> bool:
    """SIGTERM the stack's process, SIGKILL (its process group, when it leads one) after ``timeout``; True when it
    had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if _wait_gone(pid, start, timeout):
        return False
    with contextlib.suppress(ProcessLookupError):  # it may end between the two calls
        os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, start, 5.0)
    return True


def _wait_gone(pid: int, start: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_daemon(pid, start):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


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


if __name__ == "__main__":  # pragma: no cover - the daemon runs through daemon_command's -c
    sys.exit(daemon_main())
