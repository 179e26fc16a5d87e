"""The deployed storage must be the storage the library expects: registry keys, bucket versioning, protection."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.app import build_app
from infra.config import ConfigError
from serverless_mlops.store.registry import PARTITION_KEY, SORT_KEY
from tests.helpers.template import Synth


def test_registry_table_has_the_keys_the_registry_code_uses(dev: Synth) -> None:
    dev.template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"SSEEnabled": True},
            "Replicas": [Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})],
        },
    )


def test_prod_protects_the_registry_and_dev_does_not(dev: Synth, prod: Synth) -> None:
    def protection(template: Template) -> Any:  # the registry and the retraining table (locks, approvals) alike
        tables = template.find_resources("AWS::DynamoDB::GlobalTable").values()
        return {(table["Properties"]["Replicas"][0].get("DeletionProtectionEnabled"), table["DeletionPolicy"]) for table in tables}

    assert protection(prod.template) == {(True, "Retain")}
    assert protection(dev.template) == {(False, "Delete")}
    prod.template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Retain"})
    assert not prod.resources("Custom::S3AutoDeleteObjects")  # prod never empties its buckets
    prod.template.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain"})
    dev.template.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Delete", "Properties": Match.object_like({"PendingWindowInDays": 7})})


def test_artifact_bucket_is_versioned_encrypted_private_and_ssl_only(dev: Synth) -> None:
    template = dev.template
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            # the customer-managed key: tests/infra/test_encryption.py
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})
                ]
            },
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


def test_captured_data_expires_and_old_versions_go(dev: Synth) -> None:
    (bucket,) = [b for b in dev.resources("AWS::S3::Bucket").values() if "VersioningConfiguration" in b["Properties"]]
    rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["captured-data"]["Prefix"] == "capture/"
    assert rules["captured-data"]["ExpirationInDays"] == dev.stack.deployment.config.capture_retention_days == 90
    assert rules["captured-predictions"]["Prefix"] == "predictions/"
    assert rules["captured-predictions"]["ExpirationInDays"] == 90
    assert rules["old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 365}
    assert rules["old-versions"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_an_unknown_stage_fails_with_its_name() -> None:
    with pytest.raises(ConfigError, match="stage: must be one of dev, prod, got 'qa'"):
        build_app(stage="qa")
