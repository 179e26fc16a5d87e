"""``mlops ui``: the read-only web console (:mod:`serverless_mlops.ui`) against whatever the CLI points at."""

from __future__ import annotations

import sys
import threading
import webbrowser
from typing import Annotated, Any

import typer

from serverless_mlops.cli.common import emit_json, err_console, say, state

RETRAIN_ENV = "MLOPS_RETRAIN_STATE_MACHINE_ARN"  # as mlops retrain reads it (mlops local env exports it)
RELEASE_ENV = "MLOPS_RELEASE_STATE_MACHINE_ARN"
API_ENV = "MLOPS_API_URL"
DEFAULT_PORT = 8765


def console_data(retraining_arn: str | None, release_arn: str | None, api_url: str | None) -> Any:
    """The console's reads on the CLI's backends, with a Step Functions client when a state machine is named."""
    from serverless_mlops.aws import client
    from serverless_mlops.ui.data import ConsoleData

    settings = state.settings()
    sfn = client("stepfunctions", settings, budget_ms=5000) if retraining_arn or release_arn else None
    return ConsoleData(state.backends(), sfn=sfn, retraining_arn=retraining_arn, release_arn=release_arn, api_url=api_url)


def ui(
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="port to listen on (0: a free one)")] = DEFAULT_PORT,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="address to listen on (default 127.0.0.1; anything else serves the console, which has no login, to others)"
        ),
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="open the console in a browser")] = False,
    state_machine: Annotated[
        str | None, typer.Option("--state-machine", envvar=RETRAIN_ENV, help="the retraining state machine ARN (its executions are shown)")
    ] = None,
    release_state_machine: Annotated[
        str | None, typer.Option("--release-state-machine", envvar=RELEASE_ENV, help="the release state machine ARN (releases are shown)")
    ] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", envvar=API_ENV, help="the HTTP API's URL, for the curl lines")] = None,
) -> None:
    """Serve a read-only web console: models, versions, aliases, drift and quality, retraining. Ctrl-C stops."""
    from serverless_mlops.ui.app import create_app
    from serverless_mlops.ui.server import LOOPBACK, ConsoleServer, bind, is_loopback

    address = host or LOOPBACK
    if host is not None and not is_loopback(host):
        err_console.print(
            f"[yellow]warning[/yellow]: --host {host}: the console has no login; anyone who can reach this address reads "
            "the registry, the reports and the workflows with your AWS credentials"
        )
    data = console_data(state_machine, release_state_machine, api_url)
    server = ConsoleServer(create_app(data), bind(address, port))
    where = "loopback only: no one else can reach it" if is_loopback(address) else f"on {address}: reachable by others"
    if state.json:  # as mlops serve: the URL for a script that starts it in the background
        emit_json({"url": server.url, "loopback": is_loopback(address), "read_only": True})
        sys.stdout.flush()
    say(f"console on [bold]{server.url}[/bold] ({where}; read-only); Ctrl-C stops")
    if open_:
        threading.Timer(0.5, webbrowser.open, args=(server.url,)).start()
    server.serve_forever()
    say("stopped")


def register_commands(app: typer.Typer) -> None:
    app.command()(ui)
