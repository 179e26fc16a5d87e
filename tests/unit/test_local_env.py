"""local_env's pure pieces: EventBridge's input transformer, schedule targets read from a template, the inbox's
message parsing, the information a client needs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.local.environment import LocalInfo, _alert, check_port, fire_schedules, local_template
from serverless_mlops.local.provisioner import FUNCTION, LocalStack
from serverless_mlops.local.schedules import ScheduledTarget, scheduled_targets, transform_input
from serverless_mlops.settings import Settings

NOW = datetime(2026, 11, 26, 1, 2, 33, tzinfo=UTC)


def test_the_transformer_inserts_json_outside_quotes_and_text_inside_them() -> None:
    event = {"time": "2026-11-26T01:02:00Z", "detail": {"n": 3, "tags": ["a"]}}
    template = '{"t": <time>, "label": "at <time>", "n": <n>, "tags": <tags>, "inline": "<tags>", "keep": "<other>"}'
    paths = {"time": "$.time", "n": "$.detail.n", "tags": "$.detail.tags"}
    assert json.loads(transform_input(template, paths, event)) == {
        "t": "2026-11-26T01:02:00Z",
        "label": "at 2026-11-26T01:02:00Z",
        "n": 3,
        "tags": ["a"],
        "inline": '["a"]',
        "keep": "<other>",
    }
    assert json.loads(transform_input("<all>", {"all": "$"}, {"a": 1})) == {"a": 1}
    # an escaped quote does not end the string: the placeholder after it is still inside one
    assert json.loads(transform_input(r'{"q": "a \" <time>", "r": <time>}', paths, event)) == {
        "q": 'a " 2026-11-26T01:02:00Z',
        "r": "2026-11-26T01:02:00Z",
    }
    assert transform_input("<gone>", {"gone": "$.no.such"}, {"no": 1}) == "null"
    with pytest.raises(MlopsError, match=r"input path 'time': only \$ and \$\.a\.b"):
        transform_input("<t>", {"t": "time"}, {})


def target(**changes: object) -> ScheduledTarget:
    base = ScheduledTarget(
        rule="Rule",
        expression="rate(1 day)",
        function="fn",
        input_paths={"time": "$.time"},
        input_template='{"model":"wine","trigger":"schedule","time":<time>}',
        rule_arn="arn:aws:events:eu-west-1:111122223333:rule/stack-Rule",
    )
    return base.model_copy(update=changes)


def test_a_target_gets_what_eventbridge_sends_it() -> None:
    assert target().event(NOW) == {"model": "wine", "trigger": "schedule", "time": "2026-11-26T01:02:00Z"}
    assert target(input='{"model": "iris"}', input_template=None).event(NOW) == {"model": "iris"}
    whole = target(input_template=None, input_paths={}).event(NOW)
    assert whole["detail-type"] == "Scheduled Event"
    assert (whole["account"], whole["region"], whole["resources"]) == ("111122223333", "eu-west-1", [target().rule_arn])
    assert target(input_template=None, input_paths={}, rule_arn="").event(NOW)["resources"] == []


def test_schedule_targets_come_from_the_rules_that_target_provisioned_functions() -> None:
    rule = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Description": "drift check of wine",
            "ScheduleExpression": "rate(6 hours)",
            "Targets": [
                {"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "Id": "a", "Input": '{"model": "wine"}'},
                {"Arn": {"Fn::GetAtt": ["Queue", "Arn"]}, "Id": "b"},  # not a function
                {"Arn": "arn:aws:lambda:us-east-1:1:function:elsewhere", "Id": "c"},  # not in the template
            ],
        },
    }
    pattern = {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": {"source": ["aws.s3"]}, "Targets": []}}
    template = {"Resources": {"Rule": rule, "Pattern": pattern, "Fn": {"Type": FUNCTION}, "Queue": {"Type": "AWS::SQS::Queue"}}}
    stack = LocalStack(stack_name="s", settings=Settings(), account="123456789012", template=template)
    stack.refs.update({"Fn": "s-Fn", "Queue": "https://queue"})
    stack.created.update({"Fn": FUNCTION, "Queue": "AWS::SQS::Queue"})
    [found] = scheduled_targets(stack)
    assert (found.rule, found.function, found.model, found.expression) == ("Rule", "s-Fn", "wine", "rate(6 hours)")
    assert found.rule_arn == "arn:aws:events:us-east-1:123456789012:rule/s-Rule"


def info(**changes: object) -> LocalInfo:
    base = LocalInfo(
        pid=1,
        started_at="now",
        stack_name="serverless-mlops-dev",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        api_url="http://127.0.0.1:2",
        bucket="bkt",
        table="tbl",
        alert_topic_arn="arn:topic",
        state_machine_arn="arn:machine",
        alerts_queue_url="http://127.0.0.1:1/q",
        functions={"inference": "inf"},
        models=["wine", "iris"],
        schedules=[target()],
    )
    return base.model_copy(update=changes)


def test_the_environment_points_every_command_at_the_stack_with_fake_credentials() -> None:
    env = info().environment()
    assert env["MLOPS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert (env["MLOPS_BUCKET"], env["MLOPS_TABLE"], env["MLOPS_RETRAIN_STATE_MACHINE_ARN"]) == ("bkt", "tbl", "arn:machine")
    assert env["MLOPS_API_URL"] == "http://127.0.0.1:2"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert info().settings.endpoint_url == "http://127.0.0.1:1"


def test_firing_names_what_is_deployed_before_calling_anything() -> None:
    with pytest.raises(NotFoundError, match="model 'nope' is not deployed in serverless-mlops-dev; deployed: wine, iris"):
        fire_schedules(info(), "nope")
    with pytest.raises(NotFoundError, match="has no schedule for 'iris'"):
        fire_schedules(info(), "iris")
    with pytest.raises(NotFoundError, match=r"serverless-mlops-dev has no schedule$"):
        fire_schedules(info(schedules=[]))


def test_inbox_messages_keep_the_subject_and_parse_json_bodies() -> None:
    envelope = {
        "Type": "Notification",
        "Subject": "Drift: wine v1, 6/13 features",
        "Message": json.dumps({"model": "wine"}),
        "Timestamp": "2026-11-26T01:02:03.000Z",
        "MessageAttributes": {"severity": {"Type": "String", "Value": "critical"}},
    }
    alert = _alert(json.dumps(envelope))
    assert (alert.subject, alert.message, alert.attributes) == (
        "Drift: wine v1, 6/13 features",
        {"model": "wine"},
        {"severity": "critical"},
    )
    plain = _alert(json.dumps({"Message": "retraining failed"}))
    assert (plain.subject, plain.message, plain.attributes) == ("", "retraining failed", {})


def test_a_busy_port_is_named_with_the_option_that_chose_it() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(MlopsError, match=f"--api-port {port} is busy: address already in use"):
            check_port("--api-port", port)
    check_port("--api-port", 0)  # 0: any free port, nothing to check
    check_port("--aws-port", None)


def test_a_missing_template_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"--template .*nope\.template\.json: no such file"):
        local_template(tmp_path / "nope.template.json")


def test_a_template_that_is_not_a_synthesized_template_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(MlopsError, match=r"--template .*x\.json: expected a synthesized \*\.template\.json file"):
        local_template(tmp_path / "x.json")
    folder = tmp_path / "cdk.template.json"
    folder.mkdir()
    with pytest.raises(MlopsError, match=r"cdk\.template\.json: expected a synthesized"):
        local_template(folder)
    broken = tmp_path / "broken.template.json"
    broken.write_text('{"Resources": ')
    with pytest.raises(MlopsError, match=r"broken\.template\.json is not a JSON template"):
        local_template(broken)
    broken.write_text('["not", "a", "template"]')
    with pytest.raises(MlopsError, match=r"broken\.template\.json is not a CloudFormation template"):
        local_template(broken)
