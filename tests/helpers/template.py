"""The synthesized CDK app as the infra tests read it: the stacks, their IAM statements and S3 grants, the configs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk.assertions import Template

from infra.app import ServerlessMlopsStack, build_app
from tests.helpers.specs import ROOT

# a config that turns on everything optional (JWT auth, alert subscriptions of every protocol, reserved and
# provisioned concurrency), so both branches are checked
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
  concurrency: {{reserved: 20, provisioned: 2, autoscaling: {{min: 2, max: 10, utilization: 0.6}}}}
  throttling: {{rate_limit: 10, burst_limit: 20}}
batch: {{memory_mb: 3008, shard_mb: 128, max_concurrency: 500, tolerated_failure_percent: 1, buckets: [example-batch-data]}}
"""
# the retraining schedule of the spec the `retrain` fixture deploys
RETRAIN_SCHEDULE = "cron(0 3 ? * MON *)"

# each deployed function by its handler
HANDLERS = {
    "inference": "functions.inference.app.lambda_handler",
    "drift_check": "functions.drift_check.app.lambda_handler",
    "quality_check": "functions.quality_check.app.lambda_handler",
    "training": "functions.training.app.lambda_handler",
    "release": "functions.release.app.lambda_handler",
}
# the functions that run only inside a state machine (the release workflow's, batch scoring's): their grants are pinned
# by tests/infra/test_release.py and test_batch.py
WORKFLOW_HANDLERS = {
    "release_workflow": "functions.release_workflow.app.lambda_handler",
    "release_guards": "functions.release_guards.app.lambda_handler",
    "batch_job": "functions.batch_job.app.lambda_handler",
    "batch_score": "functions.batch_score.app.lambda_handler",
}


@dataclass
class Synth:
    stack: ServerlessMlopsStack
    template: Template
    raw: dict[str, Any]
    assembly_dir: Path

    def resources(self, kind: str) -> dict[str, Any]:
        return {name: r for name, r in self.raw["Resources"].items() if r["Type"] == kind}

    def resource_id(self, kind: str, prefix: str) -> str:
        """The logical id of the one resource of ``kind`` whose id starts with ``prefix`` (CDK appends a hash)."""
        (found,) = [name for name in self.resources(kind) if name.startswith(prefix)]
        return found


# CDK copies every asset (the layer is ~137 MB) into the assembly while it builds the tree; the template is the same
# without the copy, so tests skip it (make synth and cdk deploy do not)
NO_STAGING: dict[str, object] = {"aws:cdk:disable-asset-staging": True}


def synthesize(config: Path | None, stage: str) -> Synth:
    """The stack of ``stage`` from the deployment config (None: infra/deployment.yaml), synthesized with cdk-nag."""
    app = build_app(config, context=NO_STAGING)
    stack = app.node.find_child(f"serverless-mlops-{stage}")
    assert isinstance(stack, ServerlessMlopsStack)
    assembly = app.synth()  # runs the cdk-nag plugins: raises on any unacknowledged finding
    raw = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(stack=stack, template=Template.from_json(raw), raw=raw, assembly_dir=Path(assembly.directory))


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


def policy_statements(synth: Synth, function: str) -> list[dict[str, Any]]:
    """The statements of the role of ``function`` (its inline default policy)."""
    (logical_id,) = [n for n, f in synth.resources("AWS::Lambda::Function").items() if f["Properties"]["Handler"] == HANDLERS[function]]
    role = synth.raw["Resources"][logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def object_prefixes(statement: dict[str, Any]) -> set[str]:
    """``artifacts/*`` for each ``<bucket ARN>/artifacts/*`` resource of the statement."""
    return {r["Fn::Join"][1][-1].removeprefix("/") for r in as_list(statement["Resource"]) if isinstance(r, dict) and "Fn::Join" in r}
