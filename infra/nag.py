"""cdk-nag on every synth, and the findings this design accepts, each acknowledged on the one resource it concerns.

This module holds the checks, the reasons and the acknowledgments every function shares; it imports no construct of
this app but :class:`PythonFunction`, so each construct (infra/retraining.py) and the stack (infra/app.py, which
acknowledges the findings on the resources it composes) can import it without a circle.

cdk-nag 3 runs as a CDK validation plugin: an unacknowledged finding fails ``app.synth()`` (and ``cdk synth``).
Every acknowledgment names one finding (rule plus, for IAM5, the exact action or resource) on one resource.
"""

from __future__ import annotations

from typing import Literal

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
    "s3:GetObject* is CDK's read set for objects (GetObject, GetObjectVersion for the VersionId the registry records, and their "
    "metadata); scoped to the function's prefixes of one bucket"
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


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``AwsSolutions-IAM5[Resource::*]``) on ``construct`` and its children."""
    pack = finding.split("-", 1)[0]
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"{pack}::{finding}", reason=reason))


def bucket_objects(bucket: s3.IBucket, objects: str) -> str:
    """The cdk-nag finding of a grant on ``objects`` (``runs/*``, ``*``) of ``bucket``, as cdk-nag names the resource."""
    bucket_id = cdk.Stack.of(bucket).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    return f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{objects}]"


def account_arn(scope: IConstruct, service: str, resource: str) -> str:
    """An ARN in ``scope``'s stack as cdk-nag prints it in a finding: ``arn:<AWS::Partition>:SERVICE:<AWS::Region>:
    <AWS::AccountId>:RESOURCE`` for an environment-agnostic stack, the concrete partition, region and account for a stack
    with an ``env`` (a pipeline stage's)."""
    stack = cdk.Stack.of(scope)

    def part(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if cdk.Token.is_unresolved(value) else value

    partition, region, account = part(stack.partition, "Partition"), part(stack.region, "Region"), part(stack.account, "AccountId")
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def default_policy(role: iam.IRole) -> IConstruct:
    """The CloudFormation resource of the role's default policy, where CDK's grants put their statements."""
    policy = role.node.find_child("DefaultPolicy")
    assert isinstance(policy, iam.Policy)
    return policy.node.default_child  # type: ignore[return-value]


# Why a function needs no dead-letter queue, by how it is invoked.
NO_DLQ = {
    "http": "invoked synchronously by the HTTP API only; the caller gets the error, a DLQ applies to asynchronous invocations",
    "async": "asynchronous invocations fail to an on-failure destination (the Failures queue), which records more than a DLQ",
    "workflow": "invoked synchronously by the retraining state machine only: it retries, catches every error into a failure "
    "notification and logs it; a DLQ applies to asynchronous invocations",
}
TOPIC_KEY = "from Topic.grant_publish: publishing to the KMS-encrypted alert topic needs a data key; scoped to that one key"


def acknowledge_function(
    function: PythonFunction, *, bucket: s3.IBucket, invocation: Literal["http", "async", "workflow"], publishes: bool = False
) -> None:
    """The findings every function of this app has, on its own function and policy resources: its runtime, no DLQ,
    X-Ray, the bucket grants of :meth:`PythonFunction.grant_objects` and (``publishes``) the alert topic's key."""
    cfn_function = function.function.node.default_child
    assert isinstance(cfn_function, lambda_.CfnFunction)
    acknowledge(cfn_function, "AwsSolutions-L1", RUNTIME)
    acknowledge(cfn_function, "Serverless-LambdaLatestVersion", RUNTIME)
    acknowledge(cfn_function, "Serverless-LambdaDLQ", NO_DLQ[invocation])
    policy = default_policy(function.role)
    acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", XRAY)
    acknowledge(policy, "AwsSolutions-IAM5[Action::s3:GetObject*]", S3_ACTIONS)
    for prefix in sorted(function.bucket_prefixes):
        acknowledge(policy, bucket_objects(bucket, f"{prefix}/*"), S3_PREFIX)
    if publishes:
        acknowledge(policy, "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", TOPIC_KEY)
