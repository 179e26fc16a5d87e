"""The local stack on moto: the real dev template provisioned, a function invoked through moto's Lambda API, and
the less common template shapes (conditions, subscriptions, zipped assets, markers) on a small hand-made template."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from serverless_mlops.aws import client
from serverless_mlops.local.assembly import LOCAL_OUT, fresh_assembly, load_template, newest_input, synthesized
from serverless_mlops.local.lambda_runtime import LocalInvoker
from serverless_mlops.local.moto import LocalAws
from serverless_mlops.local.provisioner import BUCKET_DEPLOYMENT, FUNCTION, STATE_MACHINE, LocalStack, provision
from serverless_mlops.local.template import LocalStackError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.specs import ROOT

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
DRIFT_HANDLER = "functions.drift_check.app.lambda_handler"


@pytest.fixture(scope="module")
def dev_template() -> tuple[dict[str, Any], Path]:
    """infra/deployment.yaml as shipped, synthesized once for this module (asset staging off, no cdk-nag)."""
    from infra.app import build_app

    assembly = build_app(nag=False, context={"aws:cdk:disable-asset-staging": True}).synth()
    return assembly.get_stack_by_name("serverless-mlops-dev").template, Path(assembly.directory)


@pytest.fixture
def dev_stack(dev_template: tuple[dict[str, Any], Path]) -> Iterator[LocalStack]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield provision(*dev_template, Settings())


def test_the_dev_template_is_provisioned_with_names_environment_and_outputs(dev_stack: LocalStack) -> None:
    settings = Settings(bucket=dev_stack.output("ArtifactBucketName"), table=dev_stack.output("RegistryTableName"))
    assert settings.bucket == dev_stack.ref(dev_stack.find("AWS::S3::Bucket", "ArtifactsBucket"))
    assert settings.bucket == settings.bucket.lower()
    assert set(dev_stack.outputs) >= {"AlertTopicArn", "ArtifactBucketName", "RegistryTableName", "StateMachineArn"}
    assert "ApiUrl" not in dev_stack.outputs
    assert "AWS::ApiGatewayV2::Api" in dev_stack.unresolved_outputs["ApiUrl"]
    with pytest.raises(LocalStackError, match="ApiUrl has no local value"):
        dev_stack.output("ApiUrl")
    assert {"AWS::ApiGatewayV2::Api", "AWS::CloudWatch::Alarm", "AWS::IAM::Policy", "AWS::KMS::Key"} <= set(dev_stack.skipped.values())

    table = client("dynamodb", settings).describe_table(TableName=settings.table)["Table"]
    template_table = dev_stack.properties(dev_stack.find("AWS::DynamoDB::GlobalTable", "RegistryTable"))
    assert table["KeySchema"] == template_table["KeySchema"]

    drift = dev_stack.function_name(DRIFT_HANDLER)
    assert dev_stack.functions[DRIFT_HANDLER] == drift
    environment = dev_stack.environment(drift)
    assert environment["MLOPS_BUCKET"] == settings.bucket
    assert environment["MLOPS_TABLE"] == settings.table
    assert environment["MLOPS_ALERT_TOPIC_ARN"] == dev_stack.output("AlertTopicArn")
    assert environment["MLOPS_RETRAIN_STATE_MACHINE_ARN"] == dev_stack.output("StateMachineArn")

    machine = client("stepfunctions", settings).describe_state_machine(stateMachineArn=dev_stack.output("StateMachineArn"))
    definition = machine["definition"]
    assert "Fn::" not in definition
    assert dev_stack.attribute(dev_stack.find(FUNCTION, "RetrainingTraining"), "Arn") in definition
    assert json.loads(definition)["States"]

    published = {uri.rsplit("/specs/", 1)[-1] for uri in dev_stack.uploaded}
    for model in ("breast-cancer", "wine", "diabetes"):
        assert f"{model}/spec.json" in published
    assert dev_stack.logical_ids(BUCKET_DEPLOYMENT)


def test_provisioning_twice_changes_nothing_but_updates_functions(dev_template: tuple[dict[str, Any], Path]) -> None:
    template, assembly = dev_template
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        first = provision(template, assembly, Settings())
        changed = json.loads(json.dumps(template))
        drift_id = first.find(FUNCTION, "MonitoringDriftCheck")
        changed["Resources"][drift_id]["Properties"]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] = "DEBUG"
        second = provision(changed, assembly, Settings())
        assert second.refs == first.refs
        assert second.environment(second.ref(drift_id))["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
        machines = client("stepfunctions", Settings()).list_state_machines()["stateMachines"]
        assert len(machines) == len(first.logical_ids(STATE_MACHINE)) == 3  # retraining, release (issue 17), batch scoring


def test_drift_check_runs_in_process_through_motos_lambda_api(dev_stack: LocalStack, trained_models: dict[str, TrainedModel]) -> None:
    settings = Settings(bucket=dev_stack.output("ArtifactBucketName"), table=dev_stack.output("RegistryTableName"))
    backends = Backends.from_settings(settings)
    entry = register_run(trained_models["wine"], backends, by="test")
    backends.registry.promote("wine", entry.version, by="test")
    lam = client("lambda", settings)
    drift = dev_stack.function_name(DRIFT_HANDLER)
    with LocalInvoker() as invoker:
        response = lam.invoke(FunctionName=drift, Payload=json.dumps({"model": "wine", "window_hours": 6}))
        summary = json.loads(response["Payload"].read())
        missing = lam.invoke(FunctionName=drift, Payload=json.dumps({"model": "no-such-model", "window_hours": 6}))
        error = json.loads(missing["Payload"].read())
    assert "FunctionError" not in response
    assert (summary["model"], summary["status"], summary["rows"]) == ("wine", "insufficient_data", 0)
    assert missing["FunctionError"]
    assert error["errorType"] == "NotFoundError"
    assert "no-such-model" in error["errorMessage"]
    assert [call.function for call in invoker.calls] == [drift, drift]
    assert invoker.calls[0].event == {"model": "wine", "window_hours": 6}


def test_against_a_moto_server_functions_reach_it_through_the_endpoint(
    dev_template: tuple[dict[str, Any], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.config import default_user_config

    # provisioning a server turns on moto's process-wide execute_state_machine: put it back after the test
    monkeypatch.setitem(default_user_config, "stepfunctions", dict(default_user_config["stepfunctions"]))
    with LocalAws() as aws:
        settings = Settings(endpoint_url=aws.endpoint_url)
        stack = provision(*dev_template, settings)
        drift = stack.function_name(DRIFT_HANDLER)
        with LocalInvoker(endpoint_url=aws.endpoint_url):
            response = client("lambda", settings).invoke(FunctionName=drift, Payload=json.dumps({"model": "wine", "window_hours": 6}))
        # the function looked the model up in the server's table (which is empty), so it got this far
        assert "'wine' is not registered" in json.loads(response["Payload"].read())["errorMessage"]


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def test_less_common_shapes_of_a_template(tmp_path: Path) -> None:
    (tmp_path / "zipped.zip").write_bytes(_zip({"a/one.json": b'{"topic": "<<marker:0>>"}', "folder/": b""}))
    (tmp_path / "single.txt").write_text("plain")
    manifest = {"files": {"zipped": {"source": {"path": "zipped.zip"}}, "single": {"source": {"path": str(tmp_path / "single.txt")}}}}
    (tmp_path / "st.assets.json").write_text(json.dumps(manifest))
    inbox = {"Fn::GetAtt": ["Inbox", "Arn"]}
    template: dict[str, Any] = {
        "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "explicit-bucket"}},
            "ProdOnly": {"Type": "AWS::SQS::Queue", "Condition": "IsProd"},
            "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True}},
            "Inbox": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}},
            "Topic": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"Subscription": [{"Protocol": "sqs", "Endpoint": inbox}, {"Protocol": "https", "Endpoint": "https://x"}]},
            },
            "Mail": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "email", "Endpoint": "a@b.c"},
            },
            "Queued": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "sqs",
                    "Endpoint": inbox,
                    "RawMessageDelivery": True,
                    "FilterPolicy": {"model": ["wine"]},
                },
            },
            "Hook": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "https", "Endpoint": "https://x"},
            },
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in ("id", "r", "g")],
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}],
                    "LocalSecondaryIndexes": [
                        {
                            "IndexName": "local",
                            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "g", "KeyType": "RANGE"}],
                            "Projection": {"ProjectionType": "KEYS_ONLY"},
                        }
                    ],
                    "GlobalSecondaryIndexes": [
                        {
                            "IndexName": "byG",
                            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                    ],
                    "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
                    "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires"},
                },
            },
            "Deploy": {
                "Type": BUCKET_DEPLOYMENT,
                "Properties": {
                    "SourceObjectKeys": ["zipped.zip", "single.zip"],
                    "SourceMarkers": [{"<<marker:0>>": {"Ref": "Topic"}}, {}],
                    "DestinationBucketName": {"Ref": "Bucket"},
                    "DestinationBucketKeyPrefix": "site/",
                },
            },
        },
        "Outputs": {
            "Stream": {"Value": {"Fn::GetAtt": ["Table", "StreamArn"]}},
            "Prod": {"Value": {"Ref": "ProdOnly"}, "Condition": "IsProd"},
        },
    }
    with mock_aws():
        stack = provision(template, tmp_path, Settings(region="eu-west-1"), stack_name="st")
        s3 = client("s3", stack.settings)
        assert stack.ref("Bucket") == "explicit-bucket"
        assert stack.ref("Dlq").endswith("st-Dlq.fifo")
        assert "ProdOnly" not in stack.refs
        assert "Prod" not in stack.outputs
        assert stack.skipped == {"Hook": "AWS::SNS::Subscription"}
        assert stack.outputs["Stream"] == stack.attribute("Table", "StreamArn")
        table = client("dynamodb", stack.settings).describe_table(TableName=stack.ref("Table"))["Table"]
        assert [i["IndexName"] for i in table["LocalSecondaryIndexes"]] == ["local"]
        body = json.loads(s3.get_object(Bucket="explicit-bucket", Key="site/a/one.json")["Body"].read())
        assert body == {"topic": stack.ref("Topic")}
        assert s3.get_object(Bucket="explicit-bucket", Key="site/single.txt")["Body"].read() == b"plain"
        protocols = sorted(s["Protocol"] for s in client("sns", stack.settings).list_subscriptions()["Subscriptions"])
        assert protocols == ["email", "sqs"]  # the inline and the separate sqs subscription are one (same endpoint)
        ttl = client("dynamodb", stack.settings).describe_time_to_live(TableName=stack.ref("Table"))["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires"
        with pytest.raises(LocalStackError, match="no resource 'Nope'"):
            stack.ref("Nope")
        with pytest.raises(LocalStackError, match="no attribute 'Size'"):
            stack.attribute("Bucket", "Size")
        with pytest.raises(LocalStackError, match=r"expected one AWS::Lambda::Function named \*"):
            stack.find(FUNCTION)
        with pytest.raises(LocalStackError, match="expected one function with handler"):
            stack.function_name("x.y")


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        ({"Type": BUCKET_DEPLOYMENT, "Properties": {"Extract": False, "DestinationBucketName": "b"}}, "Extract: false"),
        ({"Type": "AWS::StepFunctions::StateMachine", "Properties": {"RoleArn": "arn"}}, "no DefinitionString"),
        (
            {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::ImportValue": "x"}}},
            r"Broken \(AWS::SQS::Queue\): Fn::ImportValue",
        ),
    ],
)
def test_what_cannot_be_provisioned_is_named(resource: dict[str, Any], problem: str) -> None:
    with mock_aws(), pytest.raises(LocalStackError, match=problem):
        provision({"Resources": {"Broken": resource}}, None, Settings())


def test_a_definition_object_and_substitutions_are_accepted() -> None:
    role = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    machine = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "Definition": {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "${greeting}", "End": True}}},
            "DefinitionSubstitutions": {"greeting": "hello"},
            "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
        },
    }
    with mock_aws():
        stack = provision({"Resources": {"Role": role, "Machine": machine}}, None, Settings())
        definition = client("stepfunctions", stack.settings).describe_state_machine(stateMachineArn=stack.ref("Machine"))["definition"]
    assert '"Result": "hello"' in definition


@pytest.mark.parametrize("folder", ["cdk.out", str(LOCAL_OUT)])
def test_synthesized_reuses_a_fresh_assembly_and_load_template_names_a_missing_one(tmp_path: Path, folder: str) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "app.py").write_text("")
    cached = tmp_path / folder / "serverless-mlops-dev.template.json"
    cached.parent.mkdir(parents=True)
    cached.write_text('{"Resources": {}}')
    assert newest_input(tmp_path) <= cached.stat().st_mtime
    template, assembly = synthesized(root=tmp_path)
    assert (template, assembly) == ({"Resources": {}}, cached.parent)
    with pytest.raises(LocalStackError, match="make synth"):
        load_template(tmp_path, "serverless-mlops-prod")
    assert newest_input(ROOT) > 0
    # renaming a state in the workflow's contract makes the assembly stale: its definition would name the old states
    contract = tmp_path / "serverless_mlops" / "retraining" / "contract.py"
    contract.parent.mkdir(parents=True)
    contract.write_text("")
    os.utime(contract, (cached.stat().st_mtime + 10, cached.stat().st_mtime + 10))
    assert fresh_assembly(tmp_path) is None
    # so does a new lock: the layers it decides are assets of the template
    os.utime(contract, (cached.stat().st_mtime - 10, cached.stat().st_mtime - 10))
    assert fresh_assembly(tmp_path) == cached
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "layer-training.txt").write_text("")
    os.utime(tmp_path / "locks" / "layer-training.txt", (cached.stat().st_mtime + 10, cached.stat().st_mtime + 10))
    assert fresh_assembly(tmp_path) is None


def test_an_in_process_synthesis_is_self_contained_like_cdk_synth(dev_synth: Path) -> None:
    """What local mode synthesizes (as `mlops demo` does) can be deployed as it is (`cdk deploy --app <folder>`):
    every asset its manifests name lies inside the assembly, CDK's own too (with staging off, the AwsCliLayer and the
    custom resource providers' code lay in the jsii kernel's temporary folders, gone when the process ended)."""
    sources = []
    for manifest in dev_synth.rglob("*.assets.json"):
        for asset_hash, asset in json.loads(manifest.read_text(encoding="utf-8"))["files"].items():
            path = asset["source"]["path"]
            assert not Path(path).is_absolute(), f"{manifest.name}: asset {asset_hash} points outside the assembly: {path}"
            resolved = (manifest.parent / path).resolve()
            assert resolved.is_relative_to(dev_synth.resolve()), path
            assert resolved.exists(), path
            sources.append(resolved)
    assert len(sources) >= 6  # the two layers, the functions' code, the specs, the AwsCliLayer, ...
    assert any(p.suffix == ".zip" for p in sources)  # CDK's AwsCliLayer is a file asset
    assert any((p / "python" / "onnxruntime").is_dir() for p in sources if p.is_dir())  # the inference layer
    # no template names a path outside the assembly either (asset metadata, when CDK writes it)
    for template in dev_synth.glob("*.template.json"):
        assert str(ROOT) not in template.read_text(encoding="utf-8")
