"""Storage constructs: the S3 artifact store and the DynamoDB model registry.

Their shapes are fixed by the library code that uses them: the registry's key names come from
``serverless_mlops.store.registry`` and the artifact store needs bucket versioning (it records and reads S3 VersionIds).

Captured requests can hold personal data, so the artifact bucket is encrypted with a customer-managed KMS key (rotated
yearly): who can read an object is then decided by the key as well as the bucket, and CloudTrail records each use. Each
function gets only what it does with that key, for its own prefixes (``PythonFunction.grant_objects``). The log groups
have a key of their own (:class:`LogsKey`): function logs and the workflow's can hold model inputs too.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from serverless_mlops.store.registry import PARTITION_KEY, SORT_KEY


class ArtifactStore(Construct):
    """A versioned, private, SSL-only bucket for model artifacts and captured data, encrypted with its own KMS key."""

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool, capture_retention_days: int = 90) -> None:
        super().__init__(scope, construct_id)
        policy = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.key = kms.Key(
            self,
            "Key",
            description="serverless-mlops artifact bucket: models, captured requests, drift reports, training runs",
            enable_key_rotation=True,
            # the key lives as long as the data it protects: kept with a retained bucket, else deleted after 7 days' grace
            removal_policy=policy,
            pending_window=None if retain else Duration.days(7),
        )
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
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            # no S3 Bucket Key: each object's encryption context is then its own ARN, so a function's use of the key can be
            # limited to its prefixes (kms:EncryptionContext:aws:s3:arn); the price is one KMS request per put and get
            bucket_key_enabled=False,
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
                # the same rows' predictions without their features (the quality check's input): kept as long
                s3.LifecycleRule(
                    id="captured-predictions",
                    prefix="predictions/",
                    expiration=Duration.days(capture_retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
            ],
            removal_policy=policy,
            auto_delete_objects=not retain,
        )
        # the code writes with the key when MLOPS_KMS_KEY_ID is set and asks for SSE-S3 (AES256) when it is not: refuse
        # the latter, and any other KMS key, so nothing lands in the bucket outside this key by a missing variable
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyOtherEncryption",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects("*")],
                conditions={"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyOtherKeys",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects("*")],
                conditions={
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": self.key.key_arn},
                },
            )
        )


class LogsKey(Construct):
    """The stack's one KMS key for its CloudWatch Logs log groups (functions, API access logs, the retraining workflow).

    Log groups go with the stack (RemovalPolicy.DESTROY), so this key does too, after 7 days' grace. CloudWatch Logs
    encrypts with it on the log groups' behalf: the key policy lets the regional logs service use it, only for log groups
    of this account and region (the encryption context CloudWatch Logs sends is the log group's ARN).
    """

    ID = "LogsKey"

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description="serverless-mlops log groups: function logs, API access logs, retraining workflow logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        log_groups = stack.format_arn(service="logs", resource="log-group", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        )

    @classmethod
    def of(cls, scope: Construct) -> kms.IKey:
        """The key of ``scope``'s stack, created there (as ``LogsKey``) by the first log group that asks for it."""
        stack = cdk.Stack.of(scope)
        found = stack.node.try_find_child(cls.ID)
        if found is None:
            found = cls(stack, cls.ID)
        if not isinstance(found, LogsKey):
            raise TypeError(f"{stack.node.path}/{cls.ID} is a {type(found).__name__}, not the stack's LogsKey")
        return found.key


def keyed_table(scope: Construct, construct_id: str, *, retain: bool) -> dynamodb.TableV2:
    """A table of the registry's key layout (``pk``/``sk``): on-demand, point-in-time recovery, encrypted, protected
    from deletion and kept with the stack when retained (prod). The registry and the retraining table are two."""
    return dynamodb.TableV2(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
        billing=dynamodb.Billing.on_demand(),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
        encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
        deletion_protection=retain,
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
    )


class ModelRegistry(Construct):
    """The registry table (:func:`keyed_table`)."""

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = keyed_table(self, "Table", retain=retain)
