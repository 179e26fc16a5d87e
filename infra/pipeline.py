"""The deploy pipeline (``cdk synth -c pipeline=true``): CDK Pipelines from a push to every stage in order.

Source: the repository through a CodeConnections connection (infra/pipeline.yaml). Synth, on CodeBuild: ``make lint``,
``make test`` and ``make synth PIPELINE=true`` (which builds the layers), whose cloud assembly the rest deploys. The
pipeline updates itself first (self-mutation), then, for each stage in the file's order: a manual approval when the
stage asks for one, the stage's stack (``serverless-mlops-<stage>`` in the stage's account and region), then two checks
on CodeBuild: the model gate (``mlops retrain-if-changed``: a spec change that needs a new model retrains and the step
waits for the workflow's end) and the smoke test (``mlops smoke``). A failed check stops the pipeline before the next
stage. The artifact bucket is encrypted with a customer-managed KMS key (rotated), which cross-account stages need too.

``github`` in the config adds a stack with the role GitHub Actions assumes (infra/github_oidc.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from infra.config import Deployment
from infra.nag import acknowledge
from infra.stages import Pipeline, PipelineStage, load_pipeline

PIPELINE_STACK = "serverless-mlops-pipeline"
# the synth step's commands, in order: what a developer runs before a push, then the assembly the pipeline deploys
SYNTH_COMMANDS = ["make lint", "make test", "make synth PIPELINE=true"]
INSTALL = "make install"
# CodeBuild's Amazon Linux 2023 image with the project's Python and a Node the aws-cdk CLI supports
BUILD_IMAGE = codebuild.LinuxBuildImage.AMAZON_LINUX_2_5
RUNTIMES = {"python": "3.11", "nodejs": "22"}
GATE_MINUTES = 480  # CodeBuild's longest build: the model gate waits for a retraining workflow to end


def stack_name(stage: str) -> str:
    return f"serverless-mlops-{stage}"


def gate_commands(stage: PipelineStage) -> list[str]:
    return [INSTALL, f".venv/bin/mlops --region {stage.region} retrain-if-changed --stack {stack_name(stage.name)}"]


def smoke_commands(stage: PipelineStage) -> list[str]:
    return [INSTALL, f".venv/bin/mlops --region {stage.region} smoke --stack {stack_name(stage.name)}"]


# the stack a stage deploys (infra.app.ServerlessMlopsStack, passed in by the app that imports this module)
StackFactory = Callable[..., cdk.Stack]


class DeployStage(cdk.Stage):
    """One stage of the pipeline: the stack of ``deployment`` in the stage's account and region."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: PipelineStage, deployment: Deployment, make_stack: StackFactory
    ) -> None:
        super().__init__(scope, construct_id, env=cdk.Environment(account=stage.account, region=stage.region))
        name = stack_name(stage.name)
        self.stack = make_stack(self, name, deployment=deployment, stack_name=name)


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


class PipelineStack(cdk.Stack):
    """The pipeline: source, synth (lint, test, synth), then each stage with its approval and checks."""

    def __init__(self, scope: Construct, construct_id: str, *, pipeline: Pipeline, make_stack: StackFactory) -> None:
        config = pipeline.config
        super().__init__(
            scope,
            construct_id,
            env=cdk.Environment(account=config.account, region=config.region),
            description="serverless-mlops: the deploy pipeline (push → test → each stage → smoke)",
            tags={"project": "serverless-mlops", "stage": "pipeline"},
        )
        source = pipelines.CodePipelineSource.connection(
            config.source.repository, config.source.branch, connection_arn=config.source.connection_arn
        )
        build = pipelines.CodeBuildOptions(
            build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM),
            partial_build_spec=codebuild.BuildSpec.from_object({"phases": {"install": {"runtime-versions": RUNTIMES}}}),
        )
        self.synth = pipelines.CodeBuildStep("Synth", input=source, install_commands=[INSTALL], commands=SYNTH_COMMANDS)
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name="serverless-mlops",
            synth=self.synth,
            self_mutation=True,
            cross_account_keys=True,  # a customer-managed KMS key encrypts the artifact bucket
            enable_key_rotation=True,
            docker_enabled_for_synth=False,  # the layers build without docker (layers/build.py)
            code_build_defaults=build,
        )
        self.stages: list[DeployStage] = []
        for stage in config.stages:
            deploy = DeployStage(
                self, stage.name.capitalize(), stage=stage, deployment=pipeline.deployments[stage.name], make_stack=make_stack
            )
            gate = pipelines.CodeBuildStep(
                "ModelGate",
                commands=gate_commands(stage),
                role_policy_statements=verify_statements(stage),
                timeout=cdk.Duration.minutes(GATE_MINUTES),
            )
            smoke = pipelines.CodeBuildStep("Smoke", commands=smoke_commands(stage), role_policy_statements=verify_statements(stage))
            smoke.add_step_dependency(gate)  # a retrained model is served before the smoke test predicts with it
            pre = (
                [pipelines.ManualApprovalStep(f"Approve-{stage.name}", comment=f"deploy {stack_name(stage.name)}")]
                if stage.needs_approval
                else []
            )
            self.pipeline.add_stage(deploy, pre=pre, post=[gate, smoke])
            self.stages.append(deploy)
        self.pipeline.build_pipeline()  # now, so the findings below can be acknowledged on the resources it made
        acknowledge_pipeline(self)


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


def acknowledge_pipeline(stack: PipelineStack) -> None:
    """cdk-nag's findings on what CDK Pipelines creates (and the checks' grants), each acknowledged on its policy with
    the reason its pattern has in :data:`PIPELINE_WILDCARDS`."""
    for construct in stack.node.find_all():
        if isinstance(construct, iam.CfnPolicy):
            for finding in wildcard_findings(stack.resolve(construct.policy_document)):
                reasons = [reason for pattern, reason in PIPELINE_WILDCARDS.items() if re.fullmatch(pattern, finding)]
                if finding == "Resource::*":
                    reasons = [reason for part, reason in ANY_RESOURCE.items() if part in construct.node.path]
                if reasons:
                    acknowledge(construct, f"AwsSolutions-IAM5[{finding}]", reasons[0])
    bucket = stack.pipeline.pipeline.artifact_bucket.node.default_child
    assert bucket is not None
    acknowledge(bucket, "AwsSolutions-S1", NO_ACCESS_LOGS)


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


def build_pipeline(
    app: cdk.App, *, make_stack: StackFactory, config: str | Path | None = None, pipeline_config: str | Path | None = None
) -> PipelineStack:
    """The pipeline stack from ``pipeline_config`` (default infra/pipeline.yaml), each stage ``make_stack`` of
    ``config`` (default infra/deployment.yaml) with the stage's overrides."""
    pipeline = load_pipeline(pipeline_config, deployment=config)
    return PipelineStack(app, PIPELINE_STACK, pipeline=pipeline, make_stack=make_stack)
