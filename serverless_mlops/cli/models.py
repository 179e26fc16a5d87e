"""Model commands: validate, train, register, list, describe, promote, rollback, archive, history, predict."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from serverless_mlops.cli.common import caller_identity, console, emit_json, err_console, fmt_metrics, say, state, table, user
from serverless_mlops.errors import DataError, MlopsError
from serverless_mlops.store.registry import PRODUCTION, ModelVersion

if TYPE_CHECKING:
    from serverless_mlops.local.tour import TourCli

SpecArg = Annotated[Path, typer.Argument(help="model spec file (YAML)", show_default=False)]
ModelArg = Annotated[str, typer.Argument(help="model name", show_default=False)]
VersionOpt = Annotated[int | None, typer.Option("--version", "-v", min=1, help="version number")]
AliasOpt = Annotated[str | None, typer.Option("--alias", "-a", help="alias (default: production)")]


def _version_summary(v: ModelVersion) -> dict[str, Any]:
    return {
        "model": v.model,
        "version": v.version,
        "status": v.status,
        "metrics": v.metrics,
        "created_at": v.created_at,
        "created_by": v.created_by,
        "artifact": v.artifact.model_dump(),
        "run_id": v.lineage.run_id,
    }


def validate(specs: Annotated[list[Path], typer.Argument(help="spec files", show_default=False)]) -> None:
    """Check spec files (fields, estimator, parameters) without training."""
    from serverless_mlops.model.fit import resolve_estimator
    from serverless_mlops.model.spec import load_spec

    for path in specs:
        spec = load_spec(path)
        resolve_estimator(spec, str(path))
        say(f"[green]ok[/green] {path}: {spec.name} ({spec.task.value}, {len(spec.features)} features, {spec.estimator.class_name})")
    if state.json:
        emit_json({"valid": [str(p) for p in specs]})


def train(
    spec_path: SpecArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run folder (default: runs/<model>)")] = None,
    do_register: Annotated[bool, typer.Option("--register", help="upload and register the run")] = False,
    promote: Annotated[bool, typer.Option("--promote", help="register and promote to production")] = False,
) -> None:
    """Train a model from its spec locally: fit, evaluate, convert to ONNX, check parity, profile, package."""
    from serverless_mlops.model.fit import train as train_model
    from serverless_mlops.model.spec import load_spec

    spec = load_spec(spec_path)
    with err_console.status(f"training {spec.name} ({spec.estimator.class_name})…", spinner="dots"):
        trained = train_model(spec, settings=state.settings() if spec.data.uri.startswith("s3://") else None, source=str(spec_path))
    folder = trained.write(out or Path("runs") / spec.name)
    record = trained.record
    result: dict[str, Any] = {
        "model": record.model,
        "run_id": record.run_id,
        "run_dir": str(folder),
        "metrics": record.metrics,
        "parity": record.parity.model_dump(),
        "data_sha256": record.data_sha256,
    }
    parity = f"ONNX parity max diff {record.parity.max_abs_diff:.2g}"
    say(f"trained [bold]{spec.name}[/bold] → {folder}  ({fmt_metrics(record.metrics)}; {parity})")
    if do_register or promote:
        result["registered"] = _register_folder(folder, promote)
    if state.json:
        emit_json(result)


def _register_folder(folder: Path, promote: bool) -> dict[str, Any]:
    from serverless_mlops.model.fit import TrainedModel
    from serverless_mlops.store.lifecycle import register_run

    trained = TrainedModel.read(folder)
    backends = state.backends()
    entry = register_run(trained, backends, by=user())
    say(f"registered [bold]{entry.model}[/bold] version {entry.version} (artifact {entry.artifact.uri})")
    result = _version_summary(entry)
    if promote:
        by = caller_identity(state.settings())
        alias = backends.registry.promote(entry.model, entry.version, by=by, reason="mlops register --promote")
        say(f"promoted {entry.model} version {entry.version} to {alias.name} (revision {alias.revision})")
        result["alias"] = alias.model_dump(exclude={"history"})
    return result


def register(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by 'mlops train'", show_default=False)],
    promote: Annotated[bool, typer.Option("--promote", help="also promote to production")] = False,
) -> None:
    """Upload a trained run's artifacts to S3 and register it; the same run registers once."""
    result = _register_folder(run_dir, promote)
    if state.json:
        emit_json(result)


