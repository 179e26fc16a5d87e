"""Shared fixtures: fake AWS credentials everywhere, moto-backed backends, trained example models (once per session)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from serverless_mlops.local.moto import ensure_resources, serialize_moto_dynamodb
from serverless_mlops.model.fit import TrainedModel, train
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.specs import EXAMPLE_NAMES, example_spec


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real account or a stray endpoint."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MLOPS_ENDPOINT_URL", "MLOPS_BUCKET", "MLOPS_TABLE", "MLOPS_KMS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(scope="session", autouse=True)
def _atomic_moto_dynamodb() -> None:
    """DynamoDB applies each request atomically; moto needs a lock to do the same (see serialize_moto_dynamodb)."""
    serialize_moto_dynamodb()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def backends(settings: Settings) -> Iterator[Backends]:
    """The artifact store and registry on moto's in-process mock, with the bucket and table created."""
    with mock_aws():
        ensure_resources(settings)
        yield Backends.from_settings(settings)


@pytest.fixture(scope="session")
def trained_models() -> dict[str, TrainedModel]:
    """Each example model trained once per test session (a few seconds in all)."""
    return {name: train(example_spec(name)) for name in EXAMPLE_NAMES}


@pytest.fixture(scope="session")
def dev_synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cloud assembly folder of the default deployment config (infra/deployment.yaml, all example models),
    synthesized once per session as local mode synthesizes it (no cdk-nag, every asset staged into it) into a
    temporary folder, never cdk.out; its ``serverless-mlops-dev.template.json`` is what ``mlops local up --template``
    takes. Removed at the end: its staged layers weigh 370 MB."""
    from serverless_mlops.local.assembly import ROOT, synthesized

    outdir = tmp_path_factory.mktemp("dev-synth")
    _, assembly_dir = synthesized(config=ROOT / "infra" / "deployment.yaml", outdir=outdir)
    yield assembly_dir
    shutil.rmtree(outdir, ignore_errors=True)
