"""Alert dedupe and retraining edge cases (on moto's S3), and reading windows of many capture objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from serverless_mlops.drift import capture_reader
from serverless_mlops.drift.alerts import alert_key, alert_message, send_alert_once
from serverless_mlops.drift.result import DriftResult, FeatureResult, Histogram, Quality, Window
from serverless_mlops.drift.service import make_window, run_check
from serverless_mlops.errors import DataError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.spec import Drift
from serverless_mlops.retraining.control import start_for_drift as start_retraining
from serverless_mlops.store.capture_format import capture_key, encode_records, timestamp
from serverless_mlops.store.lifecycle import Backends, register_run

WINDOW = Window(start="2026-11-25T11:00:00.000Z", end="2026-11-25T12:00:00.000Z", label="20261125T1100Z-20261125T1200Z")


def feature(name: str, verdict: str) -> FeatureResult:
    histogram = Histogram(kind="numeric", labels=[], reference=[], current=[])
    return FeatureResult(
        name=name, kind="numeric", verdict=verdict, test="wasserstein_norm", statistic=0.3 if verdict == "drift" else 0.01, threshold=0.1,
        reference_rows=100, current_rows=500, quality=Quality(), histogram=histogram,
    )  # fmt: skip


# 13 checked features of which 7 drifted: share 7/13 = 0.54, at or above the default drift_share 0.5, so the data set drifts
FEATURES = [
    feature("calm0", "no_drift"),
    *(feature(f"f{i}", "drift") for i in range(7)),
    *(feature(f"calm{i}", "no_drift") for i in range(1, 6)),
]


def result(window: Window | None = WINDOW, features: list[FeatureResult] = FEATURES) -> DriftResult:
    """A drift result whose counts, share and verdict follow from its features, as the drift check computes them."""
    config = Drift()
    drifted = sum(f.verdict == "drift" for f in features)
    checked = sum(f.verdict != "insufficient_data" for f in features)
    share = drifted / checked if checked else 0.0
    rows = 500
    dataset_drift = rows >= config.min_rows and checked > 0 and share >= config.drift_share
    return DriftResult(
        model="wine",
        version=3,
        window=window,
        generated_at="now",
        status="drift" if dataset_drift else "no_drift",
        dataset_drift=dataset_drift,
        rows=rows,
        min_rows=config.min_rows,
        method="distances",
        correction="none",
        p_value=config.p_value,
        distance_threshold=config.distance_threshold,
        drift_share=config.drift_share,
        drifted_features=drifted,
        checked_features=checked,
        drifted_share=share,
        features=features,
        prediction=None,
        data_quality=[],
    )


def test_the_fixture_is_a_drift_by_its_own_numbers() -> None:
    drifted = result()
    assert (drifted.drifted_features, drifted.checked_features) == (7, 13)
    assert drifted.dataset_drift
    assert drifted.drifted_share >= drifted.drift_share
    assert drifted.status == "drift"


def test_the_alert_names_what_the_result_holds() -> None:
    drifted = result()
    names = [f.name for f in FEATURES if f.verdict == "drift"]
    subject, body = alert_message(drifted, "s3://b/r.json")
    assert subject == f"Drift: wine v3, {len(names)}/{len(FEATURES)} features"
    assert [f["feature"] for f in body["drifted_features"]] == names
    assert body["drifted_share"] == round(len(names) / len(FEATURES), 4)
    assert body["drift_share_threshold"] == Drift().drift_share
    assert body["severity"] == ("critical" if len(names) / len(FEATURES) >= 0.75 else "warning")


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
    features = [feature("calm", "no_drift"), *(feature(f"f{i}", "drift") for i in range(6)), feature("quiet", "no_drift")]
    sfn = RecordingSfn()
    start_retraining(sfn, "arn:machine", result(features=features), "r")
    reason = json.loads(sfn.started[0]["input"])["reason"]
    drifted = [f.name for f in features if f.verdict == "drift"]
    share, threshold = len(drifted) / len(features), Drift().drift_share
    assert share >= threshold  # 6 of 8: a drift, so a retraining starts
    expected = f"dataset drift: {len(drifted)} of {len(features)} features drifted (share {share:.2f} >= {threshold}): "
    assert reason == expected + f"{', '.join(drifted[:3])} and {len(drifted) - 3} more"
    assert reason == "dataset drift: 6 of 8 features drifted (share 0.75 >= 0.5): f0, f1, f2 and 3 more"


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
