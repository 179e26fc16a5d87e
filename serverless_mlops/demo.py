"""``make demo``: the loop so far, on an embedded moto server on 127.0.0.1 — no AWS account, no docker.

Trains the example models, registers them in the DynamoDB registry (artifacts in S3), promotes them, lists the
registry, predicts holdout rows through the registered ONNX graphs, then retrains one model, promotes the new
version and rolls back, printing each step.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from serverless_mlops.lifecycle import Backends, load_model, register_run, resolve_version
from serverless_mlops.local import LocalAws, ensure_resources
from serverless_mlops.settings import Settings

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def run_demo(models_dir: Path = MODELS_DIR, console: Console | None = None) -> dict[str, int]:
    """Run the tour; returns the production version of each model at the end."""
    from serverless_mlops.data import load_dataset
    from serverless_mlops.spec import load_spec
    from serverless_mlops.training import train

    console = console or Console(highlight=False)
    started = time.perf_counter()
    specs = [load_spec(path) for path in sorted(models_dir.glob("*.yaml"))]
    if not specs:
        raise FileNotFoundError(f"no model specs in {models_dir}")
    with LocalAws() as aws, tempfile.TemporaryDirectory(prefix="mlops-demo-") as workdir:
        settings = Settings(endpoint_url=aws.endpoint_url)
        console.print(f"[bold]1. local AWS[/bold]: moto server at {aws.endpoint_url}; bucket {settings.bucket}, table {settings.table}")
        ensure_resources(settings)
        backends = Backends.from_settings(settings)

        console.print("[bold]2. train, register and promote[/bold] the example models")
        for spec in specs:
            t0 = time.perf_counter()
            trained = train(spec)
            trained.write(Path(workdir) / spec.name)
            entry = register_run(trained, backends, by="demo")
            alias = backends.registry.promote(spec.name, entry.version, by="demo", reason="first model")
            metrics = ", ".join(f"{k}={v:.3f}" for k, v in trained.record.metrics.items())
            console.print(
                f"   {spec.name:<14} {spec.estimator.class_name:<24} {metrics}  parity≤{trained.record.parity.max_abs_diff:.1e}"
                f"  → version {entry.version}, {alias.name} (sha256 {entry.artifact.sha256[:12]}…)  {time.perf_counter() - t0:.1f}s"
            )

        console.print("[bold]3. the registry[/bold]")
        listing = Table(show_header=True, header_style="bold")
        for column in ("model", "versions", "production", "metric"):
            listing.add_column(column)
        for name in backends.registry.list_models().items:
            versions = backends.registry.list_versions(name).items
            production = backends.registry.resolve(name)
            metric = next(s.evaluation.metric.value for s in specs if s.name == name)
            listing.add_row(name, str(len(versions)), str(production.version), f"{metric}={production.metrics[metric]:.3f}")
        console.print(listing)

        console.print("[bold]4. predict[/bold] three rows of each model's data through the registered ONNX graph (sha256-verified)")
        for spec in specs:
            entry = resolve_version(backends, spec.name)
            model = load_model(backends, entry)
            frame = load_dataset(spec).frame.head(3)
            records = [
                {f.name: (row[f.name] if f.type.value == "categorical" else float(row[f.name])) for f in spec.features}
                for _, row in frame.iterrows()
            ]
            result = model.predict_records(records)
            shown = [round(p, 1) if isinstance(p, float) else p for p in result.predictions]
            console.print(f"   {spec.name:<14} version {entry.version}: predicted {shown}, actual {frame[spec.target].tolist()}")

        console.print("[bold]5. retrain, promote, roll back[/bold]")
        spec = specs[0]
        entry = register_run(train(spec), backends, by="demo")
        backends.registry.promote(spec.name, entry.version, by="demo", reason="retrained")
        console.print(f"   {spec.name}: version {entry.version} registered and promoted")
        alias = backends.registry.rollback(spec.name, by="demo", reason="demo rollback")
        console.print(f"   {spec.name}: rolled back, production → version {alias.version} (revision {alias.revision})")
        for change in alias.history:
            move = f"{change.from_version} → {change.to_version}"
            console.print(f"      rev {change.revision}: {change.action:<8} {move}  by {change.by}  {change.reason}")
        final = {s.name: backends.registry.get_alias(s.name, "production").version for s in specs}
    console.print(f"[green]done[/green] in {time.perf_counter() - started:.1f}s; the moto server is stopped.")
    return final
