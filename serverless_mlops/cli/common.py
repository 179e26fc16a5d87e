"""What every command shares: the app, global options (endpoint, bucket, tables, --json), consoles and output."""

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
        from serverless_mlops.store.lifecycle import Backends

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
    retraining_table: Annotated[
        str | None,
        typer.Option(
            "--retraining-table",
            envvar="MLOPS_RETRAINING_TABLE",
            help="retraining table: locks and pending approvals (the stack's RetrainingTableName output)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    state.settings_overrides = {
        "endpoint_url": endpoint_url,
        "region": region,
        "bucket": bucket,
        "table": table,
        "retraining_table": retraining_table,
    }
    state.json = as_json
    state.debug = debug


def user() -> str:
    """A name for what is only informative (who started a retraining, who registered a run): ``MLOPS_USER`` or the
    login name. Decisions record :func:`caller_identity` instead."""
    if name := os.environ.get("MLOPS_USER"):
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def caller_identity(settings: Settings) -> str:
    """Who is calling, as AWS knows it: STS GetCallerIdentity's ARN (``arn:aws:sts::123456789012:assumed-role/Approver/ann``).

    approve, reject, promote and rollback record this, not :func:`user`: a login name or ``MLOPS_USER`` is whatever the
    caller says, the ARN is what their credentials prove (GetCallerIdentity needs no IAM permission)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_mlops.aws import client
    from serverless_mlops.errors import MlopsError

    try:
        return str(client("sts", settings).get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError) as exc:
        raise MlopsError(
            f"cannot tell who you are: STS GetCallerIdentity failed ({exc}); this command records your AWS identity, so it needs "
            "valid AWS credentials"
        ) from exc


def emit_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))


def table(title: str, columns: list[str], rows: list[list[Any]], *, fold: tuple[str, ...] = ()) -> None:
    """A table for people; the ``fold`` columns wrap onto more lines rather than end in "…" (an ARN's tail is what
    tells one caller from another)."""
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column, overflow="fold" if column in fold else "ellipsis")
    for row in rows:
        view.add_row(*(escape("" if cell is None else str(cell)) for cell in row))
    console.print(view)


def say(message: str) -> None:
    """A line for people; suppressed under --json so scripts get only JSON on stdout."""
    if not state.json:
        console.print(message, highlight=False)


def fmt_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
