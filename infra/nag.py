"""cdk-nag on every synth, and the findings this design accepts, each acknowledged on the one resource it concerns.

cdk-nag 3 runs as a CDK validation plugin: an unacknowledged finding fails ``app.synth()`` (and ``cdk synth``).
Every acknowledgment names one finding (rule plus, for IAM5, the exact action or resource) on one resource.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct

from infra.packaging import PythonFunction

# Why each accepted finding is acceptable. Keys are finding ids as cdk-nag prints them (without the pack prefix).
XRAY = "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions: AWS requires Resource '*' (active tracing)"
S3_ACTIONS = (
    "from Bucket.grant_read/grant_put, CDK's minimal action sets for reading or writing objects; scoped to one prefix of one bucket"
)
S3_PREFIX = "objects under one prefix of the artifact bucket: the function's own area of the bucket (COMMON.md S3 prefixes)"
RUNTIME = (
    "python3.12 on purpose: the layers are built for it (onnxruntime's manylinux_2_28 wheels need Amazon Linux 2023's glibc, "
    "and 3.12 is the closest runtime to the 3.11 the project is tested on)"
)
FAILURES_QUEUE = "this queue is itself the end of the line: Lambda's on-failure destination, EventBridge's and SNS's dead-letter queue"


def add_nag_checks(app: cdk.App) -> None:
    """AwsSolutions and Serverless packs; any unacknowledged finding fails the synth."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def _acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    pack = finding.split("-", 1)[0]
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"{pack}::{finding}", reason=reason))


def _policy(function: PythonFunction) -> IConstruct:
    policy = function.role.node.find_child("DefaultPolicy")
    assert isinstance(policy, iam.Policy)
    return policy.node.default_child  # type: ignore[return-value]


def acknowledge_function(function: PythonFunction, *, bucket: s3.IBucket, prefixes: list[str], asynchronous: bool) -> None:
    """The findings every function of this app has, on its own function and policy resources."""
    cfn_function = function.function.node.default_child
    assert isinstance(cfn_function, lambda_.CfnFunction)
    _acknowledge(cfn_function, "AwsSolutions-L1", RUNTIME)
    _acknowledge(cfn_function, "Serverless-LambdaLatestVersion", RUNTIME)
    _acknowledge(
        cfn_function,
        "Serverless-LambdaDLQ",
        "asynchronous invocations fail to an on-failure destination (the Failures queue), which records more than a DLQ"
        if asynchronous
        else "invoked synchronously by the HTTP API only; the caller gets the error, a DLQ applies to asynchronous invocations",
    )
    policy = _policy(function)
    _acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", XRAY)
    for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:Abort*"):
        _acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", S3_ACTIONS)
    bucket_id = cdk.Stack.of(bucket).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    for prefix in prefixes:
        _acknowledge(policy, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}/*]", S3_PREFIX)


def acknowledge_findings(stack: cdk.Stack) -> None:
    from infra.app import ServerlessMlopsStack

    assert isinstance(stack, ServerlessMlopsStack)
    bucket = stack.artifacts.bucket
    acknowledge_function(stack.inference.handler, bucket=bucket, prefixes=["artifacts", "capture"], asynchronous=False)
    monitoring = stack.monitoring
    acknowledge_function(monitoring.handler, bucket=bucket, prefixes=["artifacts", "capture", "reports", "alerts"], asynchronous=True)
    _acknowledge(
        _policy(monitoring.handler),
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        "from Topic.grant_publish: publishing to the KMS-encrypted alert topic needs a data key; scoped to that one key",
    )
    queue = monitoring.failures.node.default_child
    assert queue is not None
    _acknowledge(queue, "AwsSolutions-SQS3", FAILURES_QUEUE)
    _acknowledge(queue, "Serverless-SQSRedrivePolicy", FAILURES_QUEUE)
