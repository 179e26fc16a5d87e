"""What tells the stages apart once deployed: prod's termination protection, the stage in every name a person sees in
the account, and the tags (project, stage, the config's own) on every resource that takes tags."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest

from tests.helpers.template import PROD_CONFIG, Synth, synthesize

TAGS = {"team": "ml platform", "cost-center": "4711", "owner": "ops@example.com"}
# Names CloudFormation would otherwise generate from the stack's name (which carries the stage): where the template
# sets one itself, it must carry the stage too, or dev and prod meet under one name in the same account.
NAMED = {
    "AWS::ApiGatewayV2::Api": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::Rule": "Name",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
}
# Shown to people rather than used as an identifier: the alert e-mails' sender name
DISPLAYED = {"AWS::SNS::Topic": "DisplayName"}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The conftest's prod deployment with tags of its own (one of which renames the project)."""
    config = tmp_path_factory.mktemp("tagged") / "prod.yaml"
    tags = ", ".join(f"{key!r}: {value!r}" for key, value in {**TAGS, "project": "fraud-scoring"}.items())
    config.write_text(PROD_CONFIG + f"tags: {{{tags}}}\n", encoding="utf-8")
    return synthesize(config, "prod")


def stack_artifact(synth: Synth) -> dict[str, Any]:
    """The stack's entry in the cloud assembly's manifest: what `cdk deploy` hands CloudFormation beside the template."""
    manifest = json.loads((synth.assembly_dir / "manifest.json").read_text(encoding="utf-8"))
    return manifest["artifacts"][synth.stack.stack_name]["properties"]  # type: ignore[no-any-return]


def test_only_prod_is_protected_from_termination(dev: Synth, tagged: Synth) -> None:
    assert stack_artifact(tagged).get("terminationProtection") is True
    assert tagged.stack.termination_protection
    assert not stack_artifact(dev).get("terminationProtection", False)
    assert not dev.stack.termination_protection


def rendered_tags(value: Any) -> dict[str, str]:
    """A resource's tags as the template holds them: a list of {Key, Value} (most types) or a map (API Gateway v2, SSM)."""
    if isinstance(value, dict):
        return dict(value)
    return {tag["Key"]: tag["Value"] for tag in value}


def taggable(synth: Synth) -> dict[str, tuple[str, list[Any]]]:
    """logical id → (type, the tags of each thing it creates), for every resource CloudFormation can tag in the stack.

    A DynamoDB global table (CDK's TableV2) holds its tags per replica (``Replicas[].Tags``), not on the resource."""
    resources = synth.raw["Resources"]
    found: dict[str, tuple[str, list[Any]]] = {}
    for construct in synth.stack.node.find_all():
        if isinstance(construct, cdk.CfnResource) and cdk.TagManager.is_taggable(construct):
            name = construct.tags.tag_property_name
            logical_id = synth.stack.resolve(construct.logical_id)
            found[logical_id] = (construct.cfn_resource_type, [resources[logical_id]["Properties"].get(name[0].upper() + name[1:], [])])
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::DynamoDB::GlobalTable":
            found[logical_id] = (resource["Type"], [replica.get("Tags", []) for replica in resource["Properties"]["Replicas"]])
    return found


@pytest.mark.parametrize(("name", "wanted"), [("dev", {"project": "serverless-mlops", "stage": "dev"}), ("tagged", {})])
def test_every_taggable_resource_carries_the_deployment_tags(request: pytest.FixtureRequest, name: str, wanted: dict[str, str]) -> None:
    synth: Synth = request.getfixturevalue(name)
    wanted = wanted or {**TAGS, "project": "fraud-scoring", "stage": "prod"}
    assert synth.stack.deployment.tags == wanted
    found = taggable(synth)
    # the kinds that matter for cost and ownership are among them (a sanity check on the walk itself)
    kinds = {kind for kind, _ in found.values()}
    assert {"AWS::Lambda::Function", "AWS::S3::Bucket", "AWS::DynamoDB::GlobalTable", "AWS::ApiGatewayV2::Api", "AWS::IAM::Role"} <= kinds
    assert {"AWS::StepFunctions::StateMachine", "AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::KMS::Key", "AWS::Logs::LogGroup"} <= kinds
    untagged = {}
    for logical_id, (kind, every) in found.items():
        for tags in map(rendered_tags, every):
            if {key: tags.get(key) for key in wanted} != wanted:
                untagged[logical_id] = (kind, tags)
    assert untagged == {}
    # and the stack itself, which CloudFormation's own tags propagate from (to what the template cannot tag)
    assert stack_artifact(synth).get("tags") == wanted


def names(synth: Synth, properties: dict[str, str]) -> dict[str, str]:
    found = {}
    for logical_id, resource in synth.raw["Resources"].items():
        prop = properties.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            found[f"{logical_id}.{prop}"] = json.dumps(resource["Properties"][prop])
    return found


@pytest.mark.parametrize("name", ["dev", "tagged"])
def test_every_name_the_template_sets_carries_the_stage(request: pytest.FixtureRequest, name: str) -> None:
    synth: Synth = request.getfixturevalue(name)
    stage = synth.stack.deployment.stage
    assert synth.stack.stack_name == f"serverless-mlops-{stage}"
    chosen = names(synth, NAMED) | names(synth, DISPLAYED)
    assert any(key.endswith(".DashboardName") for key in chosen)  # the walk finds names at all
    without = {key: value for key, value in chosen.items() if not re.search(rf"\b{stage}\b", value)}
    assert without == {}
