"""The quality check's edges: calibration corner cases, drops against the training holdout, the report's pages
without labels or history, EMF records, alert dedupe and a failed publish (with a stub S3 and SNS), bad rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from functions.quality_check.app import emf_records
from serverless_mlops.drift.result import Window
from serverless_mlops.errors import MlopsError
from serverless_mlops.model import calibration
from serverless_mlops.model.calibration import MAX_POINTS, calibrate, fit_calibration
from serverless_mlops.model.quality_spec import Quality
from serverless_mlops.quality.alerts import quality_alert_key, send_quality_alert_once
from serverless_mlops.quality.check import check_quality, check_version, overall
from serverless_mlops.quality.join import Joiner
from serverless_mlops.quality.joined import JoinCounts, Joined, Labelled, VersionRows
from serverless_mlops.quality.labels import Label
from serverless_mlops.quality.report import _history, to_html
from serverless_mlops.quality.result import QualityResult
from serverless_mlops.store.capture_format import CaptureFormatError, timestamp

WINDOW = Window(start="2026-12-01T00:00:00.000Z", end="2026-12-08T00:00:00.000Z", label="20261201T0000Z-20261208T0000Z")


def test_calibration_keeps_a_class_without_both_outcomes_raw_thins_long_curves_and_refuses_mismatches() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((5_000, 3))
    scores /= scores.sum(axis=1, keepdims=True)
    truth = np.where(rng.random(5_000) < 0.5, "a", "b")  # class "c" never happens: nothing to fit
    found = fit_calibration(truth, scores, ["a", "b", "c"])
    assert found["curves"][2] == {"x": [0.0, 1.0], "y": [0.0, 1.0]}
    assert all(len(curve["x"]) <= MAX_POINTS for curve in found["curves"])
    mapped = calibrate(found, scores)
    assert np.allclose(mapped.sum(axis=1), 1.0)
    zero = {"method": "isotonic_ovr", "curves": [{"x": [0.0, 1.0], "y": [0.0, 0.0]}] * 3}
    assert np.allclose(calibrate(zero, scores), scores)  # every curve maps a row to 0: its raw probabilities stay
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(calibration, "MAX_POINTS", 3)
        thinned = fit_calibration(truth, scores, ["a", "b", "c"])
    assert [len(curve["x"]) for curve in thinned["curves"][:2]] == [3, 3]  # evenly spaced knots, the ends kept
    assert thinned["curves"][0]["x"][0] == found["curves"][0]["x"][0]
    with pytest.raises(ValueError, match="unknown calibration method 'platt'"):
        calibrate({"method": "platt", "curves": []}, scores)
    with pytest.raises(ValueError, match="calibration has 3 classes, the probabilities 2"):
        calibrate(found, scores[:, :2])


def _rows(version: int, truth: list[Any], predicted: list[Any], probabilities: list[list[float]] | None) -> VersionRows:
    raw = [np.array(probabilities, dtype=np.float64)] if probabilities else []
    codes = [np.array([int(p) for p in predicted], dtype=np.int64)] if probabilities else []
    labelled = Labelled(truth=truth, predicted=predicted, probabilities=[np.array(p) for p in probabilities or []])
    return VersionRows(version=version, predictions=len(truth), codes=codes, probabilities=raw, labelled=labelled)


def test_a_drop_against_the_training_holdout_is_a_breach_and_errors_count_upwards() -> None:
    rows = _rows(4, ["1", "0", "1", "1"], ["1", "0", "0", "1"], None)
    config = Quality(min_labels=4, max_drop={"accuracy": 0.1, "log_loss": 0.2})
    found = check_version(rows, classes=[0, 1], calibration=None, holdout={"accuracy": 0.9}, config=config)
    (breach,) = found.breaches
    assert (breach.metric, breach.rule, breach.value, breach.holdout) == ("accuracy", "max_drop", 0.75, 0.9)
    assert breach.threshold == pytest.approx(0.8)
    regression = VersionRows(version=1, predictions=3, labelled=Labelled(truth=[1.0, 2.0, 3.0], predicted=[2.0, 3.0, 4.0]))
    config = Quality(min_labels=3, max_drop={"rmse": 0.5}, floors={"bias": 0.5})
    found = check_version(regression, classes=None, calibration=None, holdout={"rmse": 0.4}, config=config)
    assert sorted((b.metric, b.rule) for b in found.breaches) == [("bias", "floor"), ("rmse", "max_drop")]
    assert overall([]) == "no_predictions"


def test_a_task_mismatch_in_the_spec_is_refused_when_the_check_runs() -> None:
    joined = Joined({}, JoinCounts(), [], [], "none")
    with pytest.raises(MlopsError, match=r"quality\.floors\.accuracy: a regressor has no such metric"):
        check_quality(
            joined, model="m", task="regression", window=WINDOW, generated_at="now", config=Quality(floors={"accuracy": 0.9}),
            classes=None, calibrations={}, holdouts={},
        )  # fmt: skip


def _result(*versions: VersionRows, classes: list[Any] | None = None, calibration: dict[str, Any] | None = None) -> QualityResult:
    joined = Joined({v.version: v for v in versions}, JoinCounts(labels=3, joined=3), ["s3://b/k"], [], "captured")
    return check_quality(
        joined, model="m", task="binary_classification", window=WINDOW, generated_at="2026-12-08T00:00:00.000Z",
        config=Quality(min_labels=1, floors={"accuracy": 0.9}), classes=classes, calibrations={v.version: calibration for v in versions},
        holdouts={},
    )  # fmt: skip


def test_the_report_page_without_labels_or_history_and_with_a_time_series() -> None:
    identity = {"method": "isotonic_ovr", "curves": [{"x": [0.0, 1.0], "y": [0.0, 1.0]}] * 2}
    unlabelled = VersionRows(version=2, predictions=2, codes=[np.array([0, 1])], probabilities=[np.array([[0.9, 0.1], [0.2, 0.8]])])
    labelled = _rows(1, ["1", "0", "1"], ["1", "0", "0"], [[0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    result = _result(labelled, unlabelled, classes=[0, 1], calibration=identity)
    page = to_html(result).decode()
    assert "no labelled rows; estimated: accuracy 0.8500" in page
    assert "No earlier reports." in page
    assert "calibration curve of version 1" in page
    assert "crossed its floor 0.9000" in page
    earlier = json.loads(result.model_dump_json())
    earlier["window"] = {**earlier["window"], "end": "2026-12-01T00:00:00.000Z"}
    series = to_html(result, [earlier, json.loads(result.model_dump_json())]).decode()
    assert "accuracy per window end, 2 report(s) (2026-12-01T00:00:00.000Z … 2026-12-08T00:00:00.000Z)" in series
    assert "v1 realized" in series
    assert "v2 estimated" in series
    empty = to_html(result, [{"window": WINDOW.model_dump(), "versions": []}]).decode()
    assert "No earlier reports." in empty


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


class _ClientError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class _S3:
    """What the report and the alert use of S3: list, get, a conditional put, delete."""

    class exceptions:
        ClientError = _ClientError

    def __init__(self, objects: dict[str, bytes] | None = None, fail: str | None = None) -> None:
        self.objects = dict(objects or {})
        self.fail = fail

    def get_paginator(self, _operation: str) -> _S3:
        return self

    def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        return [{"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)]}]

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": _Body(self.objects[Key])}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, IfNoneMatch: str | None = None, **_: Any) -> None:
        if self.fail:
            raise _ClientError(self.fail)
        if IfNoneMatch == "*" and Key in self.objects:
            raise _ClientError("PreconditionFailed")
        self.objects[Key] = Body

    def delete_object(self, *, Bucket: str, Key: str) -> None:
        del self.objects[Key]


class _FailingSns:
    def publish(self, **_: Any) -> dict[str, str]:
        raise RuntimeError("SNS is down")


def test_the_history_skips_an_unreadable_report() -> None:
    prefix = "reports/m/quality/"
    s3 = _S3({f"{prefix}a/quality.json": b"{not json", f"{prefix}b/quality.json": json.dumps({"window": {"end": "x"}}).encode()})
    current = {"window": {"label": "c", "end": "y"}}
    assert _history(s3, "bucket", "m", current) == [{"window": {"end": "x"}}, current]


def test_a_failed_publish_removes_the_marker_so_a_retry_can_alert_and_other_s3_errors_propagate() -> None:
    result = _result(_rows(1, ["1", "0"], ["0", "1"], None), classes=[0, 1])
    s3 = _S3()
    with pytest.raises(RuntimeError, match="SNS is down"):
        send_quality_alert_once(s3, "bucket", _FailingSns(), "arn:topic", result, "s3://bucket/report")
    assert quality_alert_key("m", WINDOW.label) not in s3.objects
    with pytest.raises(_ClientError):
        send_quality_alert_once(_S3(fail="AccessDenied"), "bucket", _FailingSns(), "arn:topic", result, "s3://bucket/report")


def test_emf_records_carry_both_dimension_sets_and_skip_missing_values() -> None:
    result = _result(_rows(1, ["1", "0"], ["1", "0"], None), classes=[0, 1])  # no probabilities: roc_auc etc. are null
    records = emf_records(result)
    coverage, *metrics = records
    assert coverage["LabelCoverage"] == 1.0
    assert coverage["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "version", "service"], ["model", "service"]]
    assert {r["metric"] for r in metrics} == {"accuracy", "f1"}  # log_loss, roc_auc, ece: null, so not emitted
    assert all("EstimatedMetric" not in r for r in metrics)


def test_bad_rows_and_rows_without_features_are_errors_naming_the_problem() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    joiner = Joiner(
        {},
        start=start,
        end=start + timedelta(days=1),
        label_delay=timedelta(days=1),
        classes=[0, 1],
        scorer=lambda v, r: np.zeros((len(r), 2)),
    )
    with pytest.raises(CaptureFormatError, match="capture rows"):
        joiner.add_rows([{"ts": timestamp(start), "version": "one", "prediction": 1}])
    with pytest.raises(MlopsError, match="no features to recompute its probabilities from"):
        joiner.add_rows([{"ts": timestamp(start), "version": 1, "prediction": 1}])
    # a captured label outside the classes: its code is the most probable class's
    odd = Joiner({"a": Label("a", 1)}, start=start, end=start + timedelta(days=1), label_delay=timedelta(days=1), classes=[0, 1])
    odd.add_rows([{"ts": timestamp(start), "version": 1, "prediction": 7, "id": "a", "probabilities": [0.2, 0.8]}])
    assert odd.result().versions[1].all_codes().tolist() == [1]


def test_served_labels_of_any_json_type_find_their_class_and_ragged_probabilities_are_not_used() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    when = timestamp(start)
    joiner = Joiner({}, start=start, end=start + timedelta(days=1), label_delay=timedelta(days=1), classes=[0, 1, 2])
    rows = [
        {"ts": when, "version": 1, "prediction": 1.0, "probabilities": [0.1, 0.8, 0.1]},  # a float that is a whole number
        {"ts": when, "version": 1, "prediction": "2", "probabilities": [0.1, 0.1, 0.8]},
        {"ts": when, "version": 1, "prediction": [0], "probabilities": [0.8, 0.1, 0.1]},  # not a class: the most probable
    ]
    joiner.add_rows(rows)
    assert joiner.result().versions[1].all_codes().tolist() == [1, 2, 0]
    ragged = Joiner({}, start=start, end=start + timedelta(days=1), label_delay=timedelta(days=1), classes=[0, 1, 2])
    ragged.add_rows([{"ts": when, "version": 1, "prediction": 1, "probabilities": [0.2, 0.8]}, rows[0]])
    assert ragged.result().probabilities == "none"  # two values for three classes: no probabilities, no scorer
    assert ragged.result().versions[1].predictions == 2


def test_a_duplicate_id_across_capture_objects_keeps_the_latest_row() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    joiner = Joiner({"a": Label("a", 1)}, start=start, end=start + timedelta(days=1), label_delay=timedelta(days=1), classes=None)
    later, earlier = timestamp(start + timedelta(hours=2)), timestamp(start + timedelta(hours=1))
    joiner.add_rows(
        [{"ts": later, "version": 1, "prediction": 2.0, "id": "a"}, {"ts": earlier, "version": 1, "prediction": 9.0, "id": "a"}]
    )
    joiner.add_rows([{"ts": earlier, "version": 1, "prediction": 5.0, "id": "a"}])  # another object, an older row
    joined = joiner.result()
    assert joined.counts.duplicate_predictions == 2
    assert joined.versions[1].labelled.predicted == [2.0]


def test_the_functions_dependencies_come_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.quality_check import app

    monkeypatch.setenv("MLOPS_ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:alerts")
    monkeypatch.setenv("MLOPS_RETRAIN_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:retraining")
    app.default_dependencies.cache_clear()
    try:
        deps = app.default_dependencies()
        assert deps.notifier.topic_arn == "arn:aws:sns:us-east-1:123456789012:alerts"
        assert deps.notifier.sns is not None
        assert deps.notifier.retrain is not None
    finally:
        app.default_dependencies.cache_clear()
