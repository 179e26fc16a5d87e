"""What the CI's roles may do, and why their wildcards are acceptable: shared by the CodePipeline pipeline
(infra/pipeline.py) and the GitHub Actions role (infra/github_oidc.py).

:func:`verify_statements` is what the checks after a deploy (the model gate and the smoke test) call in a stage.
:func:`acknowledge_wildcards` acknowledges each cdk-nag IAM5 finding of a policy with the reason its pattern has here;
a wildcard that matches no pattern stays a finding, so the synth fails until someone gives it a reason.
"""

from __future__ import annotations

import re
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from infra.nag import acknowledge
from infra.stages import PipelineStage, checks_role_arn, stack_name

CHECKS_PROFILE = "stage-checks"


def checks_assume_statement(stage: PipelineStage) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[checks_role_arn(stage)])


def verify_statements(stage: PipelineStage) -> list[iam.PolicyStatement]:
    """What the model gate and the smoke test call in the stage: its stack, functions, API, tables, bucket and workflow.

    The stack's resources have generated names that start with the stack's name (functions, tables, buckets), so each
    grant is scoped to that prefix; the API id, the state machine's name and the keys are known only once deployed."""
    name = stack_name(stage.name)

    def arn(service: str, resource: str) -> str:
        return f"arn:{cdk.Aws.PARTITION}:{service}:{stage.region}:{stage.account}:{resource}"

    return [
        iam.PolicyStatement(
            actions=["cloudformation:DescribeStacks", "cloudformation:ListStackResources"],
            resources=[arn("cloudformation", resource=f"stack/{name}/*")],
        ),
        iam.PolicyStatement(
            actions=["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"],
            resources=[arn("lambda", resource=f"function:{name}-*")],
        ),
        iam.PolicyStatement(actions=["execute-api:Invoke"], resources=[arn("execute-api", resource="*/$default/*")]),
        iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            resources=[arn("dynamodb", resource=f"table/{name}-*")],
        ),
        iam.PolicyStatement(
            actions=["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"],
            resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{name}-*"],
        ),
        iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=[arn("kms", resource="key/*")],
            conditions={"StringEquals": {"kms:ViaService": [f"s3.{stage.region}.amazonaws.com", f"dynamodb.{stage.region}.amazonaws.com"]}},
        ),
        iam.PolicyStatement(
            actions=["states:StartExecution", "states:DescribeExecution", "states:GetExecutionHistory"],
            resources=[
                arn("states", resource="stateMachine:*"),
                arn("states", resource="execution:*"),
            ],
        ),
    ]


