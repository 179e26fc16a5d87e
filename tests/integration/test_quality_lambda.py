"""The quality-check Lambda on moto: captured predictions (with ids, no probabilities) and ground truth in S3 →
per-version verdicts, CBPE from the calibration training stored, JSON + HTML reports, one SNS alert per window with
``kind=quality`` (seen on a subscribed SQS queue), retraining started once, EMF records; and the event shapes."""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.quality_check import app
from functions.quality_check.events import parse_event
from serverless_mlops.errors import InvalidInputError
from serverless_mlops.local.http_api import ACCOUNT_ID, LambdaContext
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.profile import load_profile
from serverless_mlops.quality.labels import Label, write_labels
from serverless_mlops.quality.report import latest_quality_report
from serverless_mlops.quality.service import QualityNotifier
from serverless_mlops.store.capture_format import capture_key, encode_records
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.drift_data import fresh_sample, records_for

END = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MADE = END - timedelta(days=2)
QUALITY = {"window": "7d", "label_delay": "3d", "min_labels": 50, "floors": {"accuracy": 0.9}, "retrain_on_quality": True}


@dataclasses.dataclass
class World:
    backends: Backends
    deps: app.Dependencies
    queue_url: str
    machine: str

    def messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name="us-east-1")
        received = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in received]


def _with_quality(trained: TrainedModel, quality: dict[str, Any]) -> TrainedModel:
    record = trained.record.model_copy(update={"spec": trained.record.spec | {"quality": quality}})
    return dataclasses.replace(trained, record=record)


