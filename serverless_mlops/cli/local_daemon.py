"""The background process behind ``mlops local``: its state folder and state file, and the daemon itself.

``mlops local up`` starts the daemon detached (:func:`start_daemon`: its own session, no terminal); the daemon
(:func:`daemon_main`) runs :func:`serverless_mlops.local.environment.local_environment` and writes the stack's
``LocalInfo`` to the state file once everything answers (:func:`write_state`), and removes it when it stops.
Any shell finds the running stack through the state file (:func:`current`, :func:`running`), which records the
process's start time so a recycled pid is never taken for the daemon (:func:`is_daemon`); ``down`` stops it
(:func:`stop_daemon`: SIGTERM, SIGKILL after :data:`STOP_SECONDS`). The state folder is ``$MLOPS_LOCAL_DIR`` (default
``~/.cache/serverless-mlops/local``): ``local.json`` (the state) and ``local.log`` (the daemon's output).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from serverless_mlops.cli.common import say
from serverless_mlops.errors import MlopsError

if TYPE_CHECKING:
    from serverless_mlops.local.environment import LocalInfo

DIR_ENV = "MLOPS_LOCAL_DIR"
DEFAULT_DIR = "~/.cache/serverless-mlops/local"
STATE_FILE = "local.json"
START_KEY = "process_start"  # beside the LocalInfo fields in the state file
LOG_FILE = "local.log"
MODULE = __name__  # the daemon's command line names it: how `down` tells our daemon from a recycled pid
START_SECONDS = 120.0  # how long `up` waits for the daemon to report the stack up
STOP_SECONDS = 15.0  # how long `down` waits after SIGTERM before SIGKILL
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


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


if __name__ == "__main__":  # pragma: no cover - the daemon runs through daemon_command's -c
    sys.exit(daemon_main())
