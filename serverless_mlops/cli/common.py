"""What every command shares: the app, global options (endpoint, bucket, table, --json), consoles and output."""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from serverless_mlops.settings import Settings

app = typer.Typer(
    name="mlops",
    help="Train, register, promote and serve scikit-learn models on AWS Lambda (or locally, on moto).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class State:
    settings_overrides: dict[str, str | None] = field(default_factory=dict)
    json: bool = False
    debug: bool = False

    def settings(self) -> Settings:
        return Settings.from_env(**self.settings_overrides)

    def backends(self) -> Any:
        from serverless_mlops.lifecycle import Backends

        return Backends.from_settings(self.settings())


state = State()


@app.callback()
def _global_options(
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", envvar="MLOPS_ENDPOINT_URL", help="AWS endpoint (moto, LocalStack); default: AWS")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region (default: AWS_REGION or us-east-1)")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", envvar="MLOPS_BUCKET", help="artifact bucket")] = None,
    table: Annotated[str | None, typer.Option("--table", envvar="MLOPS_TABLE", help="registry table")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    state.settings_overrides = {"endpoint_url": endpoint_url, "region": region, "bucket": bucket, "table": table}
    state.json = as_json
    state.debug = debug


def user() -> str:
    if name := os.environ.get("MLOPS_USER"):
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def emit_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*(escape("" if cell is None else str(cell)) for cell in row))
    console.print(view)


def say(message: str) -> None:
    """A line for people; suppressed under --json so scripts get only JSON on stdout."""
    if not state.json:
        console.print(message, highlight=False)


def fmt_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
