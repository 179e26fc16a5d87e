"""The CDK app (`cdk synth`, `cdk deploy`; cdk.json runs this file).

The stack composes one construct per capability — storage, inference, monitoring, retraining — from the deployment config
(infra/config.py). cdk-nag's AwsSolutions and Serverless packs check every synth; the few findings that AWS or
the design makes unavoidable are acknowledged where they arise, each with its reason (infra/nag.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.config import ROOT, ConfigError, Deployment, load_deployment
from infra.inference import InferenceApi
from infra.monitoring import Monitoring
from infra.nag import acknowledge_findings, add_nag_checks
from infra.packaging import Layer, StackBase
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
        self.inference_layer = Layer(self, "InferenceLayer", group="inference")
        base = StackBase(deployment, self.artifacts.bucket, self.registry.table)
        self.inference = InferenceApi(self, "Inference", base, layer=self.inference_layer)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            base,
            layer=self.inference_layer,  # drift needs numpy, pydantic and powertools: all in the inference layer
            inference=self.inference,
        )
        self.training_layer = Layer(self, "TrainingLayer", group="training")
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
        }
        for name, value in self.outputs.items():
            cdk.CfnOutput(self, name, value=value, export_name=f"{construct_id}-{name}")
        acknowledge_findings(self)


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

    ``train_step`` replaces the retraining workflow's Train state (default: the training Lambda; README "Swapping the
    Train step")."""
    # cdk.json's feature flags apply in-process too (tests, scripts), so they synthesize what `cdk synth` does
    flags = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    app = cdk.App(context={**flags, **(context or {})}, outdir=str(outdir) if outdir is not None else None)
    config = config or app.node.try_get_context("config")
    stage = stage or app.node.try_get_context("stage")
    if stage is not None and stage not in STAGES:
        raise ConfigError(f"stage: must be one of {', '.join(STAGES)}, got {stage!r}")
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
