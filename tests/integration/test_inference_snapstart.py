"""The inference function's SnapStart hooks (functions/inference/snapstart.py) on moto: before the snapshot the served
models are loaded and no AWS client survives; after a restore the sampler is reseeded, new clients are made on first
use and the loaded models serve without being fetched again."""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from functions.inference import snapstart
from serverless_mlops import aws
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.api_models import PredictRequest
from serverless_mlops.serving.endpoint import Endpoint, LogTelemetry
from serverless_mlops.serving.endpoint_settings import EndpointSettings
from tests.helpers.inference import moto_backends, records, register


def test_warm_loads_the_served_models_and_the_snapshot_keeps_no_client(
    trained_models: dict[str, TrainedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_backends() as backends:
        register(backends, trained_models["breast-cancer"], "bc-1", promote=True)
        register(backends, trained_models["wine"], "wine-1")  # registered, but nothing at production yet
        made: list[weakref.ref[Any]] = []
        real = aws.client

        def counting(service: str, settings: Any, *, budget_ms: float | None = None) -> Any:
            created = real(service, settings, budget_ms=budget_ms)
            made.append(weakref.ref(created))
            return created

        monkeypatch.setattr(aws, "client", counting)
        settings = EndpointSettings(MLOPS_MODELS="breast-cancer,wine", MLOPS_REFRESH_SECONDS=0)
        endpoint = Endpoint(settings, telemetry=LogTelemetry())

        assert snapstart.warm(lambda: endpoint) == ["breast-cancer"]  # wine loads on its first request, as without SnapStart
        (loaded,) = endpoint.models.loaded()
        assert (loaded.entry.model, loaded.entry.version) == ("breast-cancer", 1)
        assert made  # the load used clients …
        gc.collect()
        assert [ref for ref in made if ref() is not None] == []  # … and nothing holds one now: not in the snapshot

        seeded = []
        snapstart.restored(lambda: endpoint, seed=lambda: seeded.append(True))
        assert seeded == [True]
        before = len(made)
        answer = endpoint.predict("breast-cancer", PredictRequest(instances=records("breast-cancer", 2)))
        assert answer.version == 1
        assert len(made) > before  # the alias check made a client anew
        assert endpoint.models.loaded()[0].model is loaded.model  # the snapshot's model serves, not fetched again


def test_a_given_backend_is_not_forgotten(trained_models: dict[str, TrainedModel]) -> None:
    with moto_backends() as backends:
        register(backends, trained_models["wine"], "wine-1", promote=True)
        endpoint = Endpoint(EndpointSettings(MLOPS_MODELS="wine"), backends=backends, telemetry=LogTelemetry())
        assert snapstart.warm(lambda: endpoint) == ["wine"]
        assert endpoint.backends() is backends


def test_hooks_register_with_the_runtimes_library_and_not_elsewhere(trained_models: dict[str, TrainedModel]) -> None:
    registered: dict[str, Any] = {}
    hooks = SimpleNamespace(
        register_before_snapshot=lambda f: registered.setdefault("before", f),
        register_after_restore=lambda f: registered.setdefault("after", f),
    )
    with moto_backends() as backends:
        register(backends, trained_models["diabetes"], "diabetes-1", promote=True)
        endpoint = Endpoint(EndpointSettings(MLOPS_MODELS="diabetes"), backends=backends, telemetry=LogTelemetry())
        assert snapstart.register(lambda: endpoint, hooks) is True
        assert registered["before"]() == ["diabetes"]  # the hook Lambda calls takes no argument
        registered["after"]()
    assert snapstart.register(lambda: endpoint) is False  # no snapshot_restore_py outside Lambda's runtime
