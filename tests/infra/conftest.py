"""Synthesize each stack once per pytest process (one App per template) and share the results.

``dev`` is infra/deployment.yaml as shipped; ``prod`` is a config that turns on everything optional (JWT auth,
alert subscriptions of every protocol, reserved and provisioned concurrency), so both branches are checked;
``retrain`` (used by tests/infra/test_retraining.py only) schedules retraining and asks for approval.
Both synthesize with cdk-nag's packs, so a fixture that returns means the synth had no unacknowledged finding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layers.build import PYTHON_VERSION, RuntimePython, find_runtime_python
from tests.helpers.runtime import link_runtime_packages
from tests.helpers.specs import ROOT
from tests.helpers.template import PROD_CONFIG, RETRAIN_SCHEDULE, Synth, synthesize

# A deployment that turns on what dev and prod leave off for retraining: a spec with a retraining schedule and
# require_approval, and non-default function sizes, retry policy and approval timeout (written by the `retrain` fixture)
RETRAIN_CONFIG = """
stage: dev
models: [{wine}, {root}/models/diabetes.yaml]
retraining:
  train: {{memory_mb: 4096, timeout_seconds: 600}}
  release: {{memory_mb: 256, timeout_seconds: 30}}
  retry: {{interval_seconds: 1, backoff_rate: 1.0, max_attempts: 3}}
  approval_timeout_hours: 24
log_retention_days: 14
"""


@pytest.fixture(params=["dev", "prod"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each stage's synthesized template in turn (a module may override it with other stages)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def dev() -> Synth:
    return synthesize(None, "dev")


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    config = tmp_path_factory.mktemp("config") / "prod.yaml"
    config.write_text(PROD_CONFIG, encoding="utf-8")
    return synthesize(config, "prod")


@pytest.fixture(scope="session")
def retrain(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    import yaml

    folder = tmp_path_factory.mktemp("retrain")
    spec = yaml.safe_load((ROOT / "models" / "wine.yaml").read_text(encoding="utf-8"))
    spec["data"]["uri"] = str(ROOT / "models" / "data" / "wine.csv")
    spec["evaluation"]["require_approval"] = True
    spec["retraining"] = {"schedule": RETRAIN_SCHEDULE}
    (folder / "wine.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    config = folder / "retrain.yaml"
    config.write_text(RETRAIN_CONFIG.format(wine=folder / "wine.yaml", root=ROOT), encoding="utf-8")
    return synthesize(config, "dev")


@pytest.fixture(scope="session")
def runtime_python() -> RuntimePython:
    """The runtime's Python (3.12), or a skip that says why: the layer tests run the layer as Lambda does."""
    found = find_runtime_python(PYTHON_VERSION)
    if found is None:
        pytest.skip(f"no Python {PYTHON_VERSION} interpreter on this machine (set MLOPS_LAYER_PYTHON): cannot run the layer as Lambda does")
    return found


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the runtime's /var/runtime (boto3 and its dependencies)."""
    return link_runtime_packages(tmp_path_factory.mktemp("var-runtime"))
