"""The drift-check Lambda on moto: reports in S3, one SNS alert per window (seen on a subscribed SQS queue),
retraining started once, EMF metrics, and every event shape (and invalid ones) it accepts.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest

from functions.drift_check import app
from functions.drift_check.events import parse_event
from serverless_mlops.drift.service import Notifier
from serverless_mlops.errors import InvalidInputError
from serverless_mlops.local.http_api import ACCOUNT_ID, LambdaContext
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.retraining.control import drift_execution_name as execution_name
from serverless_mlops.retraining.control import start_for_drift
from serverless_mlops.settings import ConfigurationError
from serverless_mlops.store.capture_format import capture_key, encode_records
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.drift_data import drifted_frame, fresh_sample, records_for
from tests.helpers.events import emf_records, scheduled_event

START = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOW_EVENT = {"model": "diabetes", "window": {"start": "2026-11-25T11:00:00Z", "end": "2026-11-25T12:00:00Z"}}


@dataclass
class World:
    backends: Backends
    deps: app.Dependencies
    queue_url: str
    topic_arn: str
    state_machine_arn: str

    def put_capture(self, frame: pd.DataFrame, trained: TrainedModel, when: datetime, batch: str) -> str:
        key = capture_key("diabetes", when, batch)
        body = encode_records(records_for(trained, frame, when=when))
        self.backends.store.s3.put_object(Bucket=self.backends.store.bucket, Key=key, Body=body)
        return key

    def messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name="us-east-1")
        received = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in received]

    def executions(self) -> list[dict[str, Any]]:
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        return sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]  # type: ignore[no-any-return]


@pytest.fixture
def world(backends: Backends, trained_models: dict[str, TrainedModel]) -> World:
    version = register_run(trained_models["diabetes"], backends, by="drift-test")
    backends.registry.promote("diabetes", version.version, by="drift-test")
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    topic_arn = sns.create_topic(Name="drift-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="drift-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
    definition = {"StartAt": "Noted", "States": {"Noted": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(
        name="retraining", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/retraining"
    )["stateMachineArn"]
    deps = app.Dependencies(backends, Notifier(sns=sns, topic_arn=topic_arn, retrain=functools.partial(start_for_drift, sfn, machine)))
    return World(backends, deps, queue_url, topic_arn, machine)


def test_drift_writes_reports_alerts_once_and_starts_retraining_once(world: World, trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["diabetes"]
    world.put_capture(drifted_frame(150, 1), trained, START + timedelta(minutes=5), "a")
    world.put_capture(drifted_frame(150, 2), trained, START + timedelta(minutes=40), "b")
    world.put_capture(fresh_sample("diabetes", 500, 3), trained, END + timedelta(minutes=1), "after")  # outside the window

    summary = app.handle(WINDOW_EVENT, world.deps).summary()
    assert summary["status"] == "drift"
    assert summary["rows"] == 300
    assert summary["alerted"] is True
    bucket = world.backends.store.bucket
    prefix = f"s3://{bucket}/reports/diabetes/v1/20261125T1100Z-20261125T1200Z/"
    assert summary["report"] == {"json": prefix + "report.json", "html": prefix + "report.html"}
    s3 = world.backends.store.s3
    stored = json.loads(s3.get_object(Bucket=bucket, Key=prefix.split(bucket + "/")[1] + "report.json")["Body"].read())
    assert stored["status"] == "drift"
    page = s3.get_object(Bucket=bucket, Key=prefix.split(bucket + "/")[1] + "report.html")
    assert page["ContentType"].startswith("text/html")

    [envelope] = world.messages()
    assert envelope["Subject"] == "Drift: diabetes v1, 9/10 features"
    assert envelope["MessageAttributes"]["model"] == {"Type": "String", "Value": "diabetes"}
    assert envelope["MessageAttributes"]["severity"] == {"Type": "String", "Value": "critical"}
    body = json.loads(envelope["Message"])
    assert body["model"] == "diabetes"
    assert body["version"] == 1
    assert body["window"]["start"] == "2026-11-25T11:00:00.000Z"
    assert body["report"] == prefix + "report.json"
    drifted = {f["feature"]: f for f in body["drifted_features"]}
    assert set(drifted) == {"age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}
    assert drifted["bmi"]["test"] == "ks"
    assert drifted["bmi"]["statistic"] < drifted["bmi"]["threshold"] == pytest.approx(0.005)
    assert isinstance(body["data_quality"], list)

    [execution] = world.executions()
    assert execution["name"] == "diabetes-drift-20261125T1200"
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["model"] == "diabetes"
    assert started["trigger"] == "drift"
    assert started["report"] == prefix + "report.json"
    assert "9 of 10 features drifted" in started["reason"]

    retry = app.handle(WINDOW_EVENT, world.deps).summary()  # the same window again: no second alert or execution
    assert retry["status"] == "drift"
    assert retry["alerted"] is False
    assert "already alerted" in retry["alert_note"]
    assert retry["retraining_execution"] == execution["executionArn"]
    assert world.messages() == []
    assert len(world.executions()) == 1


def test_no_alert_without_drift_or_with_too_little_data(world: World, trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["diabetes"]
    world.put_capture(fresh_sample("diabetes", 300, 4), trained, START + timedelta(minutes=1), "fresh")
    summary = app.handle(WINDOW_EVENT, world.deps).summary()
    assert (summary["status"], summary["alerted"], summary["retraining_execution"]) == ("no_drift", False, None)

    later = {"model": "diabetes", "window": {"start": "2026-11-25T12:00:00Z", "end": "2026-11-25T13:00:00Z"}}
    world.put_capture(drifted_frame(40, 5), trained, END + timedelta(minutes=3), "few")
    summary = app.handle(later, world.deps).summary()
    assert (summary["status"], summary["rows"], summary["alerted"]) == ("insufficient_data", 40, False)
    assert world.messages() == []
    assert world.executions() == []


def test_a_malformed_capture_object_is_named_and_the_rest_still_checked(world: World, trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["diabetes"]
    world.put_capture(drifted_frame(200, 6), trained, START + timedelta(minutes=2), "good")
    bad_key = capture_key("diabetes", START + timedelta(minutes=3), "bad")
    s3, bucket = world.backends.store.s3, world.backends.store.bucket
    s3.put_object(Bucket=bucket, Key=bad_key, Body=b'{"ts": "2026-11-25T11:03:00.000Z", "model": "diabetes"\n{oops\n')
    summary = app.handle(WINDOW_EVENT, world.deps).summary()
    assert summary["rows"] == 200
    assert summary["status"] == "drift"
    [skipped] = summary["skipped_sources"]
    assert skipped["source"] == f"s3://{bucket}/{bad_key}"
    assert "line 1: invalid JSON" in skipped["error"]
    report = json.loads(s3.get_object(Bucket=bucket, Key=summary["report"]["json"].split(bucket + "/")[1])["Body"].read())
    assert report["skipped_sources"] == [skipped]


def test_lambda_handler_on_a_scheduler_event_emits_metrics(
    world: World, trained_models: dict[str, TrainedModel], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_ALERT_TOPIC_ARN", world.topic_arn)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ServerlessMlops")
    app.default_dependencies.cache_clear()
    event = scheduled_event("eventbridge_scheduler.json", {"model": "diabetes", "window_hours": 1})
    fire = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    world.put_capture(drifted_frame(200, 7), trained_models["diabetes"], fire - timedelta(minutes=30), "sched")
    try:
        context = LambdaContext(
            function_name="drift-check",
            aws_request_id="req-1",
            invoked_function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:drift-check",
        )
        summary = app.lambda_handler(event, context)  # type: ignore[arg-type]
    finally:
        app.default_dependencies.cache_clear()
    assert summary["status"] == "drift"
    assert summary["window"]["end"] == "2026-11-25T16:03:00.000Z"
    assert summary["alerted"] is True
    assert summary["retraining_execution"] is None  # no state machine configured in this environment
    blobs = emf_records(capsys.readouterr().out)
    dataset = next(b for b in blobs if "DatasetDrift" in b)
    assert dataset["DatasetDrift"] == [1.0] or dataset["DatasetDrift"] == 1.0
    assert dataset["model"] == "diabetes"
    assert dataset["RowsChecked"] in (200, [200], 200.0, [200.0])
    assert dataset["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ServerlessMlops"
    assert "model" in dataset["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
    scores = {b["feature"]: b for b in blobs if "DriftScore" in b}
    assert set(scores) == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}
    assert set(scores["bmi"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) >= {"model", "feature"}


def test_event_shapes() -> None:
    rule = parse_event({"model": "wine", "trigger": "schedule", "time": "2026-11-25T12:00:07Z"})
    assert (rule.model, rule.trigger, rule.time, rule.window) == ("wine", "schedule", datetime(2026, 11, 25, 12, 0, 7, tzinfo=UTC), None)
    assert parse_event({"model": "wine", "window_hours": 6}).window_hours == 6
    window = parse_event(WINDOW_EVENT).window
    assert window is not None
    assert window.end - window.start == timedelta(hours=1)
    parsed = parse_event(scheduled_event("eventbridge_scheduled.json", {"model": "wine"}))
    assert (parsed.model, parsed.trigger, parsed.time) == ("wine", "schedule", datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "model: Field required"),
        ({"model": "Bad Name"}, "model: String should match pattern"),
        ({"model": "wine", "window_hours": 0}, "window_hours: Input should be greater than or equal to 1"),
        ({"model": "wine", "window": {"start": "2026-11-25T12:00:00Z", "end": "2026-11-25T11:00:00Z"}}, "window: end must be after start"),
        (
            {"model": "wine", "window": {"start": "2026-11-25T11:00:00", "end": "2026-11-25T12:00:00Z"}},
            "window.start: Input should have timezone",
        ),
        ({"model": "wine", "window": {"start": "2026-11-25T11:00Z", "end": "2026-11-25T12:00Z"}, "window_hours": 3}, "not both"),
        ({"detail-type": "Scheduled Event", "time": "2026-11-25T12:00:00Z", "detail": {}}, "detail.model: required"),
        ({"detail": "{not json"}, "detail: not valid JSON"),
        ({"detail": ["wine"]}, "detail: expected an object"),
        (["wine"], "Input should be a valid dictionary"),
    ],
)
def test_invalid_events_name_the_field(event: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid drift-check event") as caught:
        parse_event(event)
    assert message in str(caught.value)


def test_an_unknown_model_is_a_clear_error(world: World) -> None:
    from serverless_mlops.errors import NotFoundError

    with pytest.raises(NotFoundError, match="nope"):
        app.handle({"model": "nope", "window_hours": 1}, world.deps)


def test_execution_names_fit_step_functions() -> None:
    assert execution_name("diabetes", "2026-11-25T12:00:00.000Z") == "diabetes-drift-20261125T1200"
    long = execution_name("m" * 63, END)
    assert len(long) == 80
    assert long.endswith("-drift-20261125T1200")


def test_a_drift_function_without_its_bucket_fails_its_first_invocation_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside Lambda a missing MLOPS_BUCKET is an error that names it, not the local default bucket."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "drift-check")
    monkeypatch.setenv("MLOPS_TABLE", "registry")
    monkeypatch.delenv("MLOPS_BUCKET", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ServerlessMlops")
    app.default_dependencies.cache_clear()
    event = scheduled_event("eventbridge_scheduler.json", {"model": "diabetes", "window_hours": 1})
    context = LambdaContext(
        function_name="drift-check",
        aws_request_id="req-2",
        invoked_function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:drift-check",
    )
    try:
        with pytest.raises(ConfigurationError, match=r"^MLOPS_BUCKET not set: the function drift-check needs it"):
            app.lambda_handler(event, context)  # type: ignore[arg-type]
    finally:
        app.default_dependencies.cache_clear()


def test_drift_settings_name_the_variable_at_fault() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid settings: MLOPS_BUCKET: String should have at least 3 characters"):
        app.DriftSettings.from_env({"MLOPS_BUCKET": "ab"})
    settings = app.DriftSettings.from_env({"MLOPS_ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t", "MLOPS_RETRAIN_STATE_MACHINE_ARN": " "})
    assert settings.alert_topic_arn == "arn:aws:sns:us-east-1:1:t"
    assert settings.retrain_state_machine_arn is None
