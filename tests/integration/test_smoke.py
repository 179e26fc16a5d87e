"""``mlops smoke`` as the pipeline runs it after a deploy, here against the local stack (its HTTP API, its registry on
moto, its drift function through moto's Lambda Invoke) and against tiny 127.0.0.1 servers that answer 500 or 403.

One local stack per module: first with only wine in production, so the models the inference function serves with
nothing in production are the missing ones; then (``healthy``) with every served model promoted. Every run goes through ``main`` in this
process: exit status, stdout, stderr, and never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_mlops.cli import main
from serverless_mlops.local.environment import LocalEnvironment, local_environment, local_template, seed_models

STACK_TEMPLATE = "serverless-mlops-dev.template.json"


@pytest.fixture(scope="module")
def running(dev_synth: Path) -> Iterator[LocalEnvironment]:
    """The local stack with wine trained and promoted; breast-cancer and diabetes are served with nothing in production."""
    document, assembly, stack_name = local_template(dev_synth / STACK_TEMPLATE)
    with local_environment(document, assembly, stack_name=stack_name) as env:
        seed_models(env.info.settings, ["wine"])
        yield env


def run(*args: str) -> tuple[int, list[str], list[str]]:
    """``mlops ARGS`` in this process: exit status, stdout lines, stderr lines (no traceback, ever)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, out.getvalue().splitlines(), err.getvalue().splitlines()


def on_stack(env: LocalEnvironment, *args: str) -> tuple[int, list[str], list[str]]:
    info = env.info
    aws = ("--endpoint-url", info.endpoint_url, "--table", info.table, "--bucket", info.bucket)
    code, out, err = run(*aws, "smoke", "--api-url", info.api_url, *args)
    # the functions run in this process: their JSON log lines (CloudWatch's, on AWS) share its stdout
    return code, [line for line in out if not line.startswith("{")], err


def failure(code: int, out: list[str], err: list[str]) -> str:
    assert code == 1, (out, err)
    assert len(err) == 1, err
    assert err[0].startswith("error: smoke check "), err
    return err[0]