# Why each wildcard in the roles CDK Pipelines writes (and the checks' grants) is acceptable, by the finding's pattern.
# A wildcard that matches none of these fails the synth (cdk-nag), so a new one needs a reason here.
PIPELINE_WILDCARDS = {
    r"Action::(s3:(GetObject|GetBucket|List|DeleteObject|Abort)|kms:(ReEncrypt|GenerateDataKey))\*": (
        "CDK Pipelines' grants on its own artifact bucket and its key (read and write what one execution passes between "
        "actions); scoped to that bucket and key"
    ),
    r"Resource::<PipelineArtifactsBucket[0-9A-F]{8}\.Arn>/\*": "the objects of the pipeline's own artifact bucket",
    r"Resource::arn:[a-z-]+:logs:[a-z0-9-]+:\d{12}:log-group:/aws/codebuild/(<[A-Za-z0-9]+>:)?\*": (
        "CodeBuild writes its build logs into log streams it names per build (the project's own log group)"
    ),
    r"Resource::arn:[a-z-]+:codebuild:[a-z0-9-]+:\d{12}:report-group/(<[A-Za-z0-9]+>-)?\*": (
        "CodeBuild's test report groups are named per project at build time"
    ),
    r"Resource::arn:\*:iam::\d{12}:role/\*": (
        "self-mutation assumes the CDK bootstrap roles (cdk-hnb659fds-*-role) to deploy the pipeline's own stack; CDK "
        "Pipelines conditions the grant on the bootstrap role tag"
    ),
    r"Resource::arn:<AWS::Partition>:(cloudformation|lambda|dynamodb):[a-z0-9-]+:\d{12}:"
    r"(stack|function|table)/?:?serverless-mlops-(dev|prod)[-/]\*": (
        "the checks after a stage (mlops retrain-if-changed, mlops smoke) read that stage's stack and call its functions "
        "and tables, whose names CloudFormation generates with the stack's name as prefix"
    ),
    r"Resource::arn:<AWS::Partition>:s3:::serverless-mlops-(dev|prod)-\*": (
        "the stage's artifact bucket (generated name, the stack's name as prefix): the checks read the typical row and specs"
    ),
    r"Resource::arn:<AWS::Partition>:execute-api:[a-z0-9-]+:\d{12}:\*/\$default/\*": (
        "the smoke test calls the stage's HTTP API, whose id exists only once deployed; only the $default stage"
    ),
    r"Resource::arn:<AWS::Partition>:kms:[a-z0-9-]+:\d{12}:key/\*": (
        "decrypting what S3 and DynamoDB return (kms:ViaService condition); the stage's keys exist only once deployed"
    ),
    r"Resource::arn:<AWS::Partition>:states:[a-z0-9-]+:\d{12}:(stateMachine|execution):\*": (
        "the model gate starts and follows the stage's retraining workflow, whose generated name is known once deployed"
    ),
}
# Resource '*' in the roles CDK Pipelines writes, by the role (its construct path)
ANY_RESOURCE = {
    "/UpdatePipeline/SelfMutation/": (
        "self-mutation runs `cdk deploy` of the pipeline stack, which reads stack status (cloudformation:DescribeStacks) "
        "and lists the bootstrap bucket (s3:ListBucket) before it assumes the bootstrap roles; CDK Pipelines writes it"
    ),
    "/Assets/FileRole/": (
        "the asset-publishing action starts and follows its own CodeBuild builds (codebuild:StartBuild, BatchGetBuilds, "
        "StopBuild); CDK Pipelines grants them on '*'"
    ),
}
NO_ACCESS_LOGS = (
    "the pipeline's artifact bucket holds only build outputs passed between actions (KMS-encrypted, SSL-only); every "
    "access is by the pipeline's own roles and recorded by CloudTrail"
)


def acknowledge_wildcards(policy: iam.CfnPolicy) -> None:
    """Acknowledge each wildcard of ``policy`` with the reason its pattern has in :data:`PIPELINE_WILDCARDS` (or, for
    Resource '*', its role's in :data:`ANY_RESOURCE`); one with no reason stays a finding and fails the synth."""
    for finding in wildcard_findings(cdk.Stack.of(policy).resolve(policy.policy_document)):
        reasons = [reason for pattern, reason in PIPELINE_WILDCARDS.items() if re.fullmatch(pattern, finding)]
        if finding == "Resource::*":
            reasons = [reason for part, reason in ANY_RESOURCE.items() if part in policy.node.path]
        if reasons:
            acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", reasons[0])


def wildcard_findings(document: dict[str, Any]) -> list[str]:
    """The IAM5 findings of a policy document as cdk-nag names them: ``Action::s3:List*``, ``Resource::<Id.Arn>/*``."""
    found = []
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        found += [f"Action::{a}" for a in ([actions] if isinstance(actions, str) else actions) if "*" in a]
        for resource in resources if isinstance(resources, list) else [resources]:
            text = _rendered(resource)
            if "*" in text:
                found.append(f"Resource::{text}")
    return list(dict.fromkeys(found))


def _rendered(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag prints it: Fn::Join joined, ``<Id.Attr>`` for GetAtt, ``<Id>`` for Ref."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_rendered(part) for part in parts)
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return str(value)
