"""Quality commands: ``mlops quality check MODEL`` (the check the quality Lambda runs) and ``mlops quality report MODEL``."""

from __future__ import annotations

import tempfile
import webbrowser
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from serverless_mlops.cli.common import console, emit_json, say, state, table
from serverless_mlops.errors import DataError, NotFoundError

quality_app = typer.Typer(
    name="quality", help="Model quality from ground truth: realized and estimated performance per version.", no_args_is_help=True
)

ModelArg = Annotated[str, typer.Argument(help="model name", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@quality_app.command("check")
def check(
    model: ModelArg,
    window: Annotated[str | None, typer.Option("--window", "-w", help="30m, 12h or 7d ending now (or --end); default: the spec's")] = None,
    end: Annotated[str | None, typer.Option("--end", help="the window's end, ISO 8601 (default: now)")] = None,
    version: Annotated[int | None, typer.Option("--version", "-v", min=1, help="whose quality settings (default: production)")] = None,
    write_report: Annotated[bool, typer.Option("--write-report", help="store quality.json/.html in the bucket as the Lambda does")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Join the window's ground truth to its captured predictions and print realized and estimated metrics per version."""
    from functions.quality_check.app import onnx_scorer
    from serverless_mlops.model.quality_spec import parse_duration
    from serverless_mlops.quality.service import run_quality_check

    state.json = state.json or as_json
    try:
        length = parse_duration(window) if window is not None else None
    except ValueError as exc:
        raise DataError(f"--window: {exc}") from exc
    try:
        stop = datetime.fromisoformat(end.strip().replace("Z", "+00:00")) if end else None
    except ValueError as exc:
        raise DataError(f"--end {end!r}: not an ISO 8601 time") from exc
    if stop is not None and stop.tzinfo is None:
        raise DataError(f"--end {end!r}: give an offset or Z (UTC), e.g. 2026-12-07T12:00Z")
    backends = state.backends()
    outcome = run_quality_check(
        model,
        backends,
        end=stop,
        window=length,
        version=version,
        scorer=lambda b: onnx_scorer(b, model),
        write=write_report,
    )
    result = outcome.result
    if state.json:
        emit_json(outcome.summary() | {"result": result.model_dump(mode="json")})
        return
    rows: list[list[str]] = []
    for v in result.versions:
        names = list(v.realized) or list(v.estimated)
        for i, metric in enumerate(names):
            head = (
                [f"v{v.version} {v.status.replace('_', ' ')}", f"{v.labelled:,}/{v.predictions:,} ({v.coverage:.0%})"]
                if i == 0
                else ["", ""]
            )
            rows.append(
                [
                    *head,
                    metric,
                    _fmt(v.realized.get(metric)),
                    _fmt(v.estimated.get(metric)),
                    _fmt(v.estimation_error.get(metric)),
                    _fmt(v.holdout.get(metric)),
                ]
            )
    table(
        f"{model}: {result.window.start} → {result.window.end}",
        ["version", "labelled", "metric", "realized", "estimated", "error", "holdout"],
        rows,
        fold=("version", "labelled", "metric"),
    )
    colour = {"breach": "red", "ok": "green", "insufficient_labels": "yellow", "no_predictions": "yellow"}[result.status]
    joined = result.join
    console.print(
        f"[{colour}]{result.status.replace('_', ' ')}[/{colour}]: {joined['joined']:,} of {joined['labels']:,} labels joined "
        f"({joined['unmatched']:,} unmatched, {joined['late']:,} late, {joined['before_prediction']:,} before their prediction)"
    )
    for number, breach in result.breaches():
        rule = breach.rule.replace("_", " ")
        say(f"[red]breach[/red] v{number}: {breach.metric} {breach.value:.4f} crossed its {rule} {breach.threshold:.4g}")
    for v in result.versions:
        for note in v.notes:
            say(f"v{v.version}: {escape(note)}")
    for skipped in [*result.skipped_sources, *result.skipped_label_objects]:
        say(f"[yellow]skipped[/yellow] {escape(skipped['error'])}")
    if outcome.report:
        say(f"report: {outcome.report['html']}")


@quality_app.command("report")
def report(
    model: ModelArg,
    open_: Annotated[bool, typer.Option("--open", help="download the HTML report and open it in a browser")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print where the latest quality report of MODEL is (or open it)."""
    from serverless_mlops.quality.report import latest_quality_report

    state.json = state.json or as_json
    store = state.backends().store
    latest: dict[str, Any] | None = latest_quality_report(store.s3, store.bucket, model)
    if latest is None:
        raise NotFoundError(
            f"no quality report for model {model!r} in s3://{store.bucket}/reports/{model}/quality/; "
            f"run 'mlops quality check {model} --write-report'"
        )
    if open_:
        bucket, key = latest["html"].removeprefix("s3://").split("/", 1)
        body = store.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tempfile.NamedTemporaryFile("wb", suffix=f"-{model}-quality.html", delete=False) as handle:
            handle.write(body)
        latest["local"] = handle.name
        webbrowser.open(Path(handle.name).as_uri())
    if state.json:
        emit_json(latest)
        return
    console.print(f"{latest['html']}\n{latest['json']}", highlight=False, soft_wrap=True)
    if "local" in latest:
        say(f"opened {latest['local']}")


def register_commands(app: typer.Typer) -> Any:
    app.add_typer(quality_app)
    return quality_app
