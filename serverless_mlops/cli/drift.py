"""Drift commands: ``mlops drift check MODEL`` (the check the drift Lambda runs) and ``mlops drift report MODEL``."""

from __future__ import annotations

import tempfile
import webbrowser
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from serverless_mlops.cli.common import console, emit_json, say, state, table
from serverless_mlops.errors import DataError, NotFoundError

if TYPE_CHECKING:
    from serverless_mlops.drift.instances import FileRows

drift_app = typer.Typer(name="drift", help="Check captured data for drift against the production baseline.", no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="model name", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def parse_window(text: str, now: datetime) -> tuple[datetime, datetime]:
    """``24h`` / ``90m`` / ``2d`` (ending now) or ``START/END`` in ISO 8601 (UTC unless an offset is given)."""
    text = text.strip()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[:-1].isdigit() and text[-1:] in units and int(text[:-1]) > 0:
        end = now.astimezone(UTC).replace(second=0, microsecond=0)
        return end - timedelta(**{units[text[-1]]: int(text[:-1])}), end
    if "/" in text:
        try:
            start, end = (_instant(part) for part in text.split("/", 1))
        except ValueError as exc:
            raise DataError(f"--window {text!r}: {exc}") from exc
        if end <= start:
            raise DataError(f"--window {text!r}: the end must be after the start")
        return start, end
    raise DataError(
        f"--window {text!r}: expected a length such as 24h, 90m or 7d, or START/END in ISO 8601 (2026-11-24T00:00Z/2026-11-25T00:00Z)"
    )


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2e}" if value and abs(value) < 1e-4 else f"{value:.4f}"


def current_from_instances(path: Path, backends: Any, model: str, version: int | None) -> tuple[int, FileRows]:
    """A CSV or JSON file of instances (as ``mlops predict`` reads them) → the drift check's columns.

    Each row's prediction is the file's ``prediction`` column when it has one, else the baseline version's own
    prediction (its ONNX graph run here, a block of rows at a time), so the prediction drift is checked too. Missing
    values are data; rows the model cannot predict for one are counted (see :mod:`serverless_mlops.drift.instances`).
    Columns that are not features (the target, ids) are left out. Also returns the version that predicted them, so
    the check uses that version's baseline even if the alias moves in between.
    """
    from serverless_mlops.drift.instances import read_rows
    from serverless_mlops.serving.onnx_model import load_model
    from serverless_mlops.store.lifecycle import resolve_version

    entry = resolve_version(backends, model, version=version)
    return entry.version, read_rows(path, entry.signature, entry.version, lambda: load_model(backends, entry))


@drift_app.command("check")
def check(
    model: ModelArg,
    window: Annotated[str | None, typer.Option("--window", "-w", help="24h, 7d, or START/END (ISO 8601); default: the spec's")] = None,
    current: Annotated[
        Path | None,
        typer.Option("--current", "-c", help="a local file: captures (JSON Lines, gzip or not), or rows as CSV or JSON like mlops predict"),
    ] = None,
    version: Annotated[int | None, typer.Option("--version", "-v", min=1, help="baseline version (default: production)")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="also write the HTML report to this file")] = None,
    write_report: Annotated[bool, typer.Option("--write-report", help="store report.json/.html in the bucket as the Lambda does")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the drift check on the captures of a window in S3 (or a local file) and print the verdicts."""
    from serverless_mlops.drift.report import to_html
    from serverless_mlops.drift.service import run_check

    state.json = state.json or as_json
    if current is not None and window is not None:
        raise DataError("give --window (captures in S3) or --current (a local file), not both")
    start = end = None
    if window is not None:
        start, end = parse_window(window, datetime.now(UTC))
    backends = state.backends()
    rows = None
    if current is not None and current.suffix.lower() in (".csv", ".json"):
        version, rows = current_from_instances(current, backends, model, version)
    outcome = run_check(
        model,
        backends,
        start=start,
        end=end,
        current_file=current,
        current=rows.current if rows else None,
        version=version,
        write=write_report,
    )
    result = outcome.result
    if html is not None:
        html.write_bytes(to_html(result))
    if state.json:
        emit_json(outcome.summary() | ({"current_file": rows.summary()} if rows else {}) | {"result": result.model_dump(mode="json")})
        return
    where = f"{result.window.start} → {result.window.end}" if result.window else str(current)
    lines = [
        [
            f.name,
            f.verdict.replace("_", " "),
            f.test,
            _fmt(f.statistic),
            _fmt(f.threshold),
            _fmt(f.effect_size),
            f"{f.current_rows:,}",
        ]
        for f in [*result.features, *([result.prediction] if result.prediction else [])]
    ]
    table(
        f"{model} v{result.version}: {where}, {result.rows:,} rows",
        ["feature", "verdict", "test", "statistic", "threshold", "effect", "rows"],  # PSI: in --json and the HTML report
        lines,
    )
    colour = {"drift": "red", "no_drift": "green", "insufficient_data": "yellow"}[result.status]
    console.print(
        f"[{colour}]{result.status.replace('_', ' ')}[/{colour}]: {result.drifted_features} of {result.checked_features} features "
        f"drifted (share {result.drifted_share:.2f}, dataset drift at {result.drift_share}; {result.method.replace('_', ' ')})"
    )
    if rows and (note := rows.note()):
        say(f"[yellow]{escape(note)}[/yellow]")
    for finding in result.data_quality:
        say(f"data quality: {finding.feature}: {finding.detail}")
    for skipped in result.skipped_sources:
        say(f"[yellow]skipped[/yellow] {skipped['error']}")
    if outcome.report:
        say(f"report: {outcome.report['html']}")
    if html is not None:
        say(f"HTML report: {html}")


@drift_app.command("report")
def report(
    model: ModelArg,
    open_: Annotated[bool, typer.Option("--open", help="download the HTML report and open it in a browser")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print where the latest drift report of MODEL is (or open it)."""
    from serverless_mlops.drift.report import latest_report

    state.json = state.json or as_json
    store = state.backends().store
    latest = latest_report(store.s3, store.bucket, model)
    if latest is None:
        raise NotFoundError(f"no drift report for model {model!r} in s3://{store.bucket}/reports/{model}/; run 'mlops drift check {model}'")
    if open_:
        bucket, key = latest["html"].removeprefix("s3://").split("/", 1)
        body = store.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tempfile.NamedTemporaryFile("wb", suffix=f"-{model}-drift.html", delete=False) as handle:
            handle.write(body)
        latest["local"] = handle.name
        webbrowser.open(Path(handle.name).as_uri())
    if state.json:
        emit_json(latest)
        return
    console.print(f"{latest['html']}\n{latest['json']}\nwritten {latest['written_at']}", highlight=False, soft_wrap=True)
    if "local" in latest:
        say(f"opened {latest['local']}")


def register_commands(app: typer.Typer) -> Any:
    app.add_typer(drift_app)
    return drift_app
