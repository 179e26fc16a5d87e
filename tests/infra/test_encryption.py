"""Encryption at rest with customer-managed keys, read from the synthesized template.

Captured requests can hold personal data: the artifact bucket is encrypted with its own KMS key, each function may use
that key only for its own prefixes (decrypt what it reads, a data key for what it writes), the code is told the key
(``MLOPS_KMS_KEY_ID``), and the bucket refuses objects encrypted any other way. Every log group is encrypted with the
stack's logs key, which CloudWatch Logs may use for this account's log groups only. The alert topic's key lets
CloudWatch publish for this account's alarms only (``aws:SourceAccount``).
"""

from __future__ import annotations

from typing import Any

from tests.helpers.template import HANDLERS, Synth, as_list, object_prefixes, policy_statements

ACCOUNT = {"Ref": "AWS::AccountId"}
REGION = {"Ref": "AWS::Region"}


def artifact_bucket(synth: Synth) -> dict[str, Any]:
    (bucket,) = [b for b in synth.resources("AWS::S3::Bucket").values() if "VersioningConfiguration" in b["Properties"]]
    return bucket


def test_the_artifact_bucket_is_encrypted_with_its_own_rotated_key(synth: Synth) -> None:
    key_id = synth.resource_id("AWS::KMS::Key", "ArtifactsKey")
    (rule,) = artifact_bucket(synth)["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}
    # no S3 Bucket Key: the encryption context is each object's ARN, which the functions' key grants are limited by
    assert rule["BucketKeyEnabled"] is False
    key = synth.raw["Resources"][key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    # the key lives as long as the data: retained with prod's bucket, deleted with dev's
    assert key["DeletionPolicy"] == artifact_bucket(synth)["DeletionPolicy"] == ("Retain" if synth.stack.deployment.retain else "Delete")


def test_the_bucket_refuses_objects_encrypted_otherwise(synth: Synth) -> None:
    bucket_id = next(n for n, b in synth.resources("AWS::S3::Bucket").items() if "VersioningConfiguration" in b["Properties"])
    key_arn = {"Fn::GetAtt": [synth.resource_id("AWS::KMS::Key", "ArtifactsKey"), "Arn"]}
    (policy,) = [p for p in synth.resources("AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
    denies = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"}
    # what the code sends without MLOPS_KMS_KEY_ID (serverless_mlops.store.artifacts.encryption_args: SSE-S3)
    assert denies["DenyOtherEncryption"]["Action"] == "s3:PutObject"
    assert denies["DenyOtherEncryption"]["Condition"] == {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}}
    assert denies["DenyOtherKeys"]["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
        "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn},
    }


def kms_grants(synth: Synth, function: str) -> dict[str, set[str]]:
    """KMS action → the object prefixes (``capture/*``) its encryption-context condition allows, for one function's role;
    fails on a use of the bucket's key that is not via S3 or not limited to objects."""
    key_arn = {"Fn::GetAtt": [synth.resource_id("AWS::KMS::Key", "ArtifactsKey"), "Arn"]}
    grants: dict[str, set[str]] = {}
    for statement in policy_statements(synth, function):
        actions = [a for a in as_list(statement["Action"]) if a.startswith("kms:")]
        if not actions or statement.get("Resource") != key_arn:
            continue
        condition = statement["Condition"]
        assert condition["StringEquals"] == {"kms:ViaService": {"Fn::Join": ["", ["s3.", REGION, ".amazonaws.com"]]}}
        contexts = as_list(condition["StringLike"]["kms:EncryptionContext:aws:s3:arn"])
        prefixes = object_prefixes({"Resource": contexts})
        assert len(prefixes) == len(contexts), contexts
        for action in actions:
            grants.setdefault(action, set()).update(prefixes)
    return grants


def s3_objects(synth: Synth, function: str, action: str) -> set[str]:
    return {p for s in policy_statements(synth, function) if action in as_list(s["Action"]) for p in object_prefixes(s)}


def test_each_function_uses_the_bucket_key_only_for_its_own_prefixes(synth: Synth) -> None:
    for function in HANDLERS:
        grants = kms_grants(synth, function)
        reads, writes = s3_objects(synth, function, "s3:GetObject*"), s3_objects(synth, function, "s3:PutObject")
        assert set(grants) == {"kms:Decrypt"} | ({"kms:GenerateDataKey"} if writes else set()), function
        assert grants["kms:Decrypt"] == reads, function
        assert grants.get("kms:GenerateDataKey", set()) == writes, function
    assert kms_grants(synth, "inference") == {
        "kms:Decrypt": {"artifacts/*"},
        "kms:GenerateDataKey": {"capture/*", "predictions/*", "ground-truth/*"},
    }
    assert kms_grants(synth, "drift_check") == {
        "kms:Decrypt": {"artifacts/*", "capture/*"},
        "kms:GenerateDataKey": {"reports/*", "alerts/*"},
    }
    # nothing else in the stack may use the bucket's key but through CDK's own custom resources (the specs' deployment)
    key_id = synth.resource_id("AWS::KMS::Key", "ArtifactsKey")
    users = {
        name
        for name, kind, statement in _statements(synth)
        if kind == "AWS::IAM::Policy" and key_id in str(statement.get("Resource")) and statement["Effect"] == "Allow"
    }
    ours = {name for name in users if name.startswith(("Inference", "Monitoring", "RetrainingTraining", "RetrainingRelease", "Batch"))}
    assert users - ours <= {n for n in users if n.startswith("RetrainingSpecs")}


def _statements(synth: Synth) -> list[tuple[str, str, dict[str, Any]]]:
    from tests.helpers.template import statements

    return statements(synth)


def test_functions_that_write_are_told_the_key(synth: Synth) -> None:
    key_arn = {"Fn::GetAtt": [synth.resource_id("AWS::KMS::Key", "ArtifactsKey"), "Arn"]}
    for function, handler in HANDLERS.items():
        (properties,) = [
            f["Properties"] for f in synth.resources("AWS::Lambda::Function").values() if f["Properties"]["Handler"] == handler
        ]
        variables = properties["Environment"]["Variables"]
        if s3_objects(synth, function, "s3:PutObject"):
            assert variables["MLOPS_KMS_KEY_ID"] == key_arn, function
        else:
            assert "MLOPS_KMS_KEY_ID" not in variables, function


def test_every_log_group_is_encrypted_with_the_logs_key(synth: Synth) -> None:
    key_id = synth.resource_id("AWS::KMS::Key", "LogsKey")
    groups = synth.resources("AWS::Logs::LogGroup")
    assert len(groups) >= 7  # four functions, the API's access logs, the workflow, the specs' deployment
    for name, group in groups.items():
        assert group["Properties"].get("KmsKeyId") == {"Fn::GetAtt": [key_id, "Arn"]}, name


def test_cloudwatch_logs_may_use_the_logs_key_for_this_accounts_log_groups_only(synth: Synth) -> None:
    key = synth.raw["Resources"][synth.resource_id("AWS::KMS::Key", "LogsKey")]
    assert key["Properties"]["EnableKeyRotation"] is True
    services = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s.get("Principal", {})]
    (statement,) = services
    assert statement["Principal"] == {"Service": {"Fn::Join": ["", ["logs.", REGION, ".amazonaws.com"]]}}
    log_groups = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":logs:", REGION, ":", ACCOUNT, ":log-group:*"]]}
    assert statement["Condition"] == {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}}


def test_cloudwatch_may_use_the_alert_key_for_this_accounts_alarms_only(synth: Synth) -> None:
    key = synth.raw["Resources"][synth.resource_id("AWS::KMS::Key", "MonitoringAlertsKey")]
    (statement,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s.get("Principal", {})]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
