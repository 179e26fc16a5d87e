"""The retraining workflow as synthesized: the state machine RETRAIN.md draws (states, transitions, retries, catches,
timeouts, payloads), its logging (no execution data) and tracing, the two functions' grants and sizes, the published specs and schedules.

``dev`` and ``prod`` synthesize with the default retraining config and specs without a retraining schedule; ``retrain``
(tests/infra/conftest.py) has a scheduled, approval-gated spec and a non-default config.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.packaging import LAMBDA_UNZIPPED_LIMIT
from infra.retraining import LAMBDA_ERRORS
from infra.specs import stage_specs
from layers.build import unzipped_size
from serverless_mlops.model.fit import CODE_VERSION_ENV
from serverless_mlops.retraining import contract as c
from serverless_mlops.retraining.specs import spec_files
from tests.helpers.template import RETRAIN_SCHEDULE, Synth, as_list, s3_grants, statements

ROOT = Path(__file__).resolve().parents[2]
TRAINING_STATES = {c.STATE_PREPARE: c.PREPARE, c.STATE_TRAIN: c.TRAIN, c.STATE_EVALUATE: c.EVALUATE}
RELEASE_STATES = {
    c.STATE_REGISTER: c.REGISTER,
    c.STATE_REGISTER_REJECTED: c.REGISTER,
    c.STATE_WAIT_FOR_APPROVAL: c.REQUEST_APPROVAL,
    c.STATE_PROMOTE: c.PROMOTE,
    c.STATE_REJECT: c.REJECT,
    c.STATE_NOTIFY_PROMOTED: c.NOTIFY,
    c.STATE_NOTIFY_REJECTED: c.NOTIFY,
    c.STATE_NOTIFY_FAILURE: c.NOTIFY,
}
SUCCEED = {c.STATE_PROMOTED, c.STATE_NOT_PROMOTED, c.STATE_ALREADY_RUNNING}
CHOICES = {c.STATE_GATE, c.STATE_NEEDS_APPROVAL, c.STATE_APPROVED}


@pytest.fixture(params=["dev", "prod", "retrain"])
def synth(request: pytest.FixtureRequest) -> Synth:
    return request.getfixturevalue(request.param)


def _placeholder(part: dict[str, Any]) -> str:
    if "Ref" in part:
        return {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}.get(part["Ref"], f"<{part['Ref']}>")
    if "Fn::GetAtt" in part:
        return "<{}.{}>".format(*part["Fn::GetAtt"])
    raise AssertionError(f"unexpected intrinsic in the definition: {part}")


def definition(synth: Synth) -> dict[str, Any]:
    """The state machine's ASL, with Fn::Join's intrinsics replaced by placeholders (<LogicalId.Arn>, aws)."""
    machine = synth.raw["Resources"][synth.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")]
    body = machine["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return json.loads("".join(p if isinstance(p, str) else _placeholder(p) for p in parts))  # type: ignore[no-any-return]


def function_id(synth: Synth, handler: str) -> str:
    (found,) = [n for n, f in synth.resources("AWS::Lambda::Function").items() if f["Properties"]["Handler"] == handler]
    return found


def tasks(states: dict[str, Any]) -> dict[str, Any]:
    return {name: state for name, state in states.items() if state["Type"] == "Task"}


def test_the_states_are_the_contracts_and_connected_as_drawn(synth: Synth) -> None:
    asl = definition(synth)
    states = asl["States"]
    assert asl["StartAt"] == c.STATE_PREPARE
    assert set(states) == {*TRAINING_STATES, *RELEASE_STATES, *SUCCEED, *CHOICES, c.STATE_FAILED}
    assert set(tasks(states)) == {*TRAINING_STATES, *RELEASE_STATES}
    assert {n for n, s in states.items() if s["Type"] == "Succeed"} == SUCCEED
    assert {n for n, s in states.items() if s["Type"] == "Choice"} == CHOICES
    nexts = {name: state.get("Next") for name, state in states.items() if state["Type"] == "Task"}
    assert nexts == {
        c.STATE_PREPARE: c.STATE_TRAIN,
        c.STATE_TRAIN: c.STATE_EVALUATE,
        c.STATE_EVALUATE: c.STATE_GATE,
        c.STATE_REGISTER: c.STATE_NEEDS_APPROVAL,
        c.STATE_REGISTER_REJECTED: c.STATE_NOTIFY_REJECTED,
        c.STATE_WAIT_FOR_APPROVAL: c.STATE_APPROVED,
        c.STATE_PROMOTE: c.STATE_NOTIFY_PROMOTED,
        c.STATE_REJECT: c.STATE_NOTIFY_REJECTED,
        c.STATE_NOTIFY_PROMOTED: c.STATE_PROMOTED,
        c.STATE_NOTIFY_REJECTED: c.STATE_NOT_PROMOTED,
        c.STATE_NOTIFY_FAILURE: c.STATE_FAILED,
    }
    choices = {
        c.STATE_GATE: ("$.evaluation.passed", c.STATE_REGISTER, c.STATE_REGISTER_REJECTED),
        c.STATE_NEEDS_APPROVAL: ("$.evaluation.require_approval", c.STATE_WAIT_FOR_APPROVAL, c.STATE_PROMOTE),
        c.STATE_APPROVED: ("$.approval.approved", c.STATE_PROMOTE, c.STATE_REJECT),
    }
    for name, (variable, yes, no) in choices.items():
        assert states[name]["Choices"] == [{"Variable": variable, "BooleanEquals": True, "Next": yes}], name
        assert states[name]["Default"] == no, name
    failed = states[c.STATE_FAILED]
    assert (failed["Type"], failed["Error"]) == ("Fail", c.FAILED_ERROR)
    assert "$.error.Error" in failed["CausePath"]


def test_every_task_invokes_its_function_with_the_step_payload(synth: Synth) -> None:
    states = definition(synth)["States"]
    training = f"<{function_id(synth, 'functions.training.app.lambda_handler')}.Arn>"
    release = f"<{function_id(synth, 'functions.release.app.lambda_handler')}.Arn>"
    for name, state in tasks(states).items():
        step = {**TRAINING_STATES, **RELEASE_STATES}[name]
        parameters = state["Parameters"]
        assert parameters["FunctionName"] == (training if name in TRAINING_STATES else release), name
        expected = {"step": step, "state.$": "$", "execution.$": "$$.Execution.Id", "execution_name.$": "$$.Execution.Name"}
        if name == c.STATE_WAIT_FOR_APPROVAL:
            assert state["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
            assert parameters["Payload"] == {**expected, "token.$": "$$.Task.Token"}
            assert state["ResultPath"] == "$.approval"
            assert "OutputPath" not in state
        else:
            # the service integration, not the legacy function-ARN resource (moto maps that one's errors to "Exception")
            assert state["Resource"] == "arn:aws:states:::lambda:invoke", name
            assert parameters["Payload"] == expected, name
            assert state["OutputPath"] == "$.Payload", name
            assert "ResultPath" not in state, name


def test_every_task_retries_lambda_errors_from_the_config_and_has_a_timeout(synth: Synth) -> None:
    settings = synth.stack.deployment.config.retraining
    states = definition(synth)["States"]
    for name, state in tasks(states).items():
        assert state["Retry"] == [
            {
                "ErrorEquals": list(LAMBDA_ERRORS),
                "IntervalSeconds": settings.retry.interval_seconds,
                "BackoffRate": settings.retry.backoff_rate,
                "MaxAttempts": settings.retry.max_attempts,
            }
        ], name
        timeout = state["TimeoutSeconds"]
        if name == c.STATE_WAIT_FOR_APPROVAL:
            assert timeout == settings.approval_timeout_hours * 3600
        else:
            function = settings.train if name in TRAINING_STATES else settings.release
            # longer than the function's own timeout (which names the function), never unbounded
            assert function.timeout_seconds < timeout <= function.timeout_seconds + 60, name
    assert definition(synth)["TimeoutSeconds"] == settings.approval_timeout_hours * 3600 + settings.train.timeout_seconds + 3600


def test_every_task_catches_everything_into_the_failure_notification(synth: Synth) -> None:
    states = definition(synth)["States"]
    for name, state in tasks(states).items():
        *first, last = state["Catch"]
        if name == c.STATE_NOTIFY_FAILURE:
            assert first == []
            assert last["ErrorEquals"] == ["States.ALL"]
            assert last["Next"] == c.STATE_FAILED
            assert last["ResultPath"] != "$.error"  # the original error stays for Failed's cause
            continue
        assert last == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": c.STATE_NOTIFY_FAILURE}, name
        if name == c.STATE_PREPARE:
            assert first == [{"ErrorEquals": [c.ALREADY_RUNNING_ERROR], "ResultPath": "$.error", "Next": c.STATE_ALREADY_RUNNING}]
        elif name == c.STATE_WAIT_FOR_APPROVAL:
            assert first == [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": c.STATE_REJECT}]
        else:
            assert first == [], name


def test_the_machine_logs_every_event_without_data_and_traces(synth: Synth) -> None:
    machine = synth.raw["Resources"][synth.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")]
    properties = machine["Properties"]
    assert properties["TracingConfiguration"] == {"Enabled": True}
    logging = properties["LoggingConfiguration"]
    # no execution data: WaitForApproval's parameters carry the task token (tests/infra/test_approvals_iam.py)
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", False)
    (destination,) = logging["Destinations"]
    log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synth.raw["Resources"][log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == synth.stack.deployment.config.log_retention_days
    assert log_group["LogGroupName"].startswith("/aws/vendedlogs/states/")


def test_the_state_machine_arn_is_a_stable_output(synth: Synth) -> None:
    machine_id = synth.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    output = synth.raw["Outputs"]["StateMachineArn"]
    assert output["Value"] == {"Ref": machine_id}
    assert output["Export"]["Name"] == f"{synth.stack.stack_name}-StateMachineArn"


def _environment(synth: Synth, handler: str) -> dict[str, Any]:
    return synth.raw["Resources"][function_id(synth, handler)]["Properties"]["Environment"]["Variables"]  # type: ignore[no-any-return]


def test_the_functions_follow_the_config_and_the_environment_contract(synth: Synth) -> None:
    settings = synth.stack.deployment.config.retraining
    (topic_id,) = synth.resources("AWS::SNS::Topic")
    for handler, service, function in (
        ("functions.training.app.lambda_handler", "training", settings.train),
        ("functions.release.app.lambda_handler", "release", settings.release),
    ):
        properties = synth.raw["Resources"][function_id(synth, handler)]["Properties"]
        assert (properties["MemorySize"], properties["Timeout"]) == (function.memory_mb, function.timeout_seconds)
        env = properties["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == service
        assert {"MLOPS_BUCKET", "MLOPS_TABLE", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(env)
        assert env["MLOPS_ALERT_TOPIC_ARN"] == {"Ref": topic_id}
        # a lock expires when the longest possible execution would have ended
        assert env["MLOPS_LOCK_TTL_SECONDS"] == str(definition(synth)["TimeoutSeconds"])
    # Lambda has no git: the training function carries the synthesized commit for the lineage of what it trains
    training = synth.raw["Resources"][function_id(synth, "functions.training.app.lambda_handler")]["Properties"]
    commit = training["Environment"]["Variables"][CODE_VERSION_ENV]
    # a commit of this repository (not necessarily HEAD now: the synth is a session fixture and commits may follow)
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, check=False).returncode == 0


def test_the_training_function_runs_on_the_training_layer_and_fits_lambda(synth: Synth) -> None:
    layers = synth.resources("AWS::Lambda::LayerVersion")
    training_layer = next(n for n in layers if n.startswith("TrainingLayer"))
    inference_layer = next(n for n in layers if n.startswith("InferenceLayer"))
    training = synth.raw["Resources"][function_id(synth, "functions.training.app.lambda_handler")]["Properties"]
    release = synth.raw["Resources"][function_id(synth, "functions.release.app.lambda_handler")]["Properties"]
    assert training["Layers"] == [{"Ref": training_layer}]
    assert release["Layers"] == [{"Ref": inference_layer}]  # registry, S3 and SNS: no scikit-learn
    retraining = synth.stack.retraining
    # check_size fails the synth over the limit; this is the figure it computed (docs/deploying.md)
    assert retraining.training.unzipped_bytes <= LAMBDA_UNZIPPED_LIMIT
    assert retraining.training.unzipped_bytes > unzipped_size(synth.stack.training_layer.path / "python")


def test_training_reads_its_inputs_and_writes_snapshots_runs_and_artifacts(synth: Synth) -> None:
    grants = s3_grants(synth, "RetrainingTrainingRoleDefaultPolicy")
    assert set(grants) == {"/specs/*", "/feedback/*", "/snapshots/*", "/runs/*", "/holdout-recent/*", "/artifacts/*"}
    assert all("s3:GetObject*" in actions for actions in grants.values())
    writes = {prefix for prefix, actions in grants.items() if "s3:PutObject" in actions}
    assert writes == {"/snapshots/*", "/runs/*", "/artifacts/*"}  # never the published specs, users' feedback or recent rows
    assert not [a for actions in grants.values() for a in actions if a.startswith("s3:Delete")]


def test_release_reads_runs_and_artifacts_and_publishes_alerts(synth: Synth) -> None:
    grants = s3_grants(synth, "RetrainingReleaseRoleDefaultPolicy")
    assert set(grants) == {"/runs/*", "/artifacts/*"}
    assert not [a for actions in grants.values() for a in actions if a.startswith(("s3:Put", "s3:Delete"))]
    (topic_id,) = synth.resources("AWS::SNS::Topic")
    grants = [(n, s) for n, kind, s in statements(synth) if kind == "AWS::IAM::Policy" and "sns:Publish" in as_list(s["Action"])]
    # and the release workflow's notifications (issue 17: the same topic, attribute kind=release)
    assert {name.split("RoleDefaultPolicy")[0] for name, _s in grants} == {
        "MonitoringDriftCheck",
        "MonitoringQualityCheck",
        "RetrainingRelease",
        "ReleaseWorkflow",
    }
    assert all(statement["Resource"] == {"Ref": topic_id} for _name, statement in grants)


def test_the_machine_invokes_only_its_two_functions(synth: Synth) -> None:
    training = function_id(synth, "functions.training.app.lambda_handler")
    release = function_id(synth, "functions.release.app.lambda_handler")
    invokes = [(n, s) for n, _k, s in statements(synth) if "lambda:InvokeFunction" in as_list(s["Action"])]
    # the release workflow's machine and the batch scoring machine invoke their own (tests/infra/test_release.py, test_batch.py)
    assert {n.split("RoleDefaultPolicy")[0] for n, _s in invokes} == {"RetrainingStateMachine", "ReleaseStateMachine", "BatchStateMachine"}
    invokes = [(n, s) for n, s in invokes if n.startswith("RetrainingStateMachine")]
    resources = [json.dumps(r, sort_keys=True) for _n, s in invokes for r in as_list(s["Resource"])]
    assert resources
    assert all(training in r or release in r for r in resources)
    assert any(training in r for r in resources)
    assert any(release in r for r in resources)


def test_the_deployed_specs_are_published_under_specs(synth: Synth) -> None:
    (deployment,) = synth.resources("Custom::CDKBucketDeployment").values()
    properties = deployment["Properties"]
    (bucket_id,) = [n for n in synth.resources("AWS::S3::Bucket") if n.startswith("ArtifactsBucket")]
    assert properties["DestinationBucketName"] == {"Ref": bucket_id}
    assert properties["DestinationBucketKeyPrefix"] == f"{c.SPECS_PREFIX}/"
    assert properties["Prune"] is True
    # the asset is the staged folder: exactly the published layout of every deployed spec
    folder = synth.stack.retraining.specs_folder
    expected = {relative: body for spec in synth.stack.deployment.specs for relative, body in spec_files(spec).items()}
    found = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert found == expected
    assert {relative.split("/")[0] for relative in found} == {spec.name for spec in synth.stack.deployment.specs}
    assets = json.loads(next(synth.assembly_dir.glob("*.assets.json")).read_text(encoding="utf-8"))["files"]
    (key,) = properties["SourceObjectKeys"]
    assert Path(assets[key.removesuffix(".zip")]["source"]["path"]) == folder


def test_staging_the_specs_is_reused_when_nothing_changed(dev: Synth, tmp_path: Path) -> None:
    specs = dev.stack.deployment.specs
    first = stage_specs(specs, staging=tmp_path)
    assert stage_specs(specs, staging=tmp_path) == first
    assert stage_specs(specs[:1], staging=tmp_path) != first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left behind


def test_staging_the_specs_keeps_what_another_process_staged_first(dev: Synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import infra.packaging  # stage_specs stages through infra.packaging.stage

    def rename(source: str, target: Path) -> None:  # another process renamed its copy into place a moment earlier
        Path(target).mkdir()
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(infra.packaging.os, "rename", rename)
    final = stage_specs(dev.stack.deployment.specs, staging=tmp_path)
    assert final.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == [final.name]  # this process's temporary copy is gone


def test_the_train_context_names_this_executions_run_folder() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_stepfunctions as sfn

    from infra.config import Retry
    from infra.retraining import TrainContext

    stack = cdk.Stack(cdk.App(), "Context")
    bucket = s3.Bucket(stack, "Bucket")
    function = lambda_.Function.from_function_arn(stack, "Training", "arn:aws:lambda:us-east-1:123456789012:function:training")
    context = TrainContext(function=function, bucket=bucket, timeout=cdk.Duration.minutes(1), retry=Retry(), failure=sfn.Pass(stack, "F"))
    bucket_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    assert stack.resolve(context.run_uri) == {
        "Fn::Join": ["", ["States.Format('s3://", {"Ref": bucket_id}, "/runs/{}/{}/', $.model, $$.Execution.Name)"]]
    }
    assert stack.resolve(context.data_uri) == "$.data.uri"
    assert context.state_name == c.STATE_TRAIN
    assert context.bucket_objects("runs") == f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/runs/*]"


def test_a_schedule_rule_only_for_specs_with_a_retraining_schedule(dev: Synth, prod: Synth, retrain: Synth) -> None:
    for synth in (dev, prod):
        targets = [t for r in synth.resources("AWS::Events::Rule").values() for t in r["Properties"]["Targets"]]
        assert not [t for t in targets if "RoleArn" in t]  # no rule starts the state machine
    machine_id = retrain.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    rules = [r for r in retrain.resources("AWS::Events::Rule").values() if r["Properties"]["ScheduleExpression"] == RETRAIN_SCHEDULE]
    (rule,) = rules
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": machine_id}
    assert json.loads(target["Input"]) == {"model": "wine", "trigger": "schedule"}
    (queue_id,) = retrain.resources("AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    # the rule's role may start this machine and nothing else
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [s for n, _k, s in statements(retrain) if n.startswith(re.sub(r"[0-9A-F]{8}$", "", role_id) + "DefaultPolicy")]
    assert (policy["Action"], policy["Resource"]) == ("states:StartExecution", {"Ref": machine_id})
    # only wine asked for scheduled retraining; every spec still has its drift and its quality schedule
    assert len(retrain.resources("AWS::Events::Rule")) == 2 * len(retrain.stack.deployment.specs) + 1


def _readme_examples() -> tuple[str, str]:
    """The two Python examples of docs/deploying.md, "Swapping the Train step": the CDK app and the container's trainer.py."""
    page = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    text = page.split("\n## Swapping the Train step\n", 1)[1].split("\n## ", 1)[0]
    app, trainer = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return app, trainer


