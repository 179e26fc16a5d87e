"""Alert dedupe and retraining edge cases (on moto's S3), and reading windows of many capture objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from serverless_mlops.capture import capture_key, encode_records, timestamp
from serverless_mlops.drift import capture_reader
from serverless_mlops.drift.alerts import alert_key, send_alert_once, start_retraining
from serverless_mlops.drift.check import DriftResult, FeatureResult, Histogram, Quality, Window
from serverless_mlops.drift.service import make_window, run_check
from serverless_mlops.errors import DataError
from serverless_mlops.lifecycle import Backends, register_run
from serverless_mlops.spec import Drift
from serverless_mlops.training import TrainedModel

WINDOW = Window(start="2026-11-25T11:00:00.000Z", end="2026-11-25T12:00:00.000Z", label="20261125T1100Z-20261125T1200Z")


def result(window: Window | None = WINDOW) -> DriftResult:
    config = Drift()
    return DriftResult(
        model="wine",
        version=3,
        window=window,
        generated_at="now",
        status="drift",
        dataset_drift=True,
        rows=500,
        min_rows=config.min_rows,
        method="distances",
        correction="none",
        p_value=config.p_value,
        distance_threshold=config.distance_threshold,
        drift_share=config.drift_share,
        drifted_features=6,
        checked_features=13,
        drifted_share=6 / 13,
        features=[],
        prediction=None,
        data_quality=[],
    )


class FailingSns:
    def __init__(self) -> None:
        self.calls = 0

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("SNS unreachable")
        return {"MessageId": "m-2"}


def test_a_failed_publish_leaves_no_record_so_the_retry_alerts(backends: Backends) -> None:
    s3, bucket, sns = backends.store.s3, backends.store.bucket, FailingSns()
    with pytest.raises(ConnectionError):
        send_alert_once(s3, bucket, sns, "arn:topic", result(), "s3://b/r.json")
    assert s3.list_objects_v2(Bucket=bucket, Prefix="alerts/").get("KeyCount", 0) == 0
    outcome = send_alert_once(s3, bucket, sns, "arn:topic", result(), "s3://b/r.json")
    assert (outcome.sent, outcome.message_id) == (True, "m-2")
    assert s3.head_object(Bucket=bucket, Key=alert_key("wine", WINDOW.label))["ContentLength"] > 0
    again = send_alert_once(s3, bucket, sns, "arn:topic", result(), "s3://b/r.json")
    assert again.sent is False
    assert sns.calls == 2


def test_other_storage_errors_are_not_mistaken_for_a_duplicate(backends: Backends) -> None:
    with pytest.raises(ClientError, match="NoSuchBucket"):
        send_alert_once(backends.store.s3, "no-such-bucket-here", FailingSns(), "arn:topic", result(), "s3://b/r.json")


def test_alerts_and_retraining_need_a_window() -> None:
    with pytest.raises(ValueError, match="needs a window"):
        send_alert_once(None, "b", None, "t", result(None), "r")
    with pytest.raises(ValueError, match="needs a window"):
        start_retraining(None, "arn", result(None), "r")


class ExistingExecutionSfn:
    class exceptions:
        class ExecutionAlreadyExists(Exception):
            pass

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        raise self.exceptions.ExecutionAlreadyExists(kwargs["name"])


def test_an_existing_execution_counts_as_started() -> None:
    arn = start_retraining(ExistingExecutionSfn(), "arn:aws:states:us-east-1:123456789012:stateMachine:retrain", result(), "r")
    assert arn == "arn:aws:states:us-east-1:123456789012:execution:retrain:wine-drift-20261125T1200"


class RecordingSfn:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        self.started.append(kwargs)
        return {"executionArn": f"arn:aws:states:us-east-1:123456789012:execution:retrain:{kwargs['name']}"}


def test_the_retraining_reason_names_the_first_three_drifted_features_and_counts_the_rest() -> None:
    def feature(name: str, verdict: str) -> FeatureResult:
        histogram = Histogram(kind="numeric", labels=[], reference=[], current=[])
        return FeatureResult(
            name=name, kind="numeric", verdict=verdict, test="ks", statistic=0.0, threshold=0.05,
            reference_rows=100, current_rows=100, quality=Quality(), histogram=histogram,
        )  # fmt: skip

    drifted = [feature(f"f{i}", "drift") for i in range(6)]
    sfn = RecordingSfn()
    start_retraining(sfn, "arn:machine", result().model_copy(update={"features": [feature("calm", "no_drift"), *drifted]}), "r")
    reason = json.loads(sfn.started[0]["input"])["reason"]
    assert reason == "dataset drift: 6 of 13 features drifted (share 0.46 >= 0.5): f0, f1, f2 and 3 more"


def test_a_window_of_many_objects_is_read_in_key_order(
    backends: Backends, trained_models: dict[str, TrainedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_reader, "FETCH_THREADS", 2)
    version = register_run(trained_models["wine"], backends, by="t")
    backends.registry.promote("wine", version.version, by="t")
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    s3, bucket = backends.store.s3, backends.store.bucket
    signature = trained_models["wine"].record.signature
    for i in range(12):  # over three hours
        when = start + timedelta(minutes=15 * i)
        rows = [
            {"ts": timestamp(when), "model": "wine", "version": 1, "features": dict.fromkeys(signature.feature_names, 1.0), "prediction": 0}
        ] * 10
        s3.put_object(Bucket=bucket, Key=capture_key("wine", when, f"{i:02d}"), Body=encode_records(rows))
    outcome = run_check("wine", backends, start=start, end=start + timedelta(hours=3), write=False)
    assert outcome.result.rows == 120
    assert outcome.result.sources == 12
    assert outcome.report is None
    default = run_check("wine", backends, end=start + timedelta(hours=1, seconds=30), write=False)  # the spec: 6 hours
    assert default.result.window is not None
    assert default.result.window.start == "2026-11-25T04:00:00.000Z"
    assert default.result.rows == 40


def test_a_window_must_end_after_it_starts() -> None:
    moment = datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(DataError, match="must end after it starts"):
        make_window(moment, moment)


def test_reports_can_be_encrypted_with_a_kms_key(backends: Backends) -> None:
    import boto3

    from serverless_mlops.drift.report import write_report

    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    uris = write_report(backends.store.s3, backends.store.bucket, result(), kms_key_id=key)
    head = backends.store.s3.head_object(Bucket=backends.store.bucket, Key=uris["html"].split("/", 3)[3])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key)


def test_the_alert_marker_is_encrypted_with_the_kms_key_too(backends: Backends) -> None:
    import boto3

    from serverless_mlops.drift.alerts import alert_key

    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    sns = boto3.client("sns", region_name="us-east-1")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    drifted = result()
    assert send_alert_once(backends.store.s3, backends.store.bucket, sns, topic, drifted, "s3://b/r.json", kms_key_id=key).sent
    assert drifted.window is not None
    head = backends.store.s3.head_object(Bucket=backends.store.bucket, Key=alert_key(drifted.model, drifted.window.label))
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key)