@pytest.fixture
def world(backends: Backends, trained_models: dict[str, TrainedModel]) -> World:
    version = register_run(_with_quality(trained_models["breast-cancer"], QUALITY), backends, by="quality-test")
    backends.registry.promote("breast-cancer", version.version, by="quality-test")
    sns, sqs, sfn = (boto3.client(s, region_name="us-east-1") for s in ("sns", "sqs", "stepfunctions"))
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    definition = {"StartAt": "Noted", "States": {"Noted": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(name="retraining", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r")
    notifier = QualityNotifier(sns=sns, topic_arn=topic, retrain=functools.partial(app.start_for_quality, sfn, machine["stateMachineArn"]))
    return World(backends, app.Dependencies(backends, notifier), queue, machine["stateMachineArn"])


def _traffic(world: World, trained: TrainedModel, *, rows: int, flip_every: int, seed: int) -> None:
    """``rows`` captured predictions with ids (no probabilities: the check recomputes them) and a label for each,
    every ``flip_every``-th one wrong (0: none)."""
    frame = fresh_sample("breast-cancer", rows, seed=seed)
    records = records_for(trained, frame, when=MADE)
    for i, record in enumerate(records):
        record["id"] = f"s{seed}-{i}"
    s3, bucket = world.backends.store.s3, world.backends.store.bucket
    s3.put_object(Bucket=bucket, Key=capture_key("breast-cancer", MADE, f"b{seed}"), Body=encode_records(records))
    labels = [
        Label(f"s{seed}-{i}", (1 - int(t)) if flip_every and i % flip_every == 0 else int(t), MADE + timedelta(hours=1))
        for i, t in enumerate(frame["target"])
    ]
    write_labels(s3, bucket, "breast-cancer", labels, now=MADE + timedelta(hours=2))


def test_trained_classifiers_store_a_calibration_with_the_model(trained_models: dict[str, TrainedModel]) -> None:
    calibration = load_profile(trained_models["breast-cancer"].profile_bytes)["calibration"]
    assert calibration["method"] == "isotonic_ovr"
    assert len(calibration["curves"]) == 2
    assert "calibration" not in load_profile(trained_models["diabetes"].profile_bytes)


def test_a_healthy_window_reports_realized_and_estimated_without_alerting(world: World, trained_models: dict[str, TrainedModel]) -> None:
    _traffic(world, trained_models["breast-cancer"], rows=300, flip_every=0, seed=1)
    outcome = app.handle({"model": "breast-cancer", "end": "2026-12-07T12:00:00Z"}, world.deps)
    result = outcome.result
    assert result.status == "ok"
    assert result.probabilities == "recomputed"
    (v1,) = result.versions
    assert (v1.predictions, v1.labelled, v1.coverage) == (300, 300, 1.0)
    assert v1.realized["accuracy"] > 0.9
    assert abs(v1.estimated["accuracy"] - v1.realized["accuracy"]) < 0.05
    assert v1.estimate_reliable is True
    assert sum(map(sum, v1.confusion_matrix)) == 300
    assert outcome.alert is None
    assert world.messages() == []
    bucket = world.backends.store.bucket
    prefix = f"s3://{bucket}/reports/breast-cancer/quality/20261130T1200Z-20261207T1200Z/"
    assert outcome.report == {"json": prefix + "quality.json", "html": prefix + "quality.html"}
    assert latest_quality_report(world.backends.store.s3, bucket, "breast-cancer") == outcome.report
    page = world.backends.store.s3.get_object(Bucket=bucket, Key=prefix.removeprefix(f"s3://{bucket}/") + "quality.html")
    text = page["Body"].read().decode()
    assert page["ContentType"].startswith("text/html")
    assert "estimated (CBPE)" in text
    assert "calibration curve of version 1" in text
    assert "<script" not in text


def test_a_breach_alerts_once_per_window_with_kind_quality_and_starts_retraining_once(
    world: World, trained_models: dict[str, TrainedModel], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "default_dependencies", lambda: world.deps)
    _traffic(world, trained_models["breast-cancer"], rows=300, flip_every=3, seed=2)  # a third of the labels disagree
    event = {"detail-type": "Scheduled Event", "time": "2026-12-07T12:00:30Z", "detail": {"model": "breast-cancer"}}
    summary = app.lambda_handler(event, app_context())
    assert summary["status"] == "breach"
    assert summary["alerted"] is True
    (v1,) = summary["versions"]
    assert v1["realized"]["accuracy"] < 0.75
    assert v1["breaches"][0]["metric"] == "accuracy"
    (envelope,) = world.messages()
    assert envelope["MessageAttributes"]["kind"] == {"Type": "String", "Value": "quality"}
    assert envelope["MessageAttributes"]["severity"] == {"Type": "String", "Value": "critical"}
    assert envelope["Subject"].startswith("Quality: breast-cancer v1: accuracy")
    body = json.loads(envelope["Message"])
    assert body["kind"] == "quality"
    assert body["breaches"][0]["rule"] == "floor"
    stdout = capsys.readouterr().out
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]
    realized = [r for r in records if "RealizedMetric" in r and r["metric"] == "accuracy"]
    assert realized[0]["RealizedMetric"] == pytest.approx(v1["realized"]["accuracy"])
    assert realized[0]["EstimatedMetric"] > 0.9  # the probabilities still think all is well: concept shift
    assert realized[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["model", "version", "metric", "service"],
        ["model", "metric", "service"],
    ]
    assert (realized[0]["model"], realized[0]["version"]) == ("breast-cancer", "1")

    again = app.handle(event, world.deps)  # the schedule retried: same window, no second alert or execution
    assert again.alert is not None
    assert again.alert.sent is False
    assert world.messages() == []
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    (execution,) = sfn.list_executions(stateMachineArn=world.machine)["executions"]
    assert execution["name"] == "breast-cancer-quality-20261207T1200"
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["trigger"] == "quality"
    assert started["reason"].startswith("quality breach: v1 accuracy")
    result = again.result
    assert result.versions[0].estimate_reliable is False
    assert any("concept shift" in note for note in result.versions[0].notes)


def test_a_window_without_labels_is_insufficient_and_events_are_validated(world: World, trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["breast-cancer"]
    records = records_for(trained, fresh_sample("breast-cancer", 20, seed=3), when=MADE)
    s3, bucket = world.backends.store.s3, world.backends.store.bucket
    s3.put_object(Bucket=bucket, Key=capture_key("breast-cancer", MADE, "old"), Body=encode_records(records))  # no ids
    outcome = app.handle({"model": "breast-cancer", "end": "2026-12-07T12:00:00Z", "window": "3d"}, world.deps)
    assert outcome.result.status == "insufficient_labels"
    assert outcome.result.join["predictions_without_id"] == 20
    assert outcome.result.versions[0].estimated["accuracy"] is not None  # estimated before any label
    assert outcome.alert is None
    with pytest.raises(InvalidInputError, match="window: expected a positive duration"):
        parse_event({"model": "breast-cancer", "window": "a week"})
    with pytest.raises(InvalidInputError, match="end: give either time"):
        parse_event({"model": "breast-cancer", "time": "2026-12-07T12:00:00Z", "end": "2026-12-07T12:00:00Z"})


def app_context() -> Any:
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:quality-check"
    return LambdaContext(function_name="quality-check", aws_request_id="req-1", invoked_function_arn=arn)


def test_an_invalid_quality_section_on_a_version_is_an_error_naming_it(backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    from serverless_mlops.errors import DataError
    from serverless_mlops.quality.service import run_quality_check

    version = register_run(_with_quality(trained_models["wine"], {"window": "a week"}), backends, by="quality-test")
    backends.registry.promote("wine", version.version, by="quality-test")
    expected = r"^model 'wine' version 1: invalid quality section: quality\.window: expected a positive duration such as '30m'"
    with pytest.raises(DataError, match=expected + r", '12h' or '7d', got 'a week'$"):
        run_quality_check("wine", backends, end=END)