def test_the_readme_sagemaker_train_step_synthesizes_with_cdk_nag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import runpy

    import infra.app
    from tests.helpers.template import NO_STAGING

    app_source, _trainer = _readme_examples()
    built: list[Any] = []
    original = infra.app.build_app

    def build_app(*args: Any, **kwargs: Any) -> Any:
        built.append(original(*args, context=NO_STAGING, **kwargs))
        return built[-1]

    monkeypatch.setattr(infra.app, "build_app", build_app)
    script = tmp_path / "sagemaker_app.py"
    script.write_text(app_source, encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")  # its synth runs cdk-nag: an unacknowledged finding raises
    (app,) = built
    stack = next(child for child in app.node.children if isinstance(child, infra.app.ServerlessMlopsStack))
    synth = Synth(stack=stack, template=None, raw=app.synth().get_stack_by_name(stack.stack_name).template, assembly_dir=tmp_path)  # type: ignore[arg-type]
    states = definition(synth)["States"]
    train = states[c.STATE_TRAIN]
    assert train["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert (train["Next"], train["ResultPath"], train["TimeoutSeconds"]) == (c.STATE_EVALUATE, None, 5 * 3600)
    assert train["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": c.STATE_NOTIFY_FAILURE}]
    environment = train["Parameters"]["Environment"]
    assert (environment["MLOPS_EXECUTION_NAME.$"], environment["MLOPS_DATA_URI.$"]) == ("$$.Execution.Name", "$.data.uri")
    # the rest of the workflow is untouched
    assert set(states) == {*TRAINING_STATES, *RELEASE_STATES, *SUCCEED, *CHOICES, c.STATE_FAILED}
    assert states[c.STATE_PREPARE]["Next"] == c.STATE_TRAIN
    assert states[c.STATE_EVALUATE]["Parameters"]["FunctionName"] == f"<{function_id(synth, 'functions.training.app.lambda_handler')}.Arn>"


def test_the_readme_trainer_writes_a_run_folder_that_evaluate_collects(monkeypatch: pytest.MonkeyPatch, backends: Any) -> None:
    from serverless_mlops.model.spec import load_spec
    from serverless_mlops.retraining.candidate_steps import collect
    from serverless_mlops.retraining.runs import sha256_hex
    from serverless_mlops.retraining.specs import publish_specs
    from serverless_mlops.retraining.state import DataSnapshot, WorkflowState

    _app, trainer = _readme_examples()
    store = backends.store
    publish_specs([load_spec(ROOT / "models" / "wine.yaml")], store.s3, store.bucket)
    body = (ROOT / "models" / "data" / "wine.csv").read_bytes()
    digest = sha256_hex(body)
    snapshot = f"s3://{store.bucket}/snapshots/wine/{digest}.csv"
    store.s3.put_object(Bucket=store.bucket, Key=f"snapshots/wine/{digest}.csv", Body=body)
    environment = {"MLOPS_BUCKET": store.bucket, "MLOPS_MODEL": "wine", "MLOPS_EXECUTION_NAME": "wine-manual-1", "MLOPS_DATA_URI": snapshot}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    exec(trainer, {"__name__": "__main__"})
    listed = store.s3.list_objects_v2(Bucket=store.bucket, Prefix="runs/wine/wine-manual-1/")
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]) == ["model.onnx", "profile.json.gz", "run.json"]
    data = DataSnapshot(
        spec_uri=f"s3://{store.bucket}/specs/wine/spec.json", uri=snapshot, sha256=digest, rows=178, base_rows=178, feedback_rows=0,
        lock_owner="arn:aws:states:us-east-1:123456789012:execution:machine:wine-manual-1",
    )  # fmt: skip
    state = collect(WorkflowState(model="wine", data=data), backends, execution_name="wine-manual-1")
    assert state.candidate is not None
    assert state.candidate.metrics["f1"] >= 0.85
    assert state.candidate.record.endswith("runs/wine/wine-manual-1/run.json")