@contextlib.contextmanager
def answering(status: int, body: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A 127.0.0.1 server answering every request with ``status`` and ``body``; yields its URL and the headers heard."""
    heard: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            heard.append({k.lower(): v for k, v in self.headers.items()})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", heard
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_served_model_with_nothing_in_production_is_named(running: LocalEnvironment) -> None:
    # runs before `healthy` promotes the other models (file order, also per xdist worker)
    info = running.info
    assert info.models == ["breast-cancer", "wine", "diabetes"]
    code, out, err = on_stack(running, *models(info.models))
    line = failure(code, out, err)
    api = info.api_url
    assert line == (
        f"error: smoke check ready failed: GET {api}/v2/health/ready answered 503 (body '{{\"ready\": false}}'); model breast-cancer "
        f"is not ready: GET {api}/v2/models/breast-cancer/ready answered 404 (error 'not_found')"
    )
    assert out == [f"✓ live: GET {api}/v2/health/live 200"]


@pytest.fixture(scope="module")
def healthy(running: LocalEnvironment) -> LocalEnvironment:
    """The same stack once every served model is in production."""
    seed_models(running.info.settings, ["breast-cancer", "diabetes"])
    return running


def models(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("--model", name)]


def test_a_healthy_stack_passes_every_check_in_order(healthy: LocalEnvironment) -> None:
    info = healthy.info
    code, out, err = on_stack(healthy, *models(info.models), "--drift-function", info.functions["drift_check"])
    assert (code, err) == (0, []), out + err
    api = info.api_url
    assert [line.split(":", 1)[0] for line in out] == [
        "✓ live",
        "✓ ready",
        "✓ openapi",
        "✓ predict breast-cancer",
        "✓ predict wine",
        "✓ predict diabetes",
        "✓ invalid-payload",
        "✓ drift",
    ], out
    assert out[:2] == [f"✓ live: GET {api}/v2/health/live 200", f"✓ ready: GET {api}/v2/health/ready 200"]
    assert out[2].startswith(f"✓ openapi: GET {api}/openapi.json OpenAPI 3.")
    assert out[4].startswith(f"✓ predict wine: POST {api}/v1/models/wine/predict v1 → ")
    assert out[6].startswith(f"✓ invalid-payload: POST {api}/v1/models/breast-cancer/predict refused with 4")
    assert out[7] == f"✓ drift: invoked {info.functions['drift_check']} for breast-cancer on an empty window: insufficient_data"


def test_without_a_drift_function_the_drift_check_is_skipped_and_says_so(healthy: LocalEnvironment) -> None:
    code, out, err = on_stack(healthy, "--model", "wine")
    assert (code, err) == (0, []), out + err
    assert out[-1].startswith("- drift: skipped (no drift function")


def test_a_model_the_endpoint_does_not_serve_is_named(healthy: LocalEnvironment) -> None:
    code, out, err = on_stack(healthy, "--model", "wine", "--model", "ghost")
    line = failure(code, out, err)
    assert line.startswith(f"error: smoke check predict ghost failed: GET {healthy.info.api_url}/v2/models/ghost answered 404 (error "), (
        line
    )
    assert out[3].startswith("✓ predict wine")


def test_an_api_answering_5xx_is_named() -> None:
    with answering(500, {"message": "Internal Server Error"}) as (url, _):
        line = failure(*run("smoke", "--api-url", url, "--model", "wine"))
    assert line == f"error: smoke check live failed: GET {url}/v2/health/live answered 500 (message 'Internal Server Error')"


def test_refused_authorization_is_named_and_the_request_was_signed() -> None:
    with answering(403, {"message": "Forbidden"}) as (url, heard):
        line = failure(*run("smoke", "--api-url", url, "--timeout", "5"))
    assert line == f"error: smoke check live failed: GET {url}/v2/health/live answered 403 (message 'Forbidden')"
    (headers,) = heard
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/us-east-1/execute-api/aws4_request" in headers["authorization"]
    assert headers["x-amz-security-token"] == "testing"


def test_nothing_listening_is_named_within_the_timeout() -> None:
    with answering(200, {}) as (url, _):
        pass  # closed: the port now refuses
    line = failure(*run("smoke", "--api-url", url, "--timeout", "2"))
    assert line.startswith(f"error: smoke check live failed: GET {url}/v2/health/live: no answer within 2 s (")


def test_the_stack_outputs_name_the_api() -> None:
    with mock_aws(), answering(403, {"message": "Forbidden"}) as (url, _):
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        template: dict[str, Any] = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"ApiUrl": {"Value": url + "/"}},
        }
        cloudformation.create_stack(StackName="serverless-mlops-dev", TemplateBody=json.dumps(template))
        line = failure(*run("smoke", "--stack", "serverless-mlops-dev"))
        assert line == f"error: smoke check live failed: GET {url}/v2/health/live answered 403 (message 'Forbidden')"
        template["Outputs"] = {}
        cloudformation.create_stack(StackName="no-api", TemplateBody=json.dumps(template))
        line = failure(*run("smoke", "--stack", "no-api"))
        assert line == "error: smoke check stack failed: stack no-api has no ApiUrl output (outputs: none)"


def test_either_a_stack_or_an_api_url() -> None:
    code, _, err = run("smoke")
    assert (code, err) == (1, ["error: pass either --stack NAME or --api-url URL"])


def lambda_resource(handler: str, variables: dict[str, str]) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "python3.12",
            "Handler": handler,
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"ZipFile": "def lambda_handler(event, context): return {}"},
            "Environment": {"Variables": variables},
        },
    }


def test_the_stack_resources_name_the_served_models_and_the_drift_function() -> None:
    # what `--stack` finds among the stack's resources (the stack has no output naming them): the inference function's
    # MLOPS_MODELS and the drift function's physical name, by their handlers; the outputs name the table and bucket
    from serverless_mlops.cli.smoke import stack_target
    from serverless_mlops.local.environment import HANDLERS
    from serverless_mlops.settings import Settings

    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}},
            "Inference": lambda_resource(HANDLERS["inference"], {"MLOPS_MODELS": "wine,diabetes"}),
            "Drift": lambda_resource(HANDLERS["drift_check"], {}),
            "Training": lambda_resource(HANDLERS["training"], {"MLOPS_MODELS": "ghost"}),
        },
        "Outputs": {
            "ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/"},
            "RegistryTableName": {"Value": "registry-from-stack"},
            "ArtifactBucketName": {"Value": "bucket-from-stack"},
        },
    }
    settings = Settings.from_env({}, region="us-east-1", table="registry-from-flag", bucket="bucket-from-flag")
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(StackName="serverless-mlops-dev", TemplateBody=json.dumps(template))
        drift = cloudformation.describe_stack_resource(StackName="serverless-mlops-dev", LogicalResourceId="Drift")
        drift_name = drift["StackResourceDetail"]["PhysicalResourceId"]
        target = stack_target("serverless-mlops-dev", settings, [], None)
        assert (target.api_url, target.models, target.drift_function) == (
            "https://abc.execute-api.us-east-1.amazonaws.com",
            ["wine", "diabetes"],
            drift_name,
        )
        assert (target.settings.table, target.settings.bucket) == ("registry-from-stack", "bucket-from-stack")
        # what the caller names wins over what the stack tells
        chosen = stack_target("serverless-mlops-dev", settings, ["wine"], "my-drift")
        assert (chosen.models, chosen.drift_function) == (["wine"], "my-drift")
