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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from infra.ci_permissions import (
    CHECKS_PROFILE,
    NO_ACCESS_LOGS,
    acknowledge_wildcards,
    checks_assume_statement,
    verify_statements,
)
from infra.config import ConfigError, Deployment
from infra.nag import acknowledge
from infra.stages import GITHUB_ROLE_NAME, Pipeline, PipelineStage, checks_role_arn, load_pipeline, stack_name

PIPELINE_STACK = "serverless-mlops-pipeline"
# the synth step's commands, in order: what a developer runs before a push, then the assembly the pipeline deploys
SYNTH_COMMANDS = ["make lint", "make test", "make synth PIPELINE=true"]
INSTALL = "make install"
# CodeBuild's Amazon Linux 2023 image with the project's Python and a Node the aws-cdk CLI supports
BUILD_IMAGE = codebuild.LinuxBuildImage.AMAZON_LINUX_2_5
RUNTIMES = {"python": "3.11", "nodejs": "22"}
GATE_MINUTES = 480  # CodeBuild's longest build: the model gate waits for a retraining workflow to end


def gate_commands(stage: PipelineStage, *, cross_account: bool = False) -> list[str]:
    return [
        *_setup(stage, cross_account),
        f"{_as(cross_account)}.venv/bin/mlops --region {stage.region} retrain-if-changed --stack {stack_name(stage.name)}",
    ]


def smoke_commands(stage: PipelineStage, *, cross_account: bool = False) -> list[str]:
    return [
        *_setup(stage, cross_account),
        f"{_as(cross_account)}.venv/bin/mlops --region {stage.region} smoke --stack {stack_name(stage.name)}",
    ]


def _setup(stage: PipelineStage, cross_account: bool) -> list[str]:
    """``make install``; for a stage in another account, a profile that assumes the stage's checks role with the
    build's own credentials (CodeBuild's container credentials)."""
    if not cross_account:
        return [INSTALL]
    return [
        INSTALL,
        f"aws configure set profile.{CHECKS_PROFILE}.role_arn {checks_role_arn(stage)}",
        f"aws configure set profile.{CHECKS_PROFILE}.credential_source EcsContainer",
    ]


def _as(cross_account: bool) -> str:
    return f"AWS_PROFILE={CHECKS_PROFILE} " if cross_account else ""


class ChecksStack(cdk.Stack):
    """For a stage in another account than the pipeline's: the role the checks after its deploy assume there
    (``serverless-mlops-<stage>-checks``), trusted only by the pipeline's roles and the GitHub role in the pipeline's account."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: PipelineStage, trusted_account: str, **kwargs: Any) -> None:
        super().__init__(
            scope, construct_id, description=f"serverless-mlops: the role the checks after a {stage.name} deploy assume", **kwargs
        )
        trusted = [f"arn:aws:iam::{trusted_account}:role/{PIPELINE_STACK}-*", f"arn:aws:iam::{trusted_account}:role/{GITHUB_ROLE_NAME}"]
        self.role = iam.Role(
            self,
            "Role",
            role_name=f"{stack_name(stage.name)}-checks",
            assumed_by=iam.AccountPrincipal(trusted_account).with_conditions({"ArnLike": {"aws:PrincipalArn": trusted}}),
            max_session_duration=cdk.Duration.hours(1),
        )
        for statement in verify_statements(stage):
            self.role.add_to_policy(statement)
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(policy, iam.CfnPolicy)
        acknowledge_wildcards(policy)


# the stack a stage deploys (infra.app.ServerlessMlopsStack, passed in by the app that imports this module)
StackFactory = Callable[..., cdk.Stack]


class DeployStage(cdk.Stage):
    """One stage of the pipeline: the stack of ``deployment`` in the stage's account and region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: PipelineStage,
        deployment: Deployment,
        make_stack: StackFactory,
        checks_account: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=cdk.Environment(account=stage.account, region=stage.region))
        name = stack_name(stage.name)
        self.stack = make_stack(self, name, deployment=deployment, stack_name=name)
        self.checks: ChecksStack | None = None
        if checks_account is not None and checks_account != stage.account:
            self.checks = ChecksStack(self, f"{name}-checks", stage=stage, trusted_account=checks_account, stack_name=f"{name}-checks")


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
                self,
                stage.name.capitalize(),
                stage=stage,
                deployment=pipeline.deployments[stage.name],
                make_stack=make_stack,
                checks_account=config.account,
            )
            cross = deploy.checks is not None
            # same account: the step's own role may run the checks; another account: it may assume the stage's checks role
            grants = [checks_assume_statement(stage)] if cross else verify_statements(stage)
            gate = pipelines.CodeBuildStep(
                "ModelGate",
                commands=gate_commands(stage, cross_account=cross),
                role_policy_statements=grants,
                timeout=cdk.Duration.minutes(GATE_MINUTES),
            )
            smoke = pipelines.CodeBuildStep("Smoke", commands=smoke_commands(stage, cross_account=cross), role_policy_statements=grants)
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


def acknowledge_pipeline(stack: PipelineStack) -> None:
    """cdk-nag's findings on what CDK Pipelines creates (and the checks' grants), each acknowledged on its policy."""
    for construct in stack.node.find_all():
        if isinstance(construct, iam.CfnPolicy):
            acknowledge_wildcards(construct)
    bucket = stack.pipeline.pipeline.artifact_bucket.node.default_child
    assert bucket is not None
    acknowledge(bucket, "AwsSolutions-S1", NO_ACCESS_LOGS)


def build_ci(
    app: cdk.App,
    *,
    make_stack: StackFactory,
    pipeline: bool,
    github: bool,
    config: str | Path | None = None,
    pipeline_config: str | Path | None = None,
) -> None:
    """The CI stacks from ``pipeline_config`` (default infra/pipeline.yaml), each stage ``make_stack`` of ``config``
    (default infra/deployment.yaml) with the stage's overrides: the CodePipeline pipeline (``pipeline``), whose stages
    hold the stacks; with ``github``, the GitHub Actions role's stack, and (without ``pipeline``) each stage as a nested
    assembly of its own (``cdk.out/assembly-Dev``), which the workflow deploys."""
    from infra.github_oidc import GITHUB_STACK, GithubStack

    loaded = load_pipeline(pipeline_config, deployment=config)
    if pipeline:
        PipelineStack(app, PIPELINE_STACK, pipeline=loaded, make_stack=make_stack)
    if github:
        if loaded.config.github is None:
            raise ConfigError(f"{loaded.source}: github: -c github=true needs the github section (repository, ref)")
        GithubStack(app, GITHUB_STACK, config=loaded.config)
        if not pipeline:
            for stage in loaded.config.stages:
                DeployStage(
                    app,
                    stage.name.capitalize(),
                    stage=stage,
                    deployment=loaded.deployments[stage.name],
                    make_stack=make_stack,
                    checks_account=loaded.config.account,
                )
