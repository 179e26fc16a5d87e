"""``mlops``: the command line. Each command calls one library function; errors print one line and exit non-zero.

Sub-command groups live in their own modules (``models``, and later ``drift``, ``serve``, ``retrain``, ``local``) and
register themselves on :data:`app` here.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from serverless_mlops.cli import drift, models, retrain
from serverless_mlops.cli import local as local_command
from serverless_mlops.cli import serve as serve_command
from serverless_mlops.cli.common import app, err_console

models.register_commands(app)
drift.register_commands(app)
serve_command.register_commands(app)
retrain.register_commands(app)
local_command.register_commands(app)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + " …"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every failure into one line on stderr and a non-zero exit."""
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_mlops.errors import MlopsError

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("MLOPS_DEBUG") == "1"
    try:
        # standalone mode: typer prints a usage mistake with the usage line and exits 2, and ends on Ctrl-C with
        # exit 130; everything else reaches the handlers below
        app(args=args, prog_name="mlops")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MlopsError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {escape(_one_line(exc))}")
        return 1
    except (ClientError, BotoCoreError) as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/red] AWS: {escape(_one_line(exc))}")
        return 1
    except KeyboardInterrupt:  # before typer is running (typer handles it inside commands)
        return 130
    except Exception as exc:
        if debug:
            raise
        err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {escape(_one_line(exc))} (run with --debug for the traceback)")
        return 1
    return 0


__all__ = ["app", "main", "typer"]
