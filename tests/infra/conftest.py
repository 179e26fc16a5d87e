"""Synthesize each stack once per pytest process (one App per template) and share the results.

``dev`` is infra/deployment.yaml as shipped; ``prod`` is a config that turns on everything optional (JWT auth,
alert subscriptions of every protocol, reserved and provisioned concurrency), so both branches are checked;
``retrain`` (used by tests/infra/test_retraining.py only) schedules retraining and asks for approval.
Both synthesize with cdk-nag's packs, so a fixture that returns means the synth had no unacknowledged finding.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk.assertions import Template

from infra.app import ServerlessMlopsStack, build_app
from layers.build import PYTHON_VERSION, RuntimePython, find_runtime_python
from tests.infra._runtime import link_runtime_packages

ROOT = Path(__file__).resolve().parents[2]

PROD_CONFIG = f"""
stage: prod
models: [{ROOT}/models/wine.yaml, {ROOT}/models/diabetes.yaml]
alerts:
  - {{protocol: email, endpoint: ops@example.com}}
  - {{protocol: https, endpoint: https://hooks.example.com/drift}}
  - {{protocol: sqs, endpoint: "arn:aws:sqs:us-east-1:123456789012:drift-alerts"}}
auth: {{mode: jwt, issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example", audience: [client-one]}}
inference:
  timeout_seconds: 20
  concurrency: {{reserved: 20, provisioned: 2}}
  throttling: {{rate_limit: 10, burst_limit: 20}}
"""


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
RETRAIN_SCHEDULE = "cron(0 3 ? * MON *)"


@dataclass
class Synth:
    stack: ServerlessMlopsStack
    template: Template
    raw: dict[str, Any]
    assembly_dir: Path

    def resources(self, kind: str) -> dict[str, Any]:
        return {name: r for name, r in self.raw["Resources"].items() if r["Type"] == kind}


# CDK copies every asset (the layer is ~137 MB) into the assembly while it builds the tree; the template is the same
# without the copy, so tests skip it (make synth and cdk deploy do not)
NO_STAGING = {"aws:cdk:disable-asset-staging": True}


def _synth(config: Path | None, stage: str) -> Synth:
    app = build_app(config, context=NO_STAGING)
    stack = app.node.find_child(f"serverless-mlops-{stage}")
    assert isinstance(stack, ServerlessMlopsStack)
    assembly = app.synth()  # runs the cdk-nag plugins: raises on any unacknowledged finding
    raw = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(stack=stack, template=Template.from_json(raw), raw=raw, assembly_dir=Path(assembly.directory))


@pytest.fixture(scope="session")
def dev() -> Synth:
    return _synth(None, "dev")


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    config = tmp_path_factory.mktemp("config") / "prod.yaml"
    config.write_text(PROD_CONFIG, encoding="utf-8")
    return _synth(config, "prod")


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
    return _synth(config, "dev")


def statements(synth: Synth) -> list[tuple[str, str, dict[str, Any]]]:
    """(logical id, resource type, statement) for every IAM statement anywhere in the template."""
    found = []
    for name, resource in synth.raw["Resources"].items():
        properties = resource.get("Properties", {})
        documents = [properties.get("PolicyDocument"), properties.get("KeyPolicy"), properties.get("AssumeRolePolicyDocument")]
        documents += [policy.get("PolicyDocument") for policy in properties.get("Policies", [])]
        for document in documents:
            for statement in (document or {}).get("Statement", []):
                found.append((name, resource["Type"], statement))
    return found


def s3_grants(synth: Synth, role_prefix: str) -> dict[str, set[str]]:
    """object prefix → actions, for one function's role policy."""
    (policy,) = [p for name, p in synth.resources("AWS::IAM::Policy").items() if name.startswith(role_prefix)]
    grants: dict[str, set[str]] = {}
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        for resource in as_list(statement["Resource"]):
            if isinstance(resource, dict) and "Fn::Join" in resource:
                grants.setdefault(resource["Fn::Join"][1][-1], set()).update(as_list(statement["Action"]))
    return grants


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


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