def list_(
    model: Annotated[str | None, typer.Argument(help="list this model's versions", show_default=False)] = None,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000)] = 50,
    next_token: Annotated[str | None, typer.Option("--next-token", help="continue a paged listing")] = None,
) -> None:
    """List models (with their aliases), or one model's versions."""
    registry = state.backends().registry
    token = _list_models(registry, page_size, next_token) if model is None else _list_versions(registry, model, page_size, next_token)
    if token and not state.json:
        say(f"more: --next-token {token}")


def _list_models(registry: Any, page_size: int, next_token: str | None) -> str | None:
    page = registry.list_models(page_size=page_size, next_token=next_token)
    rows: list[dict[str, Any]] = []
    for name in page.items:
        latest = registry.list_versions(name, page_size=1, newest_first=True).items
        rows.append(
            {"model": name, "latest": latest[0].version if latest else None, "aliases": {a.name: a.version for a in registry.aliases(name)}}
        )
    if state.json:
        emit_json({"models": rows, "next_token": page.next_token})
    else:
        aliases = [", ".join(f"{k}→{v}" for k, v in r["aliases"].items()) for r in rows]
        table("models", ["model", "latest version", "aliases"], [[r["model"], r["latest"], a] for r, a in zip(rows, aliases, strict=True)])
    return page.next_token  # type: ignore[no-any-return]


def _list_versions(registry: Any, model: str, page_size: int, next_token: str | None) -> str | None:
    page = registry.list_versions(model, page_size=page_size, next_token=next_token)
    by_version: dict[int, list[str]] = {}
    for alias in registry.aliases(model):
        by_version.setdefault(alias.version, []).append(alias.name)
    if state.json:
        versions = [_version_summary(v) | {"aliases": by_version.get(v.version, [])} for v in page.items]
        emit_json({"versions": versions, "next_token": page.next_token})
    else:
        rows: list[list[Any]] = [
            [v.version, v.status, ", ".join(by_version.get(v.version, [])), fmt_metrics(v.metrics), v.created_at, v.created_by]
            for v in page.items
        ]
        table(f"{model}: versions", ["version", "status", "aliases", "metrics", "created", "by"], rows)
    return page.next_token  # type: ignore[no-any-return]


def describe(model: ModelArg, version: VersionOpt = None, alias: AliasOpt = None) -> None:
    """Show one version with its lineage (default: the production version)."""
    from serverless_mlops.store.lifecycle import resolve_version

    entry = resolve_version(state.backends(), model, version=version, alias=alias)
    if state.json:
        emit_json(entry.model_dump())
        return
    lineage = entry.lineage
    rows: list[list[Any]] = [
        ["model", entry.model],
        ["version", entry.version],
        ["status", entry.status],
        ["task", entry.signature.task],
        ["metrics", fmt_metrics(entry.metrics)],
        ["parity max diff", f"{entry.parity.get('max_abs_diff', float('nan')):.3g}"],
        ["features", len(entry.signature.features)],
        ["classes", entry.signature.classes],
        ["artifact", entry.artifact.uri],
        ["artifact sha256", entry.artifact.sha256],
        ["S3 version", entry.artifact.version_id],
        ["profile", entry.profile.uri],
        ["training data", lineage.data_uri],
        ["data sha256", lineage.data_sha256],
        ["estimator", lineage.estimator],
        ["params", json.dumps(lineage.params)],
        ["code version", lineage.code_version],
        ["run id", lineage.run_id],
        ["trigger", lineage.trigger],
        ["execution", lineage.execution_arn],
        ["created", f"{entry.created_at} by {entry.created_by}"],
    ]
    table(f"{entry.model} version {entry.version}", ["field", "value"], rows)


