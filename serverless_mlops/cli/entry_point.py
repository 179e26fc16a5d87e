"""``mlops``'s entry point (:func:`main`): run the app with every command group the package registered on it, and turn
each failure into one line on stderr and an exit status. Its own module, so a command that runs ``mlops`` itself
(``mlops demo``'s rollback) imports it without importing the package that registers that command.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from serverless_mlops.cli.common import app, err_console


def _one_line(exc: BaseException | str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + " …"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every failure into one line on stderr and a non-zero exit."""
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_mlops.errors import MlopsError

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("MLOPS_DEBUG") == "1"
    try:
        # not standalone: click's own mistakes (a bad option value, a missing argument) reach the handlers below
        # too, so they are one line like every other error instead of a usage box
        result = app(args=args, prog_name="mlops", standalone_mode=False)
    except typer.Abort:  # Ctrl-C: the shell's convention for SIGINT, no traceback
        return 130
    except typer.TyperException as exc:  # typer's click: a usage mistake (exit 2) or another click error
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mlops` or `mlops local` alone: the help is the answer
            exc.show()  # type: ignore[attr-defined]
            return 0
        code = int(getattr(exc, "exit_code", 2))
        context = getattr(exc, "ctx", None)
        hint = f" (see {context.command_path} --help)" if code == 2 and context is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        err_console.print(f"[red]error:[/red] {escape(_one_line(message))}{escape(hint)}")
        return code
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
    return result if isinstance(result, int) else 0  # typer.Exit(code) inside a command comes back as its code
