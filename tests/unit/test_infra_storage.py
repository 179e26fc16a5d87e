"""The deployed storage must be the storage the library expects: registry keys, bucket versioning, protection."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.app import ServerlessMlopsStack, build_app
from serverless_mlops.registry import PARTITION_KEY, SORT_KEY


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    out = {}
    for stage in ("dev", "prod"):
        app = build_app(stage)
        stack = app.node.find_child(f"serverless-mlops-{stage}")
        assert isinstance(stack, ServerlessMlopsStack)
        out[stage] = Template.from_stack(stack)
    return out


def test_registry_table_has_the_keys_the_registry_code_uses(templates: dict[str, Template]) -> None:
    templates["dev"].has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"SSEEnabled": True},
            "Replicas": [Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})],
        },
    )


def test_prod_protects_the_registry_and_dev_does_not(templates: dict[str, Template]) -> None:
    def protection(template: Template) -> Any:
        (table,) = template.find_resources("AWS::DynamoDB::GlobalTable").values()
        return table["Properties"]["Replicas"][0].get("DeletionProtectionEnabled"), table["DeletionPolicy"]

    assert protection(templates["prod"]) == (True, "Retain")
    assert protection(templates["dev"]) == (False, "Delete")


def test_artifact_bucket_is_versioned_encrypted_private_and_ssl_only(templates: dict[str, Template]) -> None:
    template = templates["dev"]
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "artifacts/"}),
        },
    )
    policies = template.find_resources("AWS::S3::BucketPolicy")
    denies_plain_http = [
        statement
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny" and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert len(denies_plain_http) == 2  # the artifact bucket and its access-log bucket


def test_outputs_name_the_bucket_and_table(templates: dict[str, Template]) -> None:
    outputs = templates["dev"].find_outputs("*")
    assert {"ArtifactBucketName", "RegistryTableName"} <= set(outputs)


def test_an_unknown_stage_fails_with_its_name() -> None:
    with pytest.raises(SystemExit, match="must be one of dev, prod, got 'qa'"):
        build_app("qa")
