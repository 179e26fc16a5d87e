"""``mlops retrain-if-changed --stack``: what the pipeline's model gate reads from a deployed stack (its outputs: the
bucket, the tables and the workflow; its inference function: the served models), on moto's CloudFormation."""

from __future__ import annotations

import contextlib
import io
import json

import boto3

from serverless_mlops.cli import main
from serverless_mlops.local.environment import HANDLERS
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.retraining.specs import publish_specs
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.specs import example_spec
from tests.integration.test_smoke import lambda_resource

TRUST = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def run(*args: str) -> tuple[int, list[str], list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue().splitlines(), err.getvalue().splitlines()


def test_the_stack_names_the_models_bucket_and_tables(
    backends: Backends, settings: Settings, trained_models: dict[str, TrainedModel]
) -> None:
    wine = register_run(trained_models["wine"], backends, by="test")
    backends.registry.promote("wine", wine.version, by="test", reason="in production before the deploy")
    publish_specs([example_spec("wine"), example_spec("diabetes")], boto3.client("s3"), settings.bucket)
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": TRUST}},
            "Inference": lambda_resource(HANDLERS["inference"], {"MLOPS_MODELS": "wine,diabetes"}),
        },
        "Outputs": {
            "ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/"},
            "ArtifactBucketName": {"Value": settings.bucket},
            "RegistryTableName": {"Value": settings.table},
            "RetrainingTableName": {"Value": str(settings.retraining_table)},
            "StateMachineArn": {"Value": "arn:aws:states:us-east-1:123456789012:stateMachine:retraining"},
        },
    }
    boto3.client("cloudformation").create_stack(StackName="serverless-mlops-dev", TemplateBody=json.dumps(template))
    # the global options name other resources: the stack's outputs win
    code, out, err = run(
        "--bucket", "elsewhere", "--table", "elsewhere", "retrain-if-changed", "--stack", "serverless-mlops-dev", "--dry-run"
    )
    assert (code, err) == (0, []), out + err
    assert out == [
        "- wine: no retraining: no model field changed (drift, evaluation and description apply without a new model)",
        "↻ diabetes: retraining: nothing in production",
    ]
    code, _, err = run("retrain-if-changed", "--stack", "no-such-stack")
    assert code == 1
    assert err[0].startswith("error: cannot describe stack no-such-stack: ")
