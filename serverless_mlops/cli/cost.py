"""``mlops cost estimate MODEL``: the monthly bill of serving a model, line by line, from the committed price table
(``serverless_mlops/cost/prices.yaml``) and the measured handler time, or, with ``--from-cloudwatch``, from a
deployed function's own Invocations and Duration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from serverless_mlops.cli.common import emit_json, say, state, table
from serverless_mlops.cost.usage import CostError

if TYPE_CHECKING:
    from serverless_mlops.cost.estimate import Line, Summary
    from serverless_mlops.cost.usage import Usage
    from serverless_mlops.model.spec import ModelSpec

cost_app = typer.Typer(name="cost", help="What serving a model costs a month, by line, from a committed price table.", no_args_is_help=True)

_PER = {"month": 1.0, "day": 730 / 24, "hour": 730.0, "minute": 730 * 60.0, "second": 730 * 3600.0}
_PER.update({"s": _PER["second"], "min": _PER["minute"], "h": _PER["hour"], "d": _PER["day"], "mo": 1.0})
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9}


def parse_requests(text: str) -> float:
    """``1M/month``, ``250k/month``, ``30/s``, ``2000000`` (a month) → requests a month."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMbB]?)\s*(?:/\s*([a-z]+))?\s*", text)
    if not match or (match.group(3) is not None and match.group(3) not in _PER):
        raise CostError(f"--requests {text!r}: expected a count and a period such as 1M/month, 250k/month, 30/s or 2000000 (a month)")
    return float(match.group(1)) * _SCALE[match.group(2).lower()] * _PER[match.group(3) or "month"]


def load_model_spec(model: str) -> ModelSpec:
    """MODEL as a spec file, or the name of one under ./models/."""
    from serverless_mlops.model.spec import load_spec

    path = Path(model)
    if not path.is_file():
        named = Path("models") / f"{model}.yaml"
        if not named.is_file():
            raise CostError(f"model {model!r}: no spec file {model} and no models/{model}.yaml; pass a spec file")
        path = named
    return load_spec(path)


def register_commands(app: typer.Typer) -> None:
    app.add_typer(cost_app)


@cost_app.command("estimate")
def estimate_command(
    model: Annotated[str, typer.Argument(help="the model's spec file, or its name under ./models/", show_default=False)],
    requests: Annotated[str, typer.Option("--requests", help="requests a month: 1M/month, 250k/month, 30/s")] = "1M/month",
    rows_per_request: Annotated[int, typer.Option("--rows-per-request", help="rows in each request")] = 1,
    memory: Annotated[
        int | None, typer.Option("--memory", help="the inference function's MB (default 1024, or the deployed one's)")
    ] = None,
    arch: Annotated[
        Literal["x86_64", "arm64"] | None, typer.Option("--arch", help="x86_64 or arm64 (default x86_64, or the deployed one's)")
    ] = None,
    retrainings: Annotated[float, typer.Option("--retrainings", help="retraining workflow runs a month")] = 0.0,
    batch_rows: Annotated[str, typer.Option("--batch-rows", help="rows scored by batch jobs a month: 0, 100M")] = "0",
    provisioned: Annotated[int, typer.Option("--provisioned", help="provisioned environments on the live alias, all month")] = 0,
    from_cloudwatch: Annotated[
        bool, typer.Option("--from-cloudwatch", help="the deployed --function's Invocations and mean Duration over --days")
    ] = False,
    function: Annotated[str | None, typer.Option("--function", help="with --from-cloudwatch: the inference function's name")] = None,
    days: Annotated[int, typer.Option("--days", help="with --from-cloudwatch: the days of metrics to read")] = 30,
    prices: Annotated[
        Path | None, typer.Option("--prices", help="another price table (YAML, as serverless_mlops/cost/prices.yaml)")
    ] = None,
) -> None:
    """Print the monthly bill of serving MODEL, by line, with the at-rest cost, what another million requests add and
    the same month on SageMaker (Serverless Inference and an always-on real-time endpoint)."""
    from serverless_mlops.cost.estimate import alternatives, estimate, summarize, with_overrides
    from serverless_mlops.cost.prices import load_prices
    from serverless_mlops.cost.usage import Usage, runs_a_month

    spec = load_model_spec(model)
    table_ = load_prices(prices)
    usage = Usage(
        requests=parse_requests(requests),
        estimator=spec.estimator.class_,
        features=len(spec.features),
        rows_per_request=rows_per_request,
        drift_checks=runs_a_month(spec.drift.schedule),
        drift_window_hours=spec.drift.window_hours,
        quality_alarms=len(spec.quality.floors),
        quality_checks=runs_a_month(spec.quality.schedule or spec.drift.schedule),
        quality_window_hours=spec.quality.window_delta.total_seconds() / 3600,
        quality_metrics=20 if spec.task.is_classification else 12,
        retrainings=retrainings,
        batch_rows=parse_requests(batch_rows),
        provisioned=provisioned,
    )
    source = "the benchmark's handler time (docs/benchmarks.md)"
    if from_cloudwatch:
        usage, source = _observed(usage, function, days)
    usage = with_overrides(usage, memory_mb=memory, architecture=arch)
    result = estimate(usage, table_)
    summary = summarize(usage, table_)
    compared = alternatives(usage, table_)
    if state.json:
        emit_json(
            {
                "model": spec.name,
                "usage": {
                    "requests": usage.requests,
                    "memory_mb": usage.memory_mb,
                    "architecture": usage.architecture,
                    "duration_ms": usage.request_ms,
                },
                "duration_from": source,
                "lines": [line.__dict__ for line in result.lines],
                "total_usd": summary.total,
                "at_rest_usd": summary.at_rest,
                "per_million_requests_usd": summary.per_million,
                "sagemaker": [line.__dict__ for line in compared],
                "prices": {"region": table_.region, "as_of": str(max(p.as_of for p in table_.prices.values()))},
            }
        )
        return
    _print(spec.name, usage, result.lines, compared, summary, source, table_.region)


