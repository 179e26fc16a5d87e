"""The release workflow as synthesized (infra/release.py): the states docs/releasing.md draws, Retry/Catch/timeouts
like the retraining machine, logging and tracing, the Wait's SecondsPath, and least privilege: CheckGuards may only
read metrics and alarms and read or update the registry's items."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.release import FUNCTION_TIMEOUT, MACHINE_TIMEOUT
from infra.retraining import LAMBDA_ERRORS, TASK_MARGIN
from serverless_mlops.release import contract as r
from tests.helpers.template import Synth, as_list

WORKFLOW = "functions.release_workflow.app.lambda_handler"
GUARDS = "functions.release_guards.app.lambda_handler"
STEPS = {
    r.STATE_BEGIN: r.BEGIN,
    r.STATE_SET_SHADOW: r.SET_SHADOW,
    r.STATE_CHECK_SHADOW: r.CHECK_SHADOW,
    r.STATE_SET_WEIGHT: r.SET_WEIGHT,
    r.STATE_CHECK_GUARDS: r.CHECK_GUARDS,
    r.STATE_PROMOTE: r.PROMOTE,
    r.STATE_ROLLBACK: r.ROLLBACK,
    r.STATE_ROLLBACK_ON_FAILURE: r.ROLLBACK,
    r.STATE_NOTIFY_PROMOTED: r.NOTIFY,
    r.STATE_NOTIFY_ROLLED_BACK: r.NOTIFY,
    r.STATE_NOTIFY_FAILURE: r.NOTIFY,
}


def machine(synth: Synth) -> dict[str, Any]:
    return synth.raw["Resources"][synth.resource_id("AWS::StepFunctions::StateMachine", "ReleaseStateMachine")]  # type: ignore[no-any-return]


def definition(synth: Synth) -> dict[str, Any]:
    body = machine(synth)["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else "<{}>".format(p.get("Fn::GetAtt", [p.get("Ref")])[0]) for p in parts)
    return json.loads(text)  # type: ignore[no-any-return]


def jsonpaths(node: Any) -> list[str]:
    """Every JSONPath of the definition: the values of ``*Path`` keys, ``Variable`` and ``*.$`` parameters."""
    if isinstance(node, list):
        return [path for item in node for path in jsonpaths(item)]
    if not isinstance(node, dict):
        return []
    found = [v for k, v in node.items() if isinstance(v, str) and (k.endswith(("Path", ".$")) or k == "Variable")]
    return found + [path for value in node.values() for path in jsonpaths(value)]


def function_id(synth: Synth, handler: str) -> str:
    (found,) = [n for n, f in synth.resources("AWS::Lambda::Function").items() if f["Properties"]["Handler"] == handler]
    return found


def test_the_states_are_connected_as_drawn(synth: Synth) -> None:
    asl = definition(synth)
    states = asl["States"]
    assert asl["StartAt"] == r.STATE_BEGIN
    assert states[r.STATE_BEGIN]["Next"] == r.STATE_SHADOW_FIRST
    # --shadow-first: Begin sets $.phase to "shadow"; without it the release goes straight to its first weight
    assert states[r.STATE_SHADOW_FIRST]["Type"] == "Choice"
    assert states[r.STATE_SHADOW_FIRST]["Choices"] == [{"Variable": "$.phase", "StringEquals": "shadow", "Next": r.STATE_SET_SHADOW}]
    assert states[r.STATE_SHADOW_FIRST]["Default"] == r.STATE_SET_WEIGHT
    assert states[r.STATE_SET_SHADOW]["Next"] == r.STATE_SHADOW_BAKE
    assert states[r.STATE_SHADOW_BAKE] == {"Type": "Wait", "SecondsPath": "$.shadow_phase.bake_seconds", "Next": r.STATE_CHECK_SHADOW}
    assert states[r.STATE_CHECK_SHADOW]["Next"] == r.STATE_SHADOW_DECIDE
    # the shadow phase never promotes: it goes on to the first weight, bakes again, or rolls back
    shadow_choices = {c["StringEquals"]: c["Next"] for c in states[r.STATE_SHADOW_DECIDE]["Choices"]}
    assert shadow_choices == {"advance": r.STATE_SET_WEIGHT, "wait": r.STATE_SHADOW_BAKE}
    assert all(c["Variable"] == "$.decision" for c in states[r.STATE_SHADOW_DECIDE]["Choices"])
    assert states[r.STATE_SHADOW_DECIDE]["Default"] == r.STATE_ROLLBACK
    assert states[r.STATE_SET_WEIGHT]["Next"] == r.STATE_BAKE
    # the bake comes from the document (the spec's, or a start's override): tests and demos pass 0-1 s
    assert states[r.STATE_BAKE] == {"Type": "Wait", "SecondsPath": "$.current.bake_seconds", "Next": r.STATE_CHECK_GUARDS}
    assert states[r.STATE_CHECK_GUARDS]["Next"] == r.STATE_DECIDE
    choices = {c["StringEquals"]: c["Next"] for c in states[r.STATE_DECIDE]["Choices"]}
    assert choices == {"advance": r.STATE_SET_WEIGHT, "wait": r.STATE_BAKE, "promote": r.STATE_PROMOTE}
    assert all(c["Variable"] == "$.decision" for c in states[r.STATE_DECIDE]["Choices"])
    assert states[r.STATE_DECIDE]["Default"] == r.STATE_ROLLBACK
    assert states[r.STATE_PROMOTE]["Next"] == r.STATE_NOTIFY_PROMOTED
    assert states[r.STATE_ROLLBACK]["Next"] == r.STATE_NOTIFY_ROLLED_BACK
    assert states[r.STATE_ROLLBACK_ON_FAILURE]["Next"] == r.STATE_NOTIFY_FAILURE
    assert {name: s["Type"] for name, s in states.items() if s["Type"] in ("Succeed", "Fail")} == {
        r.STATE_PROMOTED: "Succeed",
        r.STATE_ROLLED_BACK: "Succeed",
        r.STATE_ALREADY_RUNNING: "Succeed",
        r.STATE_FAILED: "Fail",
    }
    assert not [path for path in jsonpaths(asl) if "[" in path]  # moto answers an indexed JSONPath with a list
    assert asl["TimeoutSeconds"] == MACHINE_TIMEOUT.to_seconds()


def test_every_task_invokes_its_function_retries_lambda_errors_and_has_a_timeout(synth: Synth) -> None:
    retry = synth.stack.deployment.config.retraining.retry
    states = definition(synth)["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert set(tasks) == set(STEPS)
    for name, state in tasks.items():
        function = GUARDS if name in (r.STATE_CHECK_GUARDS, r.STATE_CHECK_SHADOW) else WORKFLOW
        assert state["Resource"] == "arn:<AWS::Partition>:states:::lambda:invoke", name
        assert state["Parameters"]["FunctionName"] == f"<{function_id(synth, function)}>", name
        assert state["Parameters"]["Payload"] == {
            "step": STEPS[name],
            "state.$": "$",
            "execution.$": "$$.Execution.Id",
            "execution_name.$": "$$.Execution.Name",
        }
        assert state["OutputPath"] == "$.Payload", name
        assert state["Retry"] == [
            {
                "ErrorEquals": list(LAMBDA_ERRORS),
                "IntervalSeconds": retry.interval_seconds,
                "BackoffRate": retry.backoff_rate,
                "MaxAttempts": retry.max_attempts,
            }
        ], name
        assert state["TimeoutSeconds"] == FUNCTION_TIMEOUT.plus(TASK_MARGIN).to_seconds(), name


def test_every_task_catches_everything_into_a_rollback(synth: Synth) -> None:
    states = definition(synth)["States"]
    for name in STEPS:
        *first, last = states[name]["Catch"]
        if name == r.STATE_NOTIFY_FAILURE:
            assert (last["ErrorEquals"], last["Next"], first) == (["States.ALL"], r.STATE_FAILED, [])
            assert last["ResultPath"] != "$.error"
        elif name == r.STATE_ROLLBACK_ON_FAILURE:
            assert (last["ErrorEquals"], last["Next"], first) == (["States.ALL"], r.STATE_NOTIFY_FAILURE, [])
            assert last["ResultPath"] != "$.error"
        else:
            assert last == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": r.STATE_ROLLBACK_ON_FAILURE}, name
            expected = [{"ErrorEquals": [r.ALREADY_RUNNING_ERROR], "ResultPath": "$.error", "Next": r.STATE_ALREADY_RUNNING}]
            assert first == (expected if name == r.STATE_BEGIN else []), name


def test_the_shadow_phase_states_retry_catch_and_time_out_like_the_others(synth: Synth) -> None:
    """SetShadow and CheckShadow (--shadow-first) are guarded as every task is: a failure there clears the shadow."""
    states = definition(synth)["States"]
    for name in (r.STATE_SET_SHADOW, r.STATE_CHECK_SHADOW):
        state = states[name]
        assert [retry["ErrorEquals"] for retry in state["Retry"]] == [list(LAMBDA_ERRORS)], name
        assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": r.STATE_ROLLBACK_ON_FAILURE}], name
        assert state["TimeoutSeconds"] == FUNCTION_TIMEOUT.plus(TASK_MARGIN).to_seconds(), name


def test_the_machine_logs_every_event_and_traces(synth: Synth) -> None:
    properties = machine(synth)["Properties"]
    assert properties["TracingConfiguration"] == {"Enabled": True}
    logging = properties["LoggingConfiguration"]
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", False)
    (destination,) = logging["Destinations"]
    log_group = synth.raw["Resources"][destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]]["Properties"]
    assert log_group["LogGroupName"].startswith("/aws/vendedlogs/states/")
    assert log_group["LogGroupName"].endswith("-release")
    assert "KmsKeyId" in log_group


def test_the_outputs_name_the_machine_and_the_operator_policy(synth: Synth) -> None:
    outputs = synth.raw["Outputs"]
    assert outputs["ReleaseStateMachineArn"]["Value"] == {
        "Ref": synth.resource_id("AWS::StepFunctions::StateMachine", "ReleaseStateMachine")
    }
    assert outputs["ReleaseOperatorPolicyArn"]["Export"]["Name"] == f"{synth.stack.stack_name}-ReleaseOperatorPolicyArn"


def role_statements(synth: Synth, handler: str) -> list[dict[str, Any]]:
    role = synth.raw["Resources"][function_id(synth, handler)]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in as_list(statement["Action"])}


def test_check_guards_may_only_read_metrics_and_alarms_and_update_the_registry_items(synth: Synth) -> None:
    statements = role_statements(synth, GUARDS)
    assert all(s["Effect"] == "Allow" for s in statements)
    logs_and_xray = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert actions(statements) - logs_and_xray == {
        "cloudwatch:GetMetricData",
        "cloudwatch:DescribeAlarms",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    registry = synth.resource_id("AWS::DynamoDB::GlobalTable", "RegistryTable")
    for statement in statements:
        if any(a.startswith("dynamodb:") for a in as_list(statement["Action"])):
            assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [registry, "Arn"]}]
        if "cloudwatch:DescribeAlarms" in as_list(statement["Action"]):
            assert ":alarm:*" in json.dumps(statement["Resource"])
    # nothing to publish, start, delete or write objects with
    assert not [a for a in actions(statements) if a.startswith(("sns:", "states:", "s3:", "lambda:"))]


def test_the_workflow_function_writes_only_release_lock_items_of_the_coordination_table(synth: Synth) -> None:
    statements = role_statements(synth, WORKFLOW)
    coordination = synth.resource_id("AWS::DynamoDB::GlobalTable", "RetrainingTable")
    (lock,) = [s for s in statements if {"Fn::GetAtt": [coordination, "Arn"]} in as_list(s["Resource"])]
    assert set(as_list(lock["Action"])) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert lock["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{r.LOCK_PREFIX}*"]}}
    assert "cloudwatch:GetMetricData" not in actions(statements)


@pytest.mark.parametrize("handler", [WORKFLOW, GUARDS])
def test_the_functions_run_on_the_inference_layer(synth: Synth, handler: str) -> None:
    properties = synth.raw["Resources"][function_id(synth, handler)]["Properties"]
    (layer,) = properties["Layers"]
    assert layer["Ref"].startswith("InferenceLayer")
    assert properties["TracingConfig"] == {"Mode": "Active"}


def test_the_retraining_release_function_may_start_a_release(synth: Synth) -> None:
    """``retraining.promote_with: release``: its Promote starts this machine (ARN in its environment, StartExecution)."""
    release_machine = {"Ref": synth.resource_id("AWS::StepFunctions::StateMachine", "ReleaseStateMachine")}
    retraining_release = "functions.release.app.lambda_handler"
    env = synth.raw["Resources"][function_id(synth, retraining_release)]["Properties"]["Environment"]["Variables"]
    assert env["MLOPS_RELEASE_STATE_MACHINE_ARN"] == release_machine
    starts = [s for s in role_statements(synth, retraining_release) if "states:StartExecution" in as_list(s["Action"])]
    assert [(as_list(s["Action"]), s["Resource"]) for s in starts] == [(["states:StartExecution"], release_machine)]


def test_what_no_notification_can_report_raises_an_alarm_on_the_alert_topic(synth: Synth) -> None:
    (topic,) = synth.resources("AWS::SNS::Topic")
    machine = synth.resource_id("AWS::StepFunctions::StateMachine", "ReleaseStateMachine")
    alarms = {name: a["Properties"] for name, a in synth.resources("AWS::CloudWatch::Alarm").items() if name.startswith("Release")}
    assert len(alarms) == 5
    metrics = set()
    for properties in alarms.values():
        assert properties["AlarmActions"] == [{"Ref": topic}]
        assert (properties["Threshold"], properties["TreatMissingData"]) == (1, "notBreaching")
        metrics.add(properties["MetricName"])
        if properties["Namespace"] == "AWS/States":
            assert properties["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]
    assert metrics == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted", "Errors"}
