"""The console's reads and charts at their edges (moto, in-process): what is absent, unreadable or odd is said, not
guessed; batch reads ask again for what DynamoDB left unprocessed."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from serverless_mlops.errors import MlopsError, RegistryError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.store import dynamodb_registry
from serverless_mlops.store.dynamodb_registry import DynamoDBRegistry
from serverless_mlops.store.lifecycle import Backends, lineage_of, register_record, register_run
from serverless_mlops.store.registry import PRODUCTION
from serverless_mlops.ui import charts
from serverless_mlops.ui.data import ConsoleData
from serverless_mlops.ui.server import ConsoleServer, bind
from serverless_mlops.ui.views import Execution, FeatureProfile, Point, Report, key_metric, model_of_execution, release_fields

DENIED = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "Operation")


@pytest.fixture
def wine(backends: Backends, trained_models: dict[str, TrainedModel]) -> Backends:
    version = register_run(trained_models["wine"], backends, by="test")
    backends.registry.promote("wine", version.version, by="test")
    return backends


def test_key_metric_and_release_fields(wine: Backends) -> None:
    entry = wine.registry.describe("wine", 1)
    assert key_metric(None) is None
    assert key_metric(entry.model_copy(update={"metrics": {}})) is None
    assert key_metric(entry) == ("f1", entry.metrics["f1"])  # the spec's evaluation metric
    first = next(iter(entry.metrics))
    assert key_metric(entry.model_copy(update={"spec": {}})) == (first, entry.metrics[first])
    assert release_fields(wine.registry.get_alias("wine", PRODUCTION)) == (None, None)
    # the registry's weight is a percent; the pages get a share
    found = release_fields(SimpleNamespace(canary={"version": 2, "weight": 50.0}, shadow=3))  # type: ignore[arg-type]
    assert found == ({"version": 2, "weight": 0.5}, {"value": 3})


def test_executions_belong_to_the_longest_model_name_they_start_with() -> None:
    assert model_of_execution("fraud-eu-manual-20261207T0000Z", ["fraud", "fraud-eu"]) == "fraud-eu"
    assert model_of_execution("fraud-drift-20261207T0000Z", ["fraud", "fraud-eu"]) == "fraud"
    assert model_of_execution("other-manual-x", ["fraud"]) is None


def test_odd_keys_unreadable_reports_and_documents_that_are_not_objects(wine: Backends) -> None:
    s3, bucket = wine.store.s3, wine.store.bucket
    for key, body in {
        "reports/wine/odd.json": b"{}",
        "reports/wine/v1/w/other.json": b"{}",
        "reports/wine/vx/w/report.json": b"{}",
        "reports/wine/v1/20261201T0000Z-20261201T0600Z/report.json": b"not json",
        "reports/wine/v1/20261202T0000Z-20261202T0600Z/report.json": b"[1, 2]",
    }.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    data = ConsoleData(wine)
    listed = data.reports("wine")
    assert [(r.kind, r.version, r.window) for r in listed] == [
        ("drift", 1, "20261201T0000Z-20261201T0600Z"),
        ("drift", 1, "20261202T0000Z-20261202T0600Z"),
    ]
    assert [data.document(r) for r in listed] == [None, None]
    assert data.document(Report("drift", "w", "reports/wine/v9/w/report.json")) is None  # no such key
    (row,) = data.overview().rows
    assert (row.drift.word, row.drift.tone) == ("unreadable", "warn")  # the newest report cannot be read: no verdict invented
    detail = data.model("wine")
    assert [(p.value, p.tone) for p in detail.drift] == [(None, "warn"), (None, "warn")]
    assert detail.quality_metric is None


def test_a_report_without_an_etag_is_read_each_time(wine: Backends) -> None:
    key = "reports/wine/v1/w/report.json"
    wine.store.s3.put_object(Bucket=wine.store.bucket, Key=key, Body=json.dumps({"status": "no_drift"}).encode())
    data = ConsoleData(wine)
    assert data.document(Report("drift", "w", key, 1)) == {"status": "no_drift"}
    wine.store.s3.put_object(Bucket=wine.store.bucket, Key=key, Body=json.dumps({"status": "drift"}).encode())
    assert data.document(Report("drift", "w", key, 1)) == {"status": "drift"}


def test_quality_windows_without_the_metric_chart_no_value(wine: Backends) -> None:
    document = {"status": "insufficient_labels", "versions": [{"version": 1, "labelled": 0, "realized": {"accuracy": None}}]}
    labelled = {"status": "ok", "versions": [{"version": 1, "labelled": 9, "realized": {"accuracy": 0.9}}]}
    for window, body in (("20261201T0000Z-20261202T0000Z", document), ("20261202T0000Z-20261203T0000Z", labelled)):
        key = f"reports/wine/quality/{window}/quality.json"
        wine.store.s3.put_object(Bucket=wine.store.bucket, Key=key, Body=json.dumps(body).encode())
    detail = ConsoleData(wine).model("wine")
    assert detail.quality_metric == "accuracy"  # f1 (the key metric) is not among the realized ones
    assert [(p.value, p.tone) for p in detail.quality] == [(None, "warn"), (0.9, "ok")]


class Failing:
    """A Step Functions client whose listing or history fails."""

    def __init__(self, listing: bool) -> None:
        self.listing = listing

    def list_executions(self, **_: Any) -> dict[str, Any]:
        if self.listing:
            raise DENIED
        from datetime import UTC, datetime

        when = datetime(2026, 12, 7, tzinfo=UTC)
        return {"executions": [{"name": "wine-manual-1", "status": "RUNNING", "startDate": when, "executionArn": "arn:x"}]}

    def get_execution_history(self, **_: Any) -> dict[str, Any]:
        raise DENIED


def test_failing_aws_calls_are_said_on_the_page(wine: Backends, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ConsoleData(wine, sfn=Failing(listing=True), retraining_arn="arn:machine")
    overview = data.overview()
    assert overview.retraining_note.startswith("cannot list executions of arn:machine: An error occurred (AccessDenied)")
    data = ConsoleData(wine, sfn=Failing(listing=False), retraining_arn="arn:machine")
    (run,) = data.model("wine").retraining
    assert (run.name, run.status, run.stopped, run.path) == ("wine-manual-1", "RUNNING", "", [])
    assert data.trace(Execution("x", "RUNNING", "", "", arn="arn:x")).path == []

    def refuse(model: str) -> list[Report]:
        raise DENIED

    monkeypatch.setattr(data, "reports", refuse)
    (row,) = data.overview().rows
    assert (row.drift.word, row.quality.word) == ("unreadable", "unreadable")


def test_an_unreadable_profile_is_said_and_the_curl_line_falls_back_to_the_signature(
    wine: Backends, trained_models: dict[str, TrainedModel]
) -> None:
    trained = trained_models["wine"]
    artifact = wine.store.put("wine", trained.onnx_bytes, "model.onnx")
    garbage = wine.store.put("wine", b"not a gzip profile", "profile.json.gz")
    record = trained.record
    features = list(record.signature.features)
    features[0] = features[0].model_copy(update={"range": (0.0, 2.0)})
    features[1] = features[1].model_copy(update={"range": None})
    features[2] = features[2].model_copy(update={"kind": "categorical", "categories": ["a", "b"]})
    record = record.model_copy(update={"signature": record.signature.model_copy(update={"features": features})})
    entry = register_record(wine, record, artifact, garbage, by="test", lineage=lineage_of(record, run_id="bad-profile"))
    detail = ConsoleData(wine).version("wine", entry.version)
    assert detail.profile_note.startswith("the baseline profile cannot be read")
    assert detail.features == []
    body = json.loads(detail.curl.split(" -d ", 1)[1].strip("'"))
    row = body["instances"][0]
    assert row[features[0].name] == 1.0
    assert row[features[1].name] == 0.0
    assert row[features[2].name] == "a"
    assert detail.curl.startswith("curl -s https://API_URL/v1/models/wine/predict")


def test_charts_at_their_edges() -> None:
    assert charts.bars([], label="x", y_title="y") == ""
    drawn = charts.bars([Point("w1", None, "none"), Point("w2", 40.0, "ok"), Point("w3", 0.0, "bad")], label="rmse", y_title="rmse")
    assert "w1: no value" in drawn
    assert "w2: 40" in drawn
    assert "w: 1.00e+05" in charts.bars([Point("w", 1e5, "ok")], label="x", y_title="y")  # large values in scientific notation
    assert ">44<" in drawn  # the axis tops out 10% above the largest value
    flat = charts.bars([Point("w", 0.5, "ok")], label="x", y_title="y", top=0.0)
    assert 'height="1.0"' in flat  # no scale: a bar of one pixel
    assert "<script" not in charts.bars([Point("<script>", 0.5, "ok")], label="<script>", y_title="<script>")
    categorical = FeatureProfile("colour", "categorical", [], [], [("red", 0.75), ("blue", 0.25)], {})
    assert "red: 0.75" in charts.histogram(categorical)
    assert "share of rows" in charts.histogram(categorical)
    empty = FeatureProfile("<b>x</b>", "numeric", [], [], [], {})
    assert charts.histogram(empty) == '<p class="muted">no histogram for &lt;b&gt;x&lt;/b&gt; (no values in the training data)</p>'


def test_batch_reads_ask_again_for_unprocessed_keys(wine: Backends, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = wine.registry
    assert isinstance(registry, DynamoDBRegistry)
    real = registry.db
    monkeypatch.setattr(dynamodb_registry.time, "sleep", lambda _: None)

    class Throttled:
        def __init__(self, times: int) -> None:
            self.times = times

        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            if self.times:
                self.times -= 1
                return {"Responses": {}, "UnprocessedKeys": RequestItems}
            return dict(real.batch_get_item(RequestItems=RequestItems))

    expected = {("wine", 1): registry.describe("wine", 1)}
    monkeypatch.setattr(registry, "db", Throttled(2))
    assert registry.describe_many([("wine", 1), ("wine", 1), ("wine", 7)]) == expected  # asked twice, absent left out
    monkeypatch.setattr(registry, "db", Throttled(8))
    with pytest.raises(RegistryError, match="left keys unprocessed after 8 attempts"):
        registry.aliases_of(["wine"])


def test_a_server_that_cannot_start_says_so(wine: Backends) -> None:
    sock = bind("127.0.0.1", 0)
    server = ConsoleServer(object(), sock)
    sock.close()  # uvicorn fails at once on a closed socket
    with pytest.raises(MlopsError, match=r"the console did not start on http://127\.0\.0\.1:\d+: \[Errno 9\]"):
        server.start(timeout=5)
    ConsoleServer(object(), bind("127.0.0.1", 0)).stop()  # never started: nothing to join


def test_dataclass_reports_keep_their_html_beside_the_json() -> None:
    report = Report("quality", "w", "reports/m/quality/w/quality.json")
    assert report.html_key == "reports/m/quality/w/quality.html"
    assert dataclasses.replace(report, kind="drift", key="reports/m/v1/w/report.json").html_key == "reports/m/v1/w/report.html"
