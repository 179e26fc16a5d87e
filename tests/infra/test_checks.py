"""cdk-nag and cfn-lint on the synthesized templates: zero unacknowledged findings, zero errors."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cfnlint.api import lint

from infra.nag import add_nag_checks
from tests.helpers.template import Synth

# warnings this app adds on purpose; with @aws-cdk/core:annotationsInValidationReport they are in the validation report too
KNOWN_WARNINGS = {"Annotation::serverless-mlops:no-alert-subscribers"}


def test_cdk_nag_packs_ran_and_found_nothing_unacknowledged(synth: Synth) -> None:
    report = json.loads((synth.assembly_dir / "validation-report.json").read_text(encoding="utf-8"))
    plugins = {plugin["pluginName"]: plugin for plugin in _plugin_reports(report)}
    assert {"AwsSolutions", "Serverless"} <= set(plugins), "both cdk-nag packs must have run"
    # the fixture's synth would have raised on a finding; the report agrees
    for name in ("AwsSolutions", "Serverless"):
        assert plugins[name]["violations"] == [], name
    # anything else in the report (construct annotations) is a warning this app means to give, never an error
    others = [v for name, plugin in plugins.items() if name not in ("AwsSolutions", "Serverless") for v in plugin["violations"]]
    assert {(v["ruleName"], v["severity"]) for v in others} <= {(rule, "warning") for rule in KNOWN_WARNINGS}


def _plugin_reports(report: dict) -> list[dict]:
    found: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "violations" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    return found


def test_cdk_nag_fails_a_synth_with_a_finding() -> None:
    """The gate is real: a bucket that accepts plain HTTP and keeps no access logs fails the synth."""
    app = cdk.App()
    stack = cdk.Stack(app, "Careless")
    s3.Bucket(stack, "Open")
    add_nag_checks(app)
    with pytest.raises(Exception, match="AwsSolutions-S10"):
        app.synth()


NAG_PACKS = ("AwsSolutions::", "Serverless::")  # CDK core acknowledges some of its own CloudFormation-Validate warnings


def test_every_acknowledgment_carries_a_reason(synth: Synth) -> None:
    acknowledged: dict[str, str] = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if "acknowledge" in entry.type.lower():
                acknowledged.update(
                    {f"{construct.node.path} {finding}": reason for finding, reason in entry.data.items() if finding.startswith(NAG_PACKS)}
                )
    assert len(acknowledged) >= 20
    for finding, reason in acknowledged.items():
        assert isinstance(reason, str), finding
        assert len(reason) >= 40, finding
    # narrow: only functions' own resources, their policies, the failures queue, the state machine's policy and CDK's
    # BucketDeployment function (which publishes the specs) carry acknowledgments
    deployment = next(c.node.id for c in synth.stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
    assert {finding.split(" ")[0].rsplit("/", 1)[0] for finding in acknowledged} <= {
        f"{synth.stack.stack_name}/{path}"
        for path in (
            "Inference/Handler/Function", "Inference/Handler/Role/DefaultPolicy",
            "Monitoring/DriftCheck/Function", "Monitoring/DriftCheck/Role/DefaultPolicy", "Monitoring/Failures",
            "Monitoring/QualityCheck/Function", "Monitoring/QualityCheck/Role/DefaultPolicy",
            "Retraining/Training/Function", "Retraining/Training/Role/DefaultPolicy",
            "Retraining/Release/Function", "Retraining/Release/Role/DefaultPolicy",
            "Retraining/StateMachine/Role/DefaultPolicy",
            deployment, "Retraining/SpecsRole/DefaultPolicy",
            "Release/Workflow/Function", "Release/Workflow/Role/DefaultPolicy", "Release/Guards/Function",
            "Release/Guards/Role/DefaultPolicy", "Release/GuardReads", "Release/StateMachine/Role/DefaultPolicy",
            "Release/OperatorPolicy",
            "Batch/JobFunction/Function", "Batch/JobFunction/Role/DefaultPolicy",
            "Batch/ScoreFunction/Function", "Batch/ScoreFunction/Role/DefaultPolicy",
            "Batch/StateMachine/Role/DefaultPolicy", "Batch/StateMachine/DistributedMapPolicy",
        )
    }  # fmt: skip


def test_cfn_lint_finds_no_errors(synth: Synth) -> None:
    matches = lint(json.dumps(synth.raw), regions=["us-east-1"])
    errors = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path or []))})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    # the one warning left: CDK adds DependsOn on a role its function already references (W3005, redundant, harmless)
    assert {m.rule.id for m in matches} <= {"W3005"}
