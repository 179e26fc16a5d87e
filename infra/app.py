"""The CDK app (`cdk synth`, `cdk deploy`; cdk.json runs this file).

The stack composes one construct per capability — storage, inference, monitoring, retraining — from the deployment config
(infra/config.py). cdk-nag's AwsSolutions and Serverless packs check every synth; the few findings that AWS or
the design makes unavoidable are acknowledged where they arise, each with its reason (infra/nag.py; those on the
resources the stack composes, below).
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.batch import BatchScoring, acknowledge_batch
from infra.config import ROOT, ConfigError, Deployment, load_deployment
from infra.families import training_layer_group
from infra.inference import InferenceApi
from infra.monitoring import Monitoring
from infra.nag import FAILURES_QUEUE, account_arn, acknowledge, acknowledge_function, add_nag_checks, default_policy
from infra.packaging import Layer, StackBase
from infra.pipeline import build_ci
from infra.quality import QualityChecks
from infra.release import Release
from infra.retraining import Retraining, TrainStep
from infra.storage import ArtifactStore, ModelRegistry
from layers.build import LayerBuildError
from serverless_mlops.errors import MlopsError

STAGES = ("dev", "prod")


class ServerlessMlopsStack(cdk.Stack):
    """Composes one construct per capability; outputs have stable names the CLI and tests read."""

    def __init__(
        self, scope: Construct, construct_id: str, *, deployment: Deployment, train_step: TrainStep | None = None, **kwargs: object
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"serverless-mlops ({deployment.stage})",
            termination_protection=deployment.stage == "prod",  # `cdk destroy` of prod fails until someone turns it off on purpose
            tags=deployment.tags,  # the stack itself (cdk.json's explicitStackTags: Tags.of below no longer reaches it)
            **kwargs,  # type: ignore[arg-type]
        )
        self.deployment = deployment
        for key, value in deployment.tags.items():
            cdk.Tags.of(self).add(key, value)  # every resource that takes tags, in the template, where a test can see them
        retain = deployment.retain
        self.artifacts = ArtifactStore(self, "Artifacts", retain=retain, capture_retention_days=deployment.config.capture_retention_days)
        self.registry = ModelRegistry(self, "Registry", retain=retain)
        self.inference_layer = Layer(self, "InferenceLayer", group="inference", architecture=deployment.config.architecture)
        base = StackBase(deployment, self.artifacts.bucket, self.registry.table)
        self.inference = InferenceApi(self, "Inference", base, layer=self.inference_layer)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            base,
            layer=self.inference_layer,  # drift needs numpy, pydantic and powertools: all in the inference layer
            inference=self.inference,
        )
        self.quality = QualityChecks(  # issue 18: the quality check, under the monitoring construct it reports to
            self.monitoring,
            base,
            layer=self.inference_layer,
            topic=self.monitoring.topic,
            failures=self.monitoring.failures,
            dashboard=self.monitoring.dashboard,
        )
        # the training layer, plus the optional group of an estimator family the specs name (refused if too big); x86_64
        # whatever the config says (layers/rules.py X86_ONLY)
        self.training_layer = Layer(
            self,
            "TrainingLayer",
            group=training_layer_group(deployment, custom_train_step=train_step is not None),
            architecture="x86_64",
        )
        self.retraining = Retraining(
            self,
            "Retraining",
            base,
            topic=self.monitoring.topic,
            failures=self.monitoring.failures,
            training_layer=self.training_layer,
            release_layer=self.inference_layer,  # registry, S3 and SNS calls: no scikit-learn
            train_step=train_step,
        )
        self.monitoring.connect_retraining(
            self.retraining.state_machine, {"Training": self.retraining.training.function, "Release": self.retraining.release.function}
        )
        self.quality.connect_retraining(self.retraining.state_machine)
        # issue 17: the release workflow (canary/linear rollout, guards, automatic rollback; infra/release.py)
        self.release = Release(
            self, "Release", base, topic=self.monitoring.topic, coordination=self.retraining.table, layer=self.inference_layer
        )
        # retraining.promote_with: release: the retraining workflow's Promote starts a release instead of switching
        self.release.connect_retraining(self.retraining.release)
        self.batch = BatchScoring(self, "Batch", base, layer=self.inference_layer)  # issue 20: mlops batch score
        self.outputs = {
            "ApiUrl": self.inference.url,
            "AlertTopicArn": self.monitoring.topic.topic_arn,
            "ArtifactBucketName": self.artifacts.bucket.bucket_name,
            "RegistryTableName": self.registry.table.table_name,
            "StateMachineArn": self.retraining.state_machine.state_machine_arn,
            "RetrainingTableName": self.retraining.table.table_name,
            # attach to the people who decide (mlops approve/reject) and who release (mlops promote/rollback)
            "ApproverPolicyArn": self.retraining.approver_policy.managed_policy_arn,
            "ReleaserPolicyArn": self.retraining.releaser_policy.managed_policy_arn,
            "ReleaseStateMachineArn": self.release.state_machine.state_machine_arn,
            "ReleaseOperatorPolicyArn": self.release.operator_policy.managed_policy_arn,  # mlops release start/status/abort
            "BatchStateMachineArn": self.batch.state_machine.state_machine_arn,
        }
        for name, value in self.outputs.items():
            cdk.CfnOutput(self, name, value=value, export_name=f"{construct_id}-{name}")
        acknowledge_findings(self)


def acknowledge_findings(stack: ServerlessMlopsStack) -> None:
    """The findings on the resources this stack composes, each with its reason (the reasons shared by every function
    are in infra/nag.py)."""
    bucket = stack.artifacts.bucket
    acknowledge_function(stack.inference.handler, bucket=bucket, invocation="http")
    monitoring = stack.monitoring
    acknowledge_function(monitoring.handler, bucket=bucket, invocation="async", publishes=True)
    acknowledge_function(stack.quality.handler, bucket=bucket, invocation="async", publishes=True)
    queue = monitoring.failures.node.default_child
    assert queue is not None
    acknowledge(queue, "AwsSolutions-SQS3", FAILURES_QUEUE)
    acknowledge(queue, "Serverless-SQSRedrivePolicy", FAILURES_QUEUE)
    _acknowledge_retraining(stack, bucket)
    _acknowledge_release(stack, bucket)
    acknowledge_batch(stack.batch)


def _acknowledge_retraining(stack: ServerlessMlopsStack, bucket: s3.IBucket) -> None:
    retraining = stack.retraining
    acknowledge_function(retraining.training, bucket=bucket, invocation="workflow")
    acknowledge_function(retraining.release, bucket=bucket, invocation="workflow", publishes=True)

    # the state machine's role: X-Ray and CloudWatch Logs delivery need Resource "*"; it invokes its two functions; and
    # what a replacement Train step brings (TrainContext.acknowledge_machine)
    machine_policy = default_policy(retraining.state_machine.role)
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


def _acknowledge_release(stack: ServerlessMlopsStack, bucket: s3.IBucket) -> None:
    """The release workflow's findings (infra/release.py), each with its reason."""
    release = stack.release
    acknowledge_function(release.workflow, bucket=bucket, invocation="workflow", publishes=True)
    acknowledge_function(release.guards, bucket=bucket, invocation="workflow")
    guard_reads = release.guard_reads.node.default_child
    assert guard_reads is not None
    acknowledge(
        guard_reads,
        "AwsSolutions-IAM5[Resource::*]",
        "cloudwatch:GetMetricData supports no resource-level permissions: AWS requires '*' (CheckGuards reads the guard metrics)",
    )
    acknowledge(
        guard_reads,
        f"AwsSolutions-IAM5[Resource::{account_arn(stack, 'cloudwatch', 'alarm:*')}]",
        "DescribeAlarms of the alarms a spec names (release.guards.alarms), which are any of the account's: read-only",
    )
    machine_policy = default_policy(release.state_machine.role)
    acknowledge(
        machine_policy,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing (PutTraceSegments, PutTelemetryRecords, GetSampling*) and Step Functions' log delivery "
        "(logs:CreateLogDelivery, PutResourcePolicy, DescribeLogGroups, ...) support no resource-level permissions: AWS requires '*'",
    )
    for function in (release.workflow, release.guards):
        function_id = stack.get_logical_id(function.function.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            machine_policy,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            "from LambdaInvoke's grant: lambda:InvokeFunction on this one function and its versions and aliases (ARN:*)",
        )
    operator = release.operator_policy.node.default_child
    assert operator is not None
    machine_id = stack.get_logical_id(release.state_machine.node.default_child)  # type: ignore[arg-type]
    acknowledge(
        operator,
        f"AwsSolutions-IAM5[Resource::{account_arn(stack, 'states', f'execution:<{machine_id}.Name>:*')}]",
        "the executions of the release machine (each named by its release id), to follow one: read-only",
    )