def promote(
    model: ModelArg,
    version: Annotated[int, typer.Argument(min=1, help="version to promote", show_default=False)],
    alias: Annotated[str, typer.Option("--alias", "-a")] = PRODUCTION,
    expected_revision: Annotated[
        int | None, typer.Option("--expected-revision", min=0, help="fail unless the alias is at this revision")
    ] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Point an alias (default production) at a version, with optimistic concurrency; the alias history records your
    AWS identity (the STS caller ARN)."""
    registry = state.backends().registry
    by = caller_identity(state.settings())
    result = registry.promote(model, version, alias=alias, expected_revision=expected_revision, by=by, reason=reason)
    if state.json:
        emit_json(result.model_dump(exclude={"history"}))
        return
    say(f"{model}: {alias} → version {result.version} (revision {result.revision})")


def rollback(
    model: ModelArg,
    alias: Annotated[str, typer.Option("--alias", "-a")] = PRODUCTION,
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Point an alias back at the version it served before the current one; the alias history records your AWS
    identity (the STS caller ARN)."""
    registry = state.backends().registry
    before = registry.get_alias(model, alias).version
    result = registry.rollback(model, alias=alias, by=caller_identity(state.settings()), reason=reason)
    if state.json:
        emit_json(result.model_dump(exclude={"history"}) | {"from_version": before})
        return
    say(f"{model}: {alias} rolled back from version {before} to version {result.version} (revision {result.revision})")


def history(model: ModelArg, alias: Annotated[str, typer.Option("--alias", "-a")] = PRODUCTION) -> None:
    """Show an alias's history: every move, when and by whom."""
    current = state.backends().registry.get_alias(model, alias)
    if state.json:
        emit_json([c.model_dump() for c in current.history])
        return
    table(
        f"{model}: {alias} history",
        ["revision", "action", "from", "to", "at", "by", "reason"],
        [[c.revision, c.action, c.from_version, c.to_version, c.at, c.by, c.reason] for c in current.history],
        fold=("by",),
    )


def archive(model: ModelArg, version: Annotated[int, typer.Argument(min=1, show_default=False)]) -> None:
    """Archive a version that no alias points at."""
    entry = state.backends().registry.archive(model, version)
    if state.json:
        emit_json(_version_summary(entry))
        return
    say(f"{model} version {version} archived")


def read_instances(path: Path, numeric: set[str]) -> tuple[str, list[Any]]:
    """("records", [...]) from a JSON list, {"instances": [...]} or a CSV file with a header; ("rows", [[...]]) from
    {"inputs": [[...]]} (values in signature order)."""
    try:
        text = sys_stdin_or_file(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read input: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        records: list[Any] = []
        for row_number, row in enumerate(reader, start=1):
            record: dict[str, Any] = {}
            for key, value in row.items():
                if key is None:
                    raise DataError(f"{path}: row {row_number} has more values than the header has columns")
                if key in numeric:
                    try:
                        record[key] = float(value)
                    except (TypeError, ValueError) as exc:
                        raise DataError(f"{path}: row {row_number}, column {key!r}: expected a number") from exc
                else:
                    record[key] = value
            records.append(record)
        return "records", records
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    elif isinstance(document, dict) and "inputs" in document:
        return "rows", document["inputs"] if isinstance(document["inputs"], list) else [document["inputs"]]
    if not isinstance(document, list):
        raise DataError(f'{path}: expected a list of records, {{"instances": [...]}} or {{"inputs": [[...]]}}')
    return "records", document


def sys_stdin_or_file(path: Path) -> str:
    import sys

    # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark that would stick to the first header
    return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8-sig")


def _explain_refusal(path: Path, kind: str, instances: list[Any], features: list[str], exc: Any) -> str:
    """One line for a refused input file: a column absent from every row, else the first problem with its place."""
    is_csv = path.suffix.lower() == ".csv"
    records = [r for r in instances if isinstance(r, dict)]
    absent = [name for name in features if records and len(records) == len(instances) and all(name not in r for r in records)]
    if kind == "records" and absent:
        noun = "column" if is_csv else "feature"
        return f"{path}: no {noun}{'s' if len(absent) > 1 else ''} {', '.join(repr(a) for a in absent)} in the input"
    first = exc.details[0] if exc.details else {}
    if first.get("row") is None:
        return f"{path}: {exc}"
    # a CSV's rows are numbered from 1 (data rows, as in every other message); JSON instances by index from 0
    place = f"row {first['row'] + 1}" if is_csv else f"instance {first['row']}"
    field = f", field {first['field']!r}" if first.get("field") else ""
    return f"{path}: {len(exc.details)} invalid value(s) in the input ({place}{field}: {first.get('problem')})"


def predict(
    model: ModelArg,
    input_path: Annotated[Path, typer.Option("--input", "-i", help="JSON or CSV file of instances ('-' for JSON on stdin)")],
    version: VersionOpt = None,
    alias: AliasOpt = None,
) -> None:
    """Run a registered model's ONNX graph (fetched from S3, sha256-verified) on instances from a file."""
    from serverless_mlops.errors import InvalidInputError
    from serverless_mlops.serving.onnx_model import load_model
    from serverless_mlops.store.lifecycle import resolve_version

    backends = state.backends()
    entry = resolve_version(backends, model, version=version, alias=alias)
    numeric = {f.name for f in entry.signature.features if f.kind == "numeric"}
    kind, instances = read_instances(input_path, numeric)
    loaded = load_model(backends, entry)
    try:
        prediction = loaded.predict_rows(instances) if kind == "rows" else loaded.predict_records(instances)
    except InvalidInputError as exc:
        raise MlopsError(_explain_refusal(input_path, kind, instances, entry.signature.feature_names, exc)) from exc
    result: dict[str, Any] = {"model": entry.model, "version": entry.version, "predictions": prediction.predictions}
    if prediction.probabilities is not None:
        result["probabilities"] = prediction.probabilities
    if state.json:
        emit_json(result)
        return
    columns = ["row", "prediction"] + ([f"p({c})" for c in entry.signature.classes or []] if prediction.probabilities else [])
    rows: list[list[Any]] = [
        [i, p, *([f"{x:.4f}" for x in prediction.probabilities[i]] if prediction.probabilities else [])]
        for i, p in enumerate(prediction.predictions)
    ]
    table(f"{entry.model} version {entry.version}", columns, rows)
    console.print(f"{len(rows)} prediction(s)", highlight=False)


def init() -> None:
    """Create the artifact bucket and registry table on a local endpoint (moto, LocalStack); on AWS, cdk deploy does."""
    from serverless_mlops.local.moto import ensure_resources

    settings = state.settings()
    if not settings.endpoint_url:
        raise MlopsError("init creates resources on a local endpoint only: pass --endpoint-url (on AWS, 'cdk deploy' creates them)")
    ensure_resources(settings)
    if state.json:
        emit_json({"bucket": settings.bucket, "table": settings.table, "endpoint_url": settings.endpoint_url})
        return
    say(f"bucket {settings.bucket} and table {settings.table} ready at {settings.endpoint_url}")


def demo(
    template: Annotated[
        Path | None,
        typer.Option("--template", help="a synthesized *.template.json (default: cdk.out or build/local.out when fresh, else a synthesis)"),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="where the drift report is written")] = Path("build/demo"),
) -> None:
    """The whole loop on this machine (what 'make demo' runs): train, predict over HTTP, drift, alert, retrain,
    promote, roll back, on the synthesized stack running locally; nothing is left running."""
    from rich.console import Console

    from serverless_mlops.local.demo import run_demo

    as_json = state.json  # read first: the tour runs mlops commands itself, which set the CLI's options anew
    # under --json the tour's narration goes to stderr, so stdout holds only the JSON document
    narration = Console(highlight=False, soft_wrap=True, stderr=as_json)
    result = run_demo(cli=tour_cli(), template=template, out_dir=out, console=narration)
    if as_json:
        steps = [{"step": s.number, "title": s.title, "outcome": s.outcome, "seconds": round(s.seconds, 2)} for s in result.steps]
        emit_json({"steps": steps, "drift_report": str(result.report_html), "production_history": result.history})


def tour_cli() -> TourCli:
    """What the demo's tour does through this CLI: ``mlops`` itself (the rollback), and following the retraining
    execution as ``mlops retrain`` does."""
    from serverless_mlops.cli.entry_point import main
    from serverless_mlops.cli.retrain import follow, outcome_line
    from serverless_mlops.local.tour import TourCli

    return TourCli(run=main, follow=lambda sfn, arn, show: follow(sfn, arn, show=show), outcome_line=outcome_line)


def register_commands(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(train)
    app.command()(register)
    app.command("list")(list_)
    app.command()(describe)
    app.command()(promote)
    app.command()(rollback)
    app.command()(history)
    app.command()(archive)
    app.command()(predict)
    app.command()(init)
    app.command()(demo)
