"""The CDK app (`cdk synth`, `cdk deploy`; cdk.json runs this file).

Today it provisions what the foundation uses: the artifact bucket and the registry table, with their names as
stack outputs. The inference, drift and retraining constructs join this stack as they are built.
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.storage import ArtifactStore, ModelRegistry

STAGES = ("dev", "prod")


class ServerlessMlopsStack(cdk.Stack):
    """Composes one construct per capability; outputs have stable names the CLI and tests read."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        retain = stage == "prod"
        artifacts = ArtifactStore(self, "Artifacts", retain=retain)
        registry = ModelRegistry(self, "Registry", retain=retain)
        cdk.CfnOutput(self, "ArtifactBucketName", value=artifacts.bucket.bucket_name, export_name=f"{construct_id}-ArtifactBucketName")
        cdk.CfnOutput(self, "RegistryTableName", value=registry.table.table_name, export_name=f"{construct_id}-RegistryTableName")


def build_app(stage: str | None = None) -> cdk.App:
    app = cdk.App()
    stage = stage or app.node.try_get_context("stage") or "dev"
    if stage not in STAGES:
        raise SystemExit(f"cdk.json context 'stage' must be one of {', '.join(STAGES)}, got {stage!r}")
    ServerlessMlopsStack(app, f"serverless-mlops-{stage}", stage=stage)
    return app


if __name__ == "__main__":
    build_app().synth()
