"""Shared by the inference handler tests: models registered on moto, an endpoint with a test clock, one call helper."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from moto import mock_aws

from functions.inference.app import create_handler
from functions.inference.telemetry import PowertoolsTelemetry
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.model.data import load_dataset
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.endpoint import Endpoint
from serverless_mlops.serving.endpoint_settings import EndpointSettings
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, lineage_of, register_record
from serverless_mlops.store.registry import ModelVersion
from tests.helpers.events import LambdaContext, load_event
from tests.helpers.specs import example_spec

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Clock:
    """Epoch seconds that only move when a test moves them."""

    def __init__(self, now: float = 1_795_600_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def moto_backends() -> Iterator[Backends]:
    """A moto account with the bucket and table, for module-scoped fixtures (conftest's ``backends`` is per test)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            patch.setenv(name, value)
        with mock_aws():
            settings = Settings()
            ensure_resources(settings)
            yield Backends.from_settings(settings)


def register(backends: Backends, trained: TrainedModel, run_id: str, *, promote: bool = False) -> ModelVersion:
    """Register ``trained`` as a new version (a distinct run id makes a distinct version of the same artifact)."""
    record = trained.record
    artifact = backends.store.put(record.model, trained.onnx_bytes, "model.onnx")
    profile = backends.store.put(record.model, trained.profile_bytes, "profile.json.gz")
    entry = register_record(backends, record, artifact, profile, by="tests", lineage=lineage_of(record, run_id=run_id))
    if promote:
        backends.registry.promote(record.model, entry.version, by="tests")
    return entry


def endpoint(backends: Backends, clock: Clock, **settings: Any) -> Endpoint:
    values = {"MLOPS_MAX_ROWS": 50, "MLOPS_MAX_BODY_BYTES": 100_000, "MLOPS_REFRESH_SECONDS": 30, **settings}
    return Endpoint(EndpointSettings(**values), backends=backends, clock=clock, telemetry=PowertoolsTelemetry())


def handler_for(ep: Endpoint) -> Handler:
    return create_handler(lambda: ep)


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity (which json.dumps writes by default) are not JSON."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"the answer holds {constant}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def call(handler: Handler, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
    """Status, decoded JSON body and headers of one invocation with an adapted sample event."""
    event = load_event(kwargs.pop("template", "http_api_v2_iam_post.json"), method=method, path=path, body=body, **kwargs)
    response = handler(event, LambdaContext())
    return response["statusCode"], strict_json(response["body"]), response.get("headers") or {}


def records(name: str, rows: int = 5, start: int = 0) -> list[dict[str, Any]]:
    """Rows of an example model's own data as JSON-shaped objects."""
    spec = example_spec(name)
    frame = load_dataset(spec).frame.iloc[start : start + rows]
    return [
        {f.name: (row[f.name] if f.type.value == "categorical" else float(row[f.name])) for f in spec.features}
        for _, row in frame.iterrows()
    ]


def onnx_outputs(trained: TrainedModel, rows: list[dict[str, Any]]) -> tuple[list[Any], list[list[float]] | None]:
    """What the registered ONNX graph itself answers for ``rows`` (no validation, no rounding)."""
    session = ort.InferenceSession(trained.onnx_bytes, providers=["CPUExecutionProvider"])
    signature = trained.record.signature
    feeds = {
        f.input_name: np.array([[r[f.name]] for r in rows], dtype=np.float32 if f.kind == "numeric" else object) for f in signature.features
    }
    if signature.is_classification:
        labels, probabilities = session.run([signature.label_output, signature.probabilities_output], feeds)
        return labels.ravel().tolist(), probabilities.tolist()
    (values,) = session.run([signature.value_output], feeds)
    return values.ravel().tolist(), None
