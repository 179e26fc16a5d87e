"""Ground-truth commands: ``mlops labels put MODEL FILE`` validates a whole label file (CSV or JSON Lines: id, label,
optional event_time) against the model's task and classes, then uploads it as it is under ``ground-truth/``, where
the quality check reads it. Nothing is uploaded from a file with a bad row: the error names the line and field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from serverless_mlops.cli.common import console, emit_json, state
from serverless_mlops.errors import DataError

labels_app = typer.Typer(name="labels", help="Ground truth: labels for earlier predictions, named by prediction id.", no_args_is_help=True)


@labels_app.command("put")
def put(
    model: Annotated[str, typer.Argument(help="model name", show_default=False)],
    file: Annotated[Path, typer.Argument(help="a .csv (header: id,label[,event_time]) or .jsonl file, optionally .gz", show_default=False)],
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="validate against this version (default: production)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Validate every row of FILE against the model's classes (or, for a regressor, as numbers), then upload it."""
    from serverless_mlops.quality.labels import ground_truth_key, label_format, parse_labels, put_ground_truth
    from serverless_mlops.store.lifecycle import resolve_version

    state.json = state.json or as_json
    if label_format(file.name) is None:
        raise DataError(f"{file}: a ground-truth file ends in .csv or .jsonl (optionally .gz)")
    try:
        data = file.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{file}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{file}: is a directory; expected a .csv or .jsonl file of labels") from exc
    backends = state.backends()
    entry = resolve_version(backends, model, version=version)
    labels = parse_labels(data, str(file), entry.signature.task, entry.signature.classes)
    suffix = file.name[file.name.lower().rindex(".csv" if label_format(file.name) == "csv" else ".jsonl") :].lower()
    store = backends.store
    key = ground_truth_key(model, datetime.now(UTC), suffix=suffix)
    put_ground_truth(store.s3, store.bucket, key, data, kms_key_id=store.kms_key_id)
    receipt: dict[str, Any] = {
        "model": model,
        "version": entry.version,
        "labels": len(labels),
        "distinct_ids": len({label.id for label in labels}),
        "uri": f"s3://{store.bucket}/{key}",
    }
    if state.json:
        emit_json(receipt)
        return
    counts = f"{receipt['labels']} label(s) for {receipt['distinct_ids']} prediction id(s)"
    console.print(
        escape(f"{model}: {counts}, valid for version {entry.version}; uploaded to {receipt['uri']}"), highlight=False, soft_wrap=True
    )


def register_commands(app: typer.Typer) -> Any:
    app.add_typer(labels_app)
    return labels_app
