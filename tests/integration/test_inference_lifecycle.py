"""The inference handler over time on moto: model selection and refresh, tampered artifacts, cold failures, capture.

Each test gets a fresh moto account (the ``backends`` fixture) and an endpoint whose clock only the test moves.
"""

from __future__ import annotations

from typing import Any

import pytest

from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.store.capture_format import decode_records
from serverless_mlops.store.lifecycle import Backends
from serverless_mlops.store.registry import version_item
from tests.helpers.events import emf_records
from tests.helpers.inference import Clock, call, endpoint, handler_for, records, register

BC = "/v1/models/breast-cancer/predict"
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def served(backends: Backends, trained_models: dict[str, TrainedModel]) -> Backends:
    """breast-cancer, wine and diabetes registered as version 1 and promoted to production."""
    for name, trained in trained_models.items():
        register(backends, trained, f"{name}-1", promote=True)
    return backends


def test_version_and_alias_pick_the_model(served: Backends, clock: Clock, trained_models: dict[str, TrainedModel]) -> None:
    register(served, trained_models["breast-cancer"], "breast-cancer-2")
    served.registry.set_alias("breast-cancer", "staging", 2, by="tests")
    handler = handler_for(endpoint(served, clock))
    body = {"instances": records("breast-cancer", 1)}
    assert call(handler, "POST", BC, body)[1]["version"] == 1
    assert call(handler, "POST", BC, body, query={"version": "2"})[1]["version"] == 2
    assert call(handler, "POST", BC, body, query={"alias": "staging"})[1]["version"] == 2
    assert call(handler, "POST", BC, body, query={"alias": "production"})[1]["version"] == 1
    status, error, _ = call(handler, "POST", BC, body, query={"version": "2", "alias": "staging"})
    assert (status, error["error"]) == (422, "invalid_request")
    assert error["details"][0]["field"] == "alias"
    status, error, _ = call(handler, "POST", BC, body, query={"alias": "bad alias!"})
    assert (status, error["error"], error["details"][0]["field"]) == (422, "invalid_request", "alias")
    status, error, _ = call(handler, "POST", BC, body, query={"version": "0"})
    assert (status, error["details"][0]["field"]) == (422, "version")


def test_promotion_and_rollback_are_picked_up_after_the_refresh_interval(
    served: Backends, clock: Clock, trained_models: dict[str, TrainedModel]
) -> None:
    register(served, trained_models["breast-cancer"], "breast-cancer-2")
    handler = handler_for(endpoint(served, clock))
    body = {"instances": records("breast-cancer", 1)}
    assert call(handler, "POST", BC, body)[1]["version"] == 1
    served.registry.promote("breast-cancer", 2, by="tests")
    clock.now += 29
    assert call(handler, "POST", BC, body)[1]["version"] == 1  # within the interval: no registry call
    clock.now += 1
    assert call(handler, "POST", BC, body)[1]["version"] == 2
    served.registry.rollback("breast-cancer", by="tests")
    assert call(handler, "POST", BC, body)[1]["version"] == 2
    clock.now += 30
    assert call(handler, "POST", BC, body)[1]["version"] == 1