def _observed(usage: Usage, function: str | None, days: int) -> tuple[Usage, str]:
    from dataclasses import replace

    from serverless_mlops.aws import client
    from serverless_mlops.cost.cloudwatch import observe

    if not function:
        raise CostError("--from-cloudwatch needs --function NAME: the deployed inference function (the stack's Inference…Function)")
    settings = state.settings()
    seen = observe(function, cloudwatch=client("cloudwatch", settings), lambda_=client("lambda", settings), days=days)
    if seen.duration_ms is None:
        raise CostError(f"--from-cloudwatch: function {function} has no Duration data points in the last {days} days")
    architecture: Literal["x86_64", "arm64"] = "arm64" if seen.architecture == "arm64" else "x86_64"
    usage = replace(
        usage, requests=seen.requests_a_month, duration_ms=seen.duration_ms, memory_mb=seen.memory_mb, architecture=architecture
    )
    return usage, f"CloudWatch: {seen.invocations:,.0f} invocations and a mean Duration of {seen.duration_ms:.2f} ms over {days} days"


def _print(name: str, usage: Usage, lines: list[Line], compared: list[Line], summary: Summary, source: str, region: str) -> None:
    say(
        f"{name}: {usage.requests:,.0f} requests a month of {usage.rows_per_request} row(s), {usage.memory_mb} MB {usage.architecture},"
        f" {usage.request_ms:.3f} ms a request ({source}); prices for {region}"
    )
    rows = [[line.service, line.item, f"{line.quantity:,.2f} {line.unit}", f"{line.usd:,.4f}", line.basis] for line in lines]
    table("monthly bill (USD)", ["service", "line", "quantity", "USD", "basis"], rows)
    say(
        f"total {summary.total:,.2f} USD a month; at rest (no requests) {summary.at_rest:,.2f};"
        f" each further million requests {summary.per_million:,.4f}"
    )
    rows = [[line.service, line.item, f"{line.quantity:,.2f} {line.unit}", f"{line.usd:,.4f}", line.basis] for line in compared]
    table("the same month on SageMaker (USD)", ["service", "line", "quantity", "USD", "basis"], rows)