def _bucket_deployment_handler(stack: cdk.Stack) -> lambda_.Function:
    """The singleton function of CDK's BucketDeployment (one per stack and memory size), a child of the stack."""
    (handler,) = [
        child
        for child in stack.node.children
        if child.node.id.startswith("Custom::CDKBucketDeployment") and isinstance(child, lambda_.Function)
    ]
    return handler


def build_app(
    config: str | Path | None = None,
    *,
    stage: str | None = None,
    nag: bool = True,
    context: dict[str, object] | None = None,
    train_step: TrainStep | None = None,
    outdir: str | Path | None = None,
) -> cdk.App:
    """The app for a deployment config (default infra/deployment.yaml; context ``config`` and ``stage`` override).

    ``train_step`` replaces the retraining workflow's Train state (default: the training Lambda; docs/deploying.md, "Swapping the
    Train step")."""
    # cdk.json's feature flags apply in-process too (tests, scripts), so they synthesize what `cdk synth` does
    flags = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    app = cdk.App(context={**flags, **(context or {})}, outdir=str(outdir) if outdir is not None else None)
    config = config or app.node.try_get_context("config")
    stage = stage or app.node.try_get_context("stage")
    if stage is not None and stage not in STAGES:
        raise ConfigError(f"stage: must be one of {', '.join(STAGES)}, got {stage!r}")
    # -c pipeline=true: the deploy pipeline; -c github=true: the GitHub Actions role and each stage (infra/pipeline.py)
    pipeline, github = (str(app.node.try_get_context(key)).lower() == "true" for key in ("pipeline", "github"))
    if pipeline or github:
        pipeline_config = app.node.try_get_context("pipeline_config")
        build_ci(app, make_stack=ServerlessMlopsStack, pipeline=pipeline, github=github, config=config, pipeline_config=pipeline_config)
    else:
        deployment = load_deployment(config, stage=stage)
        ServerlessMlopsStack(app, f"serverless-mlops-{deployment.stage}", deployment=deployment, train_step=train_step)
    if nag:
        add_nag_checks(app)
    return app


def main() -> None:
    try:
        app = build_app()
    except (MlopsError, LayerBuildError) as exc:
        raise SystemExit(f"error: {exc}") from None
    app.synth()


if __name__ == "__main__":
    # run the imported module, not this __main__ copy, so the stack class is infra.app.ServerlessMlopsStack
    from infra.app import main as run

    run()
