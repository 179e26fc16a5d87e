"""cdk-nag on every synth, and the findings this design accepts, each acknowledged on the one resource it concerns.

cdk-nag 3 runs as a CDK validation plugin: an unacknowledged finding fails ``app.synth()`` (and ``cdk synth``).
Every acknowledgment names one finding (rule plus, for IAM5, the exact action or resource) on one resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct

from infra.packaging import PythonFunction

if TYPE_CHECKING:
    from infra.app import ServerlessMlopsStack

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


def _policy(role: iam.IRole) -> IConstruct:
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
    policy = _policy(function.role)
    acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", XRAY)
    acknowledge(policy, "AwsSolutions-IAM5[Action::s3:GetObject*]", S3_ACTIONS)
    for prefix in sorted(function.bucket_prefixes):
        acknowledge(policy, bucket_objects(bucket, f"{prefix}/*"), S3_PREFIX)
    if publishes:
        acknowledge(policy, "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", TOPIC_KEY)


def acknowledge_findings(stack: ServerlessMlopsStack) -> None:
    bucket = stack.artifacts.bucket
    acknowledge_function(stack.inference.handler, bucket=bucket, invocation="http")
    monitoring = stack.monitoring
    acknowledge_function(monitoring.handler, bucket=bucket, invocation="async", publishes=True)
    queue = monitoring.failures.node.default_child
    assert queue is not None
    acknowledge(queue, "AwsSolutions-SQS3", FAILURES_QUEUE)
    acknowledge(queue, "Serverless-SQSRedrivePolicy", FAILURES_QUEUE)
    _acknowledge_retraining(stack, bucket)


def _acknowledge_retraining(stack: ServerlessMlopsStack, bucket: s3.IBucket) -> None:
    retraining = stack.retraining
    acknowledge_function(retraining.training, bucket=bucket, invocation="workflow")
    acknowledge_function(retraining.release, bucket=bucket, invocation="workflow", publishes=True)

    # the state machine's role: X-Ray and CloudWatch Logs delivery need Resource "*"; it invokes its two functions; and
    # what a replacement Train step brings (TrainContext.acknowledge_machine)
    machine_policy = _policy(retraining.state_machine.role)
    acknowledge(
        machine_policy,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing (PutTraceSegments, PutTelemetryRecords, GetSampling*) and Step Functions' log delivery "
        "(logs:CreateLogDelivery, PutResourcePolicy, DescribeLogGroups, ...) support no resource-level permissions: AWS requires '*'",
    )
    for function in (retraining.training, retraining.release):
        function_id = stack.get_logical_id(function.function.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            machine_policy,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            "from LambdaInvoke's grant: lambda:InvokeFunction on this one function and its versions and aliases (ARN:*)",
        )
    for finding, reason in retraining.machine_findings.items():
        acknowledge(machine_policy, finding, reason)

    # CDK's BucketDeployment (publishes the specs) runs a singleton function CDK defines: its findings, on its resources
    handler = _bucket_deployment_handler(stack)
    cfn_handler = handler.node.default_child
    assert isinstance(cfn_handler, lambda_.CfnFunction)
    deployment_runtime = "CDK's BucketDeployment handler: CDK pins its runtime (and its AWS CLI layer) per release"
    acknowledge(cfn_handler, "AwsSolutions-L1", deployment_runtime)
    acknowledge(cfn_handler, "Serverless-LambdaLatestVersion", deployment_runtime)
    acknowledge(
        cfn_handler,
        "Serverless-LambdaDLQ",
        "a CloudFormation custom resource handler: CloudFormation invokes it synchronously and fails the deploy on an error",
    )
    acknowledge(
        cfn_handler,
        "Serverless-LambdaTracing",
        "CDK's BucketDeployment handler copies the specs once per deploy; the deploy's events record it, a trace adds nothing",
    )
    # its role is the Retraining construct's SpecsRole (specs/ only), whose findings that construct acknowledges


def _bucket_deployment_handler(stack: cdk.Stack) -> lambda_.Function:
    """The singleton function of CDK's BucketDeployment (one per stack and memory size), a child of the stack."""
    (handler,) = [
        child
        for child in stack.node.children
        if child.node.id.startswith("Custom::CDKBucketDeployment") and isinstance(child, lambda_.Function)
    ]
    return handler