def _tampered_version(backends: Backends, trained: TrainedModel) -> int:
    """A version whose registry entry records the real sha256 but whose S3 object was overwritten since."""
    entry = register(backends, trained, "tampered")
    tampered = bytearray(trained.onnx_bytes)
    tampered[len(tampered) // 2] ^= 0xFF
    written = backends.store.s3.put_object(Bucket=entry.artifact.bucket, Key=entry.artifact.key, Body=bytes(tampered))
    artifact = entry.artifact.model_copy(update={"version_id": written["VersionId"]})
    backends.registry.db.put_item(TableName=backends.registry.table, Item=version_item(entry.model_copy(update={"artifact": artifact})))
    return entry.version


def test_a_tampered_artifact_never_loads_and_the_last_good_keeps_serving(
    served: Backends, clock: Clock, trained_models: dict[str, TrainedModel], capsys: pytest.CaptureFixture[str]
) -> None:
    ep = endpoint(served, clock)
    handler = handler_for(ep)
    body = {"instances": records("breast-cancer", 3)}
    first = call(handler, "POST", BC, body)[1]
    bad = _tampered_version(served, trained_models["breast-cancer"])
    served.registry.promote("breast-cancer", bad, by="tests")
    clock.now += 30
    capsys.readouterr()
    status, answer, _ = call(handler, "POST", BC, body)
    assert status == 200
    assert answer == first  # version 1 still serving
    assert bad not in [m.entry.version for m in ep.models.loaded()]
    emitted = emf_records(capsys.readouterr().out)
    failures = [e for e in emitted if "ModelLoadFailures" in e]
    assert len(failures) == 1
    assert failures[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    status, error, headers = call(handler, "POST", BC, body, query={"version": str(bad)})
    assert (status, error["error"]) == (503, "model_unavailable")
    assert headers["Retry-After"] == "30"


def test_nothing_loadable_on_a_cold_start_is_503_with_retry_after(
    served: Backends, clock: Clock, trained_models: dict[str, TrainedModel]
) -> None:
    bad = _tampered_version(served, trained_models["wine"])
    served.registry.promote("wine", bad, by="tests")
    handler = handler_for(endpoint(served, clock))
    status, error, headers = call(handler, "POST", "/v1/models/wine/predict", {"instances": records("wine", 1)})
    assert (status, error["error"]) == (503, "model_unavailable")
    assert headers["Retry-After"] == "30"
    clock.now += 12
    status, _, headers = call(handler, "POST", "/v1/models/wine/predict", {"instances": records("wine", 1)})
    assert (status, headers["Retry-After"]) == (503, "18")  # failing fast until the back-off ends
    status, error, _ = call(handler, "GET", "/v2/models/wine/ready")
    assert (status, error["error"]) == (503, "model_unavailable")


def test_an_unreachable_registry_on_a_cold_start_is_503(served: Backends, clock: Clock) -> None:
    broken = Backends(store=served.store, registry=type(served.registry)("no-such-table", served.registry.db))
    handler = handler_for(endpoint(broken, clock))
    status, error, headers = call(handler, "POST", BC, {"instances": records("breast-cancer", 1)})
    assert (status, error["error"], headers["Retry-After"]) == (503, "model_unavailable", "30")
    status, ready, _ = call(handler, "GET", "/v2/health/ready")
    assert (status, ready) == (503, {"ready": False})


def test_the_allow_list_limits_the_models_served(served: Backends, clock: Clock) -> None:
    handler = handler_for(endpoint(served, clock, MLOPS_MODELS="wine"))
    status, error, _ = call(handler, "POST", BC, {"instances": records("breast-cancer", 1)})
    assert (status, error["error"]) == (404, "not_found")
    assert "MLOPS_MODELS" in error["message"]
    assert call(handler, "POST", "/v1/models/wine/predict", {"instances": records("wine", 1)})[0] == 200
    assert call(handler, "GET", "/v2/health/ready") == (200, {"ready": True}, {"Content-Type": "application/json"})


def _captured(backends: Backends, model: str) -> list[dict[str, Any]]:
    s3 = backends.store.s3
    listing = s3.list_objects_v2(Bucket=backends.store.bucket, Prefix=f"capture/{model}/").get("Contents", [])
    rows: list[dict[str, Any]] = []
    for item in sorted(listing, key=lambda i: i["Key"]):
        data = s3.get_object(Bucket=backends.store.bucket, Key=item["Key"])["Body"].read()
        rows.extend(decode_records(data, item["Key"]))
    return rows


def test_captured_rows_land_in_s3_in_the_shared_format(served: Backends, clock: Clock) -> None:
    ep = endpoint(served, clock, MLOPS_CAPTURE_MAX_ROWS=4, MLOPS_CAPTURE_MAX_SECONDS=60)
    handler = handler_for(ep)
    rows = records("diabetes", 5)
    names = list(rows[0])
    _, first, _ = call(handler, "POST", "/v1/models/diabetes/predict", {"instances": rows[:3]})
    assert _captured(served, "diabetes") == []  # 3 rows buffered
    _, second, _ = call(handler, "POST", "/v1/models/diabetes/predict", {"inputs": [[r[n] for n in names] for r in rows[3:]]})
    captured = _captured(served, "diabetes")  # 5 rows >= 4: flushed inside that request
    assert [r["features"] for r in captured] == rows
    assert [r["prediction"] for r in captured] == first["predictions"] + second["predictions"]
    assert {(r["model"], r["version"], r["request_id"]) for r in captured} == {("diabetes", 1, "JKJaXmPLvHcESHA=")}
    assert not any("probabilities" in r for r in captured)  # a regressor serves none
    tensors = [{"name": n, "shape": [1], "datatype": "BYTES" if n == "sex" else "FP64", "data": [rows[0][n]]} for n in names]
    call(handler, "POST", "/v2/models/diabetes/infer", {"id": "v2-req", "inputs": tensors})
    clock.now += 60
    call(handler, "GET", "/v2/health/live")  # no prediction: nothing flushed
    assert len(_captured(served, "diabetes")) == 5
    call(handler, "POST", "/v1/models/diabetes/predict", {"instances": rows[:1]})  # 60 s old: flushed
    captured = _captured(served, "diabetes")
    assert len(captured) == 7
    assert [r["request_id"] for r in captured].count("v2-req") == 1  # a V2 request's own id, when it gives one
    call(handler, "POST", "/v1/models/diabetes/predict", {"instances": rows[:2]})
    assert ep.flush()  # what mlops serve calls on shutdown
    assert len(_captured(served, "diabetes")) == 9


def test_capture_samples_requests(served: Backends, clock: Clock) -> None:
    draws = iter([0.1, 0.9, 0.2, 0.8])
    ep = endpoint(served, clock, MLOPS_CAPTURE_SAMPLE=0.5)
    ep._sample = lambda: next(draws)
    handler = handler_for(ep)
    served_probabilities = []
    for i in range(4):
        _, body, _ = call(handler, "POST", "/v1/models/wine/predict", {"instances": records("wine", 1, start=i)})
        served_probabilities.append(body["probabilities"][0])
    ep.flush()
    captured = _captured(served, "wine")
    assert [r["features"] for r in captured] == [records("wine", 1, start=0)[0], records("wine", 1, start=2)[0]]
    # a classifier's rows keep the probabilities it served (the quality check's CBPE reads them, re-running nothing)
    assert [r["probabilities"] for r in captured] == [served_probabilities[0], served_probabilities[2]]
    none = endpoint(served, clock, MLOPS_CAPTURE_SAMPLE=0)
    call(handler_for(none), "POST", "/v1/models/wine/predict", {"instances": records("wine", 1)})
    assert none.capture.rows == 0


def test_a_failing_capture_write_never_fails_the_request(served: Backends, clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    class Down:
        def put(self, key: str, data: bytes) -> None:
            raise ConnectionError("S3 unreachable")

    ep = endpoint(served, clock, MLOPS_CAPTURE_MAX_ROWS=1)
    ep._capture_sink = Down()
    capsys.readouterr()
    status, _, _ = call(handler_for(ep), "POST", BC, {"instances": records("breast-cancer", 1)})
    assert status == 200
    assert ep.capture.rows == 1  # kept for the next attempt
    assert any("CaptureFlushFailures" in e for e in emf_records(capsys.readouterr().out))


def test_the_deployed_handler_builds_its_endpoint_from_the_environment_once(
    served: Backends, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from functions.inference import app
    from tests.helpers.events import LambdaContext, load_event

    monkeypatch.setenv("MLOPS_BUCKET", served.store.bucket)
    monkeypatch.setenv("MLOPS_TABLE", served.registry.table)
    monkeypatch.setenv("MLOPS_CAPTURE_MAX_ROWS", "100")
    app.default_endpoint.cache_clear()
    try:
        assert app.flush() == []  # nothing built yet: nothing to flush
        response = app.lambda_handler(load_event(path="/v1/models/wine/predict", body={"instances": records("wine", 2)}), LambdaContext())
        assert response["statusCode"] == 200
        assert app.default_endpoint().settings.capture_max_rows == 100
        assert app.default_endpoint() is app.default_endpoint()
        keys = app.flush()
        assert len(keys) == 1
        assert len(_captured(served, "wine")) == 2
    finally:
        app.default_endpoint.cache_clear()


def test_without_a_telemetry_sink_failures_are_logged(
    served: Backends, clock: Clock, trained_models: dict[str, TrainedModel], caplog: pytest.LogCaptureFixture
) -> None:
    from serverless_mlops.serving.api_models import PredictRequest
    from serverless_mlops.serving.endpoint import Endpoint
    from serverless_mlops.serving.endpoint_settings import EndpointSettings
    from serverless_mlops.serving.model_cache import ModelUnavailableError

    class Down:
        def put(self, key: str, data: bytes) -> None:
            raise ConnectionError("S3 unreachable")

    ep = Endpoint(EndpointSettings(MLOPS_CAPTURE_MAX_ROWS=1), backends=served, clock=clock, capture_sink=Down())
    bad = _tampered_version(served, trained_models["wine"])
    with caplog.at_level("WARNING"):
        ep.predict("wine", PredictRequest(instances=records("wine", 1)))
        with pytest.raises(ModelUnavailableError):
            ep.predict("wine", PredictRequest(instances=records("wine", 1)), version=bad)
    assert "data capture flush: 1 row(s) (ConnectionError: S3 unreachable)" in caplog.text
    assert "model wine failed to load (ArtifactIntegrityError" in caplog.text
