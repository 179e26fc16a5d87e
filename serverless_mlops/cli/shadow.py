"""Shadow commands: ``mlops shadow start MODEL VERSION --sample 0.2``, ``mlops shadow stop MODEL [VERSION]`` and
``mlops shadow report MODEL`` (how often the shadow agreed with production, from the captured rows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from serverless_mlops.cli.common import caller_identity, emit_json, say, state, table
from serverless_mlops.cli.drift import parse_window
from serverless_mlops.errors import NotFoundError, RegistryError
from serverless_mlops.store.registry import PRODUCTION

shadow_app = typer.Typer(
    name="shadow", help="Score a share of an alias's requests with another version, in the background.", no_args_is_help=True
)

ModelArg = Annotated[str, typer.Argument(help="model name", show_default=False)]
AliasOpt = Annotated[str, typer.Option("--alias", "-a", help="the alias whose requests the shadow scores")]


@shadow_app.command("start")
def start(
    model: ModelArg,
    version: Annotated[int, typer.Argument(min=1, help="the version that scores in the background", show_default=False)],
    sample: Annotated[float, typer.Option("--sample", help="share of requests it scores, above 0 and at most 1")] = 0.2,
    alias: AliasOpt = PRODUCTION,
) -> None:
    """Let VERSION score a sample of the alias's requests beside the version that answers them; its predictions are
    captured and compared, never returned. Takes effect at each endpoint's next alias check."""
    registry = state.backends().registry
    result = registry.set_shadow(model, version, sample, alias=alias, by=caller_identity(state.settings()))
    if state.json:
        emit_json(result.model_dump(exclude={"history"}))
        return
    say(f"{model}: version {version} shadows {alias} (version {result.version}) on {sample:.0%} of requests (revision {result.revision})")


@shadow_app.command("stop")
def stop(
    model: ModelArg,
    version: Annotated[int | None, typer.Argument(min=1, help="the shadow's version, to check it is the one stopped")] = None,
    alias: AliasOpt = PRODUCTION,
) -> None:
    """Stop the alias's shadow."""
    registry = state.backends().registry
    current = registry.get_alias(model, alias)
    if current.shadow is None:
        raise NotFoundError(f"alias {alias!r} of model {model!r} has no shadow")
    if version is not None and current.shadow.version != version:
        raise RegistryError(f"the shadow of {model!r} {alias} is version {current.shadow.version}, not {version}; nothing stopped")
    result = registry.clear_shadow(model, alias=alias, expected_revision=current.revision, by=caller_identity(state.settings()))
    if state.json:
        emit_json(result.model_dump(exclude={"history"}))
        return
    say(f"{model}: shadow version {current.shadow.version} stopped (revision {result.revision})")


@shadow_app.command("report")
def report(
    model: ModelArg,
    window: Annotated[str, typer.Option("--window", "-w", help="24h, 90m, 7d, or START/END in ISO 8601")] = "24h",
) -> None:
    """How often the shadow agreed with the version that answered, over the window's captured rows."""
    from serverless_mlops.serving.shadow_report import captured_rows, shadow_agreement

    start_at, end_at = parse_window(window, datetime.now(UTC))
    backends = state.backends()
    tasks: dict[int, bool] = {}

    def is_classification(version: int) -> bool:
        if version not in tasks:
            tasks[version] = backends.registry.describe(model, version).signature.is_classification
        return tasks[version]

    found = shadow_agreement(captured_rows(backends.store.s3, backends.store.bucket, model, start_at, end_at), is_classification)
    document: dict[str, Any] = {
        "model": model,
        "start": start_at.isoformat(),
        "end": end_at.isoformat(),
        "comparisons": [c.as_dict() for c in found],
    }
    if state.json:
        emit_json(document)
        return
    if not found:
        say(f"{model}: no captured rows with a shadow's prediction between {start_at:%Y-%m-%d %H:%M} and {end_at:%Y-%m-%d %H:%M} UTC")
        return
    table(
        f"{model}: shadow agreement {start_at:%Y-%m-%d %H:%M} .. {end_at:%Y-%m-%d %H:%M} UTC",
        ["version", "shadow", "rows", "agreed", "agreement", "mean |diff|"],
        [
            [
                c.version,
                c.shadow_version,
                c.rows,
                c.agreed,
                f"{c.agreement:.1%}",
                "" if c.mean_abs_diff is None else f"{c.mean_abs_diff:.4g}",
            ]
            for c in found
        ],
    )


def register_commands(app: typer.Typer) -> Any:
    app.add_typer(shadow_app)
    return shadow_app
