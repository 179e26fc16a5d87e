"""The deployed specs, published where the retraining workflow's PrepareData reads them: ``specs/{model}/spec.json``
and its base data in the artifact bucket (the layout of :func:`serverless_mlops.retraining.specs.spec_files`), by a
CDK BucketDeployment of a folder staged at synth time, so a Lambda trains from what was deployed.

CDK's BucketDeployment grants its handler read/write/delete on the whole destination bucket, whatever
``destination_key_prefix`` says; here it runs as a role of its own that reaches ``specs/`` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import ROOT, Deployment
from infra.nag import acknowledge, bucket_objects
from infra.packaging import RETENTION, stage
from infra.storage import LogsKey
from serverless_mlops.model.spec import ModelSpec
from serverless_mlops.retraining import contract as c
from serverless_mlops.retraining.specs import spec_files

SPECS_STAGING = ROOT / "build" / "specs"


def stage_specs(specs: Sequence[ModelSpec], staging: Path = SPECS_STAGING) -> Path:
    """A folder holding the published layout of ``specs`` (``{model}/spec.json`` and its data), named by content hash."""
    files = {relative: body for spec in specs for relative, body in spec_files(spec).items()}
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(relative.encode() + b"\0" + files[relative] + b"\0")

    def fill(folder: Path) -> None:
        for relative, body in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(body)

    return stage(staging / digest.hexdigest()[:16], fill)


class PublishedSpecs:
    """The specs' staged folder, the deployment that copies it to ``specs/`` and its role, created in ``scope`` (the
    retraining construct: logical ids ``RetrainingSpecs…``)."""

    def __init__(self, scope: Construct, deployment: Deployment, bucket: s3.IBucket) -> None:
        config = deployment.config
        self.folder = stage_specs(deployment.specs)
        # its own log group with retention (log_retention would add CDK's LogRetention function to the stack)
        self.logs = logs.LogGroup(
            scope,
            "SpecsLogs",
            retention=RETENTION[config.log_retention_days],
            removal_policy=cdk.RemovalPolicy.DESTROY,
            encryption_key=LogsKey.of(scope),
        )
        # CDK's BucketDeployment grants its handler read/write/delete on the whole destination bucket (models, captured
        # data) whatever destination_key_prefix says (aws-cdk-lib 2.275: destinationBucket.grantReadWrite(handler)).
        # So the handler runs as a role of ours that CDK cannot add to (without_policy_updates: its grants become
        # no-ops), granted what the deployment does: read its one asset zip, list specs/, put and delete under specs/
        specs_asset = s3_assets.Asset(scope, "SpecsAsset", path=str(self.folder))
        self.role = iam.Role(
            scope,
            "SpecsRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="CDK's BucketDeployment handler publishing the specs: specs/ of the artifact bucket only",
        )
        self.logs.grant_write(self.role)
        specs_asset.bucket.grant_read(self.role, specs_asset.s3_object_key)
        specs_objects = f"{c.SPECS_PREFIX}/*"
        bucket.grant_put(self.role, specs_objects)
        bucket.grant_delete(self.role, specs_objects)  # prune, and `aws s3 rm` of the prefix on stack delete
        if bucket.encryption_key is not None:  # a multipart upload under SSE-KMS also decrypts
            bucket.encryption_key.grant_encrypt_decrypt(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],  # `aws s3 sync --delete` and `aws s3 rm --recursive` list the prefix
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{c.SPECS_PREFIX}/", specs_objects]}},
            )
        )
        # on stack delete the handler reads the bucket's tags to see whether another deployment owns the prefix
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetBucketTagging"], resources=[bucket.bucket_arn]))
        self.deployment = s3deploy.BucketDeployment(
            scope,
            "Specs",
            sources=[s3deploy.Source.bucket(specs_asset.bucket, specs_asset.s3_object_key)],
            destination_bucket=bucket,
            destination_key_prefix=f"{c.SPECS_PREFIX}/",
            prune=True,  # a model removed from the config loses its published spec
            retain_on_delete=deployment.retain,
            memory_limit=256,
            log_group=self.logs,
            role=self.role.without_policy_updates(),
        )
        # the copy runs only once the role's policy exists (the immutable view gives CDK nothing to depend on)
        self.deployment.node.add_dependency(self.role)
        self._acknowledge_role(bucket)

    def _acknowledge_role(self, bucket: s3.IBucket) -> None:
        """The findings of the specs deployment's own role (CDK's grants' action sets), each on that role's policy."""
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(policy, cdk.CfnResource)
        reason = (
            "CDK's grant action sets (Bucket.grant_read/grant_put/grant_delete) for the BucketDeployment that publishes the "
            "specs: read its one asset zip, write and prune under specs/ of the artifact bucket only"
        )
        for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:Abort*", "s3:DeleteObject*"):
            acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", reason)
        acknowledge(policy, bucket_objects(bucket, f"{c.SPECS_PREFIX}/*"), reason)
        if bucket.encryption_key is not None:
            key_reason = "from Key.grant_encrypt_decrypt: uploading under SSE-KMS needs data keys of the artifact bucket's one key"
            for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
                acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", key_reason)
