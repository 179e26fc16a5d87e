"""``mlops serve``: the inference Lambda's own handler behind a local HTTP server, so ``curl`` works with no AWS."""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from serverless_mlops.cli.common import emit_json, say, state
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.settings import Settings
from serverless_mlops.store.registry import PRODUCTION

HANDLER_MODULE = "functions.inference.app"
# The handler module's flush of buffered data capture, run when the server stops.
SHUTDOWN_HOOK = "flush"
FUNCTION_NAME = "inference"


def load_handler(module_name: str = HANDLER_MODULE) -> tuple[Callable[[dict[str, Any], Any], Any], Callable[[], object] | None]:
    """The deployed inference ``lambda_handler`` and its capture flush (if the module has one). ``functions`` is a
    package of this distribution (as it is a folder at the Lambda asset's root), so it imports from anywhere."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise MlopsError(f"cannot import the inference handler {module_name}: {exc}") from exc
    handler = getattr(module, "lambda_handler", None)
    if not callable(handler):
        raise MlopsError(f"{module_name} has no lambda_handler")
    hook = getattr(module, SHUTDOWN_HOOK, None)
    return handler, hook if callable(hook) else None


def serve_environment(settings: Settings, models: list[str]) -> dict[str, str]:
    """The environment the handler reads (as its Lambda function's configuration would set it)."""
    env = {
        "MLOPS_BUCKET": settings.bucket,
        "MLOPS_TABLE": settings.table,
        "AWS_DEFAULT_REGION": settings.region,
        "POWERTOOLS_SERVICE_NAME": os.environ.get("POWERTOOLS_SERVICE_NAME") or FUNCTION_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ServerlessMlops",
    }
    if settings.endpoint_url:
        env["MLOPS_ENDPOINT_URL"] = settings.endpoint_url
    if settings.kms_key_id:
        env["MLOPS_KMS_KEY_ID"] = settings.kms_key_id
    if models:
        env["MLOPS_MODELS"] = ",".join(models)
    return env


def example_value(feature: Any) -> Any:
    if feature.kind == "categorical":
        return feature.categories[0] if feature.categories else "value"
    if feature.range is not None:
        return round((feature.range[0] + feature.range[1]) / 2, 3)
    return 0.0


def typical_row(backends: Any, entry: Any) -> dict[str, Any]:
    """A row of typical values from the version's training profile (each numeric feature's mean, each categorical
    feature's most frequent category): never one real training row. Without a readable profile, :func:`example_value`."""
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_mlops.model.profile import load_profile

    try:
        features = load_profile(backends.store.get(entry.profile, model=entry.model, version=entry.version))["features"]
    except (MlopsError, BotoCoreError, ClientError, OSError, ValueError, KeyError):  # an example line is not worth
        features = {}  # failing for: fall back to values that fit the signature
    row: dict[str, Any] = {}
    for feature in entry.signature.features:
        summary = features.get(feature.name, {})
        if feature.kind == "numeric" and isinstance(summary.get("mean"), float):
            row[feature.name] = float(f"{summary['mean']:.4g}")
        elif feature.kind == "categorical" and summary.get("frequencies"):
            row[feature.name] = next(iter(summary["frequencies"]))
        else:
            row[feature.name] = example_value(feature)
    return row


def curl_example(url: str, backends: Any, models: list[str]) -> str:
    """A ``curl`` command that predicts one typical row with the first served model that has a production version."""
    names = models or list(backends.registry.list_models(page_size=20).items)
    for name in names:
        try:
            entry = backends.registry.resolve(name, PRODUCTION)
        except NotFoundError:
            continue
        row = typical_row(backends, entry)
        body = json.dumps({"instances": [row]})
        return f"curl -s {url}/v1/models/{name}/predict -H 'content-type: application/json' -d {shlex.quote(body)}"
    return f"curl -s {url}/v1/models/MODEL/predict -H 'content-type: application/json' -d '{{\"instances\": [{{\"feature\": 1.0}}]}}'"


def serve(
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="port to listen on (0: a free one)")] = 8080,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    models: Annotated[list[str] | None, typer.Option("--model", "-m", help="serve only this model (repeatable; default: all)")] = None,
    endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", help="AWS endpoint (moto, LocalStack)")] = None,
) -> None:
    """Serve the inference Lambda's handler over HTTP (API Gateway HTTP API events) until Ctrl-C."""
    from serverless_mlops.local.http_api import LocalServer
    from serverless_mlops.store.lifecycle import Backends

    overrides = dict(state.settings_overrides)
    if endpoint_url:
        overrides["endpoint_url"] = endpoint_url
    settings = Settings.from_env(**overrides)
    names = list(dict.fromkeys(models or []))
    backends = Backends.from_settings(settings)
    for name in names:
        if not backends.registry.model_exists(name):
            raise NotFoundError(f"model {name!r} is not registered in table {settings.table}")
    os.environ.update(serve_environment(settings, names))
    handler, on_shutdown = load_handler()
    server = LocalServer(handler, host=host, port=port, function_name=FUNCTION_NAME, region=settings.region, on_shutdown=on_shutdown)
    example = curl_example(server.url, backends, names)
    if state.json:
        emit_json({"url": server.url, "models": names or None, "example": example})
        sys.stdout.flush()
    served = ", ".join(names) if names else "every registered model"
    say(f"serving the inference handler on [bold]{server.url}[/bold] ({served}); Ctrl-C stops")
    if not state.json:  # plain echo: rich would wrap the command and break copy-and-paste
        typer.echo(f"  {example}\n  OpenAPI document: {server.url}/openapi.json")
    server.serve_forever()
    say("stopped")


def register_commands(app: typer.Typer) -> None:
    app.command()(serve)
