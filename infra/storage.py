"""Storage constructs: the S3 artifact store and the DynamoDB model registry.

Their shapes are fixed by the library code that uses them: the registry's key names come from
``serverless_mlops.registry`` and the artifact store needs bucket versioning (it records and reads S3 VersionIds).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from serverless_mlops.registry import PARTITION_KEY, SORT_KEY


class ArtifactStore(Construct):
    """A versioned, encrypted, private, SSL-only bucket for model artifacts and captured data."""

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool, capture_retention_days: int = 90) -> None:
        super().__init__(scope, construct_id)
        policy = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=policy,
            auto_delete_objects=not retain,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,  # the registry records each artifact's VersionId and reads exactly that version
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="old-versions",
                    noncurrent_version_expiration=Duration.days(365),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                # captured requests are drift-check input; past the longest window (31 days) they only cost storage
                s3.LifecycleRule(
                    id="captured-data",
                    prefix="capture/",
                    expiration=Duration.days(capture_retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
            ],
            removal_policy=policy,
            auto_delete_objects=not retain,
        )


class ModelRegistry(Construct):
    """The registry table: on-demand, point-in-time recovery, encrypted, protected from deletion when retained."""

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            deletion_protection=retain,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
