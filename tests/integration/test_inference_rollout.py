"""Serving an alias during a release, on moto: canary routing by a stable hash of the routing key, the shadow scoring
in the background, and the guard metrics (EMF, per version and role) of every version that scored a request.

Candidates are real registered versions: the example breast-cancer model, and ONNX rewirings of it (labels flipped
with probabilities swapped; labels outside the model's classes) registered through the normal path.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving import guard_metrics as gm
from serverless_mlops.serving.api_models import PredictRequest
from serverless_mlops.serving.endpoint import Endpoint
from serverless_mlops.serving.onnx_model import InvalidOutputError
from serverless_mlops.store.capture_format import decode_records
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.events import emf_records
from tests.helpers.inference import Clock, call, endpoint, handler_for, records, register
from tests.integration.test_inference_lifecycle import _tampered_version

MODEL = "breast-cancer"
BC = f"/v1/models/{MODEL}/predict"
Z_999 = 3.2905  # two-sided 99.9% normal quantile
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def rewired(trained: TrainedModel, how: str) -> TrainedModel:
    """The model with its outputs rewired: ``flipped`` (label 1 - label, probabilities swapped) or ``invalid`` (label + 7,
    a class the model does not have)."""
    graph_model = onnx.load_from_string(trained.onnx_bytes)
    graph = graph_model.graph
    for output in graph.output:
        for node in graph.node:
            node.output[:] = [f"{name}_raw" if name == output.name else name for name in node.output]
    constant = numpy_helper.from_array(np.array([1 if how == "flipped" else 7], dtype=np.int64), "rewire_k")
    graph.initializer.append(constant)
    if how == "flipped":
        graph.node.append(helper.make_node("Sub", ["rewire_k", "label_raw"], ["label"]))
        graph.initializer.append(numpy_helper.from_array(np.array([1, 0], dtype=np.int64), "rewire_order"))
        graph.node.append(helper.make_node("Gather", ["probabilities_raw", "rewire_order"], ["probabilities"], axis=1))
    else:
        graph.node.append(helper.make_node("Add", ["label_raw", "rewire_k"], ["label"]))
        graph.node.append(helper.make_node("Identity", ["probabilities_raw"], ["probabilities"]))
    return dataclasses.replace(trained, onnx_bytes=graph_model.SerializeToString())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bc(backends: Backends, trained_models: dict[str, TrainedModel]) -> TrainedModel:
    """breast-cancer: version 1 in production, version 2 (the same graph) registered beside it."""
    trained = trained_models[MODEL]
    register(backends, trained, "v1", promote=True)
    register(backends, trained, "v2")
    return trained


@functools.cache
def _rows(count: int) -> list[dict[str, Any]]:
    return records(MODEL, count)


def predict(ep: Endpoint, key: str, rows: int = 1, **kwargs: Any) -> Any:
    # a request id per key, so the answer's prediction ids ({request id}-{row}) are the same when a key asks again
    kwargs.setdefault("request_id", f"request-{key}")
    return ep.predict(MODEL, PredictRequest(instances=_rows(rows)), routing_key=key, **kwargs)


def guard_records(stdout: str) -> list[dict[str, Any]]:
    return [r for r in emf_records(stdout) if r["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [list(gm.DIMENSIONS)]]


def totals(stdout: str) -> dict[tuple[str, str], Counter[str]]:
    """Guard metric sums by (version, role)."""
    sums: dict[tuple[str, str], Counter[str]] = {}
    for record in guard_records(stdout):
        counter = sums.setdefault((record["version"], record["role"]), Counter())
        for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            if metric["Name"] != gm.LATENCY:
                counter[metric["Name"]] += record[metric["Name"]]
    return sums


# -- routing ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [10.0, 37.5])
def test_the_canary_share_over_10000_keys_is_within_the_binomial_999_interval(
    backends: Backends, bc: TrainedModel, clock: Clock, weight: float
) -> None:
    backends.registry.set_canary(MODEL, 2, weight, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    n = 10_000
    on_canary = sum(predict(ep, f"user-{i}").version == 2 for i in range(n))

    p = weight / 100
    half_width = Z_999 * math.sqrt(n * p * (1 - p))
    assert n * p - half_width <= on_canary <= n * p + half_width, f"{on_canary} of {n} on a {weight}% canary"


def test_one_key_always_gets_one_version_and_a_higher_weight_keeps_it_on_the_canary(
    backends: Backends, bc: TrainedModel, clock: Clock
) -> None:
    backends.registry.set_canary(MODEL, 2, 20, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    keys = [f"session-{i}" for i in range(300)]
    first = {key: predict(ep, key).version for key in keys}
    assert set(first.values()) == {1, 2}
    for _ in range(3):
        assert {key: predict(ep, key).version for key in keys} == first

    backends.registry.set_canary(MODEL, 2, 60, release_id="rel", by="t")
    clock.now += 30
    later = {key: predict(ep, key).version for key in keys}
    assert all(later[key] == 2 for key in keys if first[key] == 2), "raising the weight only moves keys onto the canary"
    assert sum(v == 2 for v in later.values()) > sum(v == 2 for v in first.values())


@pytest.mark.parametrize(("weight", "expected"), [(0.0, {1}), (100.0, {2})])
def test_weight_0_and_100_are_exact(backends: Backends, bc: TrainedModel, clock: Clock, weight: float, expected: set[int]) -> None:
    backends.registry.set_canary(MODEL, 2, weight, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    assert {predict(ep, f"k{i}").version for i in range(2000)} == expected


def test_the_handler_routes_by_x_routing_key_and_names_the_version_in_body_and_header(
    backends: Backends, bc: TrainedModel, clock: Clock
) -> None:
    backends.registry.set_canary(MODEL, 2, 50, release_id="rel", by="t")
    handler = handler_for(endpoint(backends, clock))
    body = {"instances": _rows(2)}
    seen: dict[str, set[int]] = {}
    for i in range(40):
        for _ in range(2):
            status, answer, headers = call(
                handler, "POST", BC, body, headers={"content-type": "application/json", "x-routing-key": f"u{i}"}
            )
            assert status == 200
            assert headers["x-model-version"] == str(answer["version"])
            seen.setdefault(f"u{i}", set()).add(answer["version"])
    assert all(len(versions) == 1 for versions in seen.values())
    assert {v for versions in seen.values() for v in versions} == {1, 2}

    v2 = [call(handler, "POST", f"/v2/models/{MODEL}/infer", _v2_body(), headers={"x-routing-key": f"u{i}"}) for i in range(40)]
    assert {answer["model_version"] for _, answer, _ in v2} == {"1", "2"}
    assert all(headers["x-model-version"] == answer["model_version"] for _, answer, headers in v2)
    assert [answer["model_version"] for _, answer, _ in v2] == [str(next(iter(seen[f"u{i}"]))) for i in range(40)], "v1 and v2 route alike"


def _v2_body() -> dict[str, Any]:
    row = _rows(1)[0]
    return {"inputs": [{"name": name, "shape": [1], "datatype": "FP32", "data": [value]} for name, value in row.items()]}


def test_a_version_asked_for_by_number_is_never_routed_and_reports_no_guard_metrics(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.registry.set_canary(MODEL, 2, 100, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    capsys.readouterr()
    assert {predict(ep, f"k{i}", version=1).version for i in range(20)} == {1}
    assert guard_records(capsys.readouterr().out) == []


# -- the canary's guard metrics and fallbacks ------------------------------------------------------------------------


def test_guard_metrics_name_the_version_and_role_that_scored(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.registry.set_canary(MODEL, 2, 50, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    capsys.readouterr()
    served = Counter(predict(ep, f"k{i}", rows=3).version for i in range(200))

    out = capsys.readouterr().out
    sums = totals(out)
    assert set(sums) == {("1", "production"), ("2", "canary")}
    assert sums["1", "production"] == Counter({gm.REQUESTS: served[1], gm.ROWS: 3 * served[1]})
    assert sums["2", "canary"] == Counter({gm.REQUESTS: served[2], gm.ROWS: 3 * served[2]})
    record = guard_records(out)[0]
    assert record["service"] == "inference"
    assert record["model"] == MODEL
    assert record[gm.LATENCY] > 0


def test_a_canary_that_cannot_load_never_answers_and_counts_errors_and_fallbacks(
    backends: Backends, bc: TrainedModel, clock: Clock, trained_models: dict[str, TrainedModel], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _tampered_version(backends, trained_models[MODEL])
    backends.registry.set_canary(MODEL, bad, 100, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    capsys.readouterr()

    assert {predict(ep, f"k{i}").version for i in range(10)} == {1}
    sums = totals(capsys.readouterr().out)
    assert sums[str(bad), "canary"] == Counter({gm.REQUESTS: 10, gm.ERRORS: 10, gm.CANARY_FALLBACKS: 10})
    assert sums["1", "production"][gm.REQUESTS] == 10


def test_a_canary_with_invalid_outputs_never_answers_and_counts_them(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = register(backends, rewired(bc, "invalid"), "broken").version
    backends.registry.set_canary(MODEL, broken, 100, release_id="rel", by="t")
    handler = handler_for(endpoint(backends, clock))
    capsys.readouterr()

    answers = [call(handler, "POST", BC, {"instances": _rows(4)}, headers={"x-routing-key": f"k{i}"}) for i in range(5)]

    assert {(status, answer["version"]) for status, answer, _ in answers} == {(200, 1)}
    assert all(set(answer["predictions"]) <= {0, 1} for _, answer, _ in answers)
    sums = totals(capsys.readouterr().out)
    assert sums[str(broken), "canary"] == Counter({gm.REQUESTS: 5, gm.ROWS: 20, gm.INVALID_OUTPUTS: 20, gm.CANARY_FALLBACKS: 5})


def test_a_canary_raising_while_scoring_falls_back_to_the_champion(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.registry.set_canary(MODEL, 2, 100, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    canary = ep.models.serve(MODEL).canary
    assert canary is not None
    assert canary.loaded is not None

    def boom(_data: Any) -> Any:
        raise RuntimeError("onnxruntime fell over")

    canary.loaded.model.predict_feeds = boom  # type: ignore[method-assign]
    capsys.readouterr()
    assert predict(ep, "k").version == 1
    assert totals(capsys.readouterr().out)["2", "canary"] == Counter({gm.REQUESTS: 1, gm.ERRORS: 1, gm.CANARY_FALLBACKS: 1})


def test_clearing_the_canary_returns_every_key_to_the_champion_after_one_refresh(
    backends: Backends, bc: TrainedModel, clock: Clock
) -> None:
    backends.registry.set_canary(MODEL, 2, 100, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    assert predict(ep, "k").version == 2
    backends.registry.clear_canary(MODEL, release_id="rel", by="t")
    assert predict(ep, "k").version == 2  # within the refresh interval
    clock.now += 30
    assert {predict(ep, f"k{i}").version for i in range(50)} == {1}
    assert 1 in [m.entry.version for m in ep.models.loaded()], "the champion never left memory"


# -- the shadow ------------------------------------------------------------------------------------------------------


def _event(i: int, rows: int) -> dict[str, Any]:
    from tests.helpers.events import load_event

    return load_event(method="POST", path=BC, body={"instances": _window(i, rows)}, headers={"x-routing-key": f"k{i}"})


@functools.cache
def _window(start: int, rows: int) -> list[dict[str, Any]]:
    return records(MODEL, rows, start=start)


def test_answers_are_byte_identical_with_and_without_a_shadow(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.events import LambdaContext

    flipped = register(backends, rewired(bc, "flipped"), "flipped").version
    plain = handler_for(endpoint(backends, clock))
    without = [plain(_event(i, 3), LambdaContext())["body"] for i in range(20)]
    backends.registry.set_shadow(MODEL, flipped, 1.0, by="t")
    shadowed_endpoint = endpoint(backends, clock)
    create = handler_for(shadowed_endpoint)
    capsys.readouterr()
    with_shadow = [create(_event(i, 3), LambdaContext())["body"] for i in range(20)]
    shadowed_endpoint.shadow_guards.flush()  # the shadow's sums are published every 10 s (the test clock stands still)

    assert with_shadow == without
    sums = totals(capsys.readouterr().out)
    assert sums[str(flipped), "shadow"][gm.SHADOW_COMPARED] == 60, "the shadow did score every row"


def test_a_shadow_that_raises_changes_nothing_but_its_error_count(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.registry.set_shadow(MODEL, 2, 1.0, by="t")
    ep = endpoint(backends, clock)
    capsys.readouterr()
    healthy = [predict(ep, f"k{i}", rows=2).model_dump_json() for i in range(5)]
    ep.shadow_guards.flush()
    healthy_sums = totals(capsys.readouterr().out)

    shadow = ep.models.serve(MODEL).shadow
    assert shadow is not None
    assert shadow.loaded is not None

    def boom(_data: Any) -> Any:
        raise MemoryError("the shadow ran out of memory")

    shadow.loaded.model.predict_feeds = boom  # type: ignore[method-assign]
    broken = [predict(ep, f"k{i}", rows=2).model_dump_json() for i in range(5)]
    ep.shadow_guards.flush()
    broken_sums = totals(capsys.readouterr().out)

    assert broken == healthy
    assert broken_sums["1", "production"] == healthy_sums["1", "production"]
    assert healthy_sums["2", "shadow"][gm.ERRORS] == 0
    assert broken_sums["2", "shadow"] == Counter({gm.REQUESTS: 5, gm.ERRORS: 5})


@pytest.mark.parametrize(("how", "agreement", "delta_min"), [(None, 1.0, 0.0), ("flipped", 0.0, 0.0)])
def test_agreement_is_one_for_an_identical_model_and_zero_for_flipped_labels(
    backends: Backends,
    bc: TrainedModel,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
    how: str | None,
    agreement: float,
    delta_min: float,
) -> None:
    version = 2 if how is None else register(backends, rewired(bc, how), how).version
    backends.registry.set_shadow(MODEL, version, 1.0, by="t")
    ep = endpoint(backends, clock, MLOPS_CAPTURE_MAX_ROWS=10_000)
    capsys.readouterr()
    answers = [predict(ep, f"k{i}", rows=5) for i in range(10)]

    ep.shadow_guards.flush()
    shadow = totals(capsys.readouterr().out)[str(version), "shadow"]
    assert shadow[gm.SHADOW_COMPARED] == 50
    assert shadow[gm.SHADOW_AGREED] / shadow[gm.SHADOW_COMPARED] == agreement
    if how is None:
        assert shadow[gm.SHADOW_PROBABILITY_DELTA] == 0
    else:  # swapped probabilities differ by |p1 - p0| per row
        expected = sum(abs(p[1] - p[0]) for a in answers for p in a.probabilities)
        assert shadow[gm.SHADOW_PROBABILITY_DELTA] == pytest.approx(expected, abs=1e-6)

    ep.flush()
    lines = [
        row
        for obj in backends.store.s3.list_objects_v2(Bucket=backends.store.bucket, Prefix=f"capture/{MODEL}/").get("Contents", [])
        for row in decode_records(backends.store.s3.get_object(Bucket=backends.store.bucket, Key=obj["Key"])["Body"].read(), obj["Key"])
    ]
    assert len(lines) == 50
    assert all(line["shadow"]["version"] == version for line in lines)
    same = [line["shadow"]["prediction"] == line["prediction"] for line in lines]
    assert sum(same) / len(same) == agreement


def test_the_shadows_metrics_are_summed_and_published_once_the_interval_passes_equal_to_one_record_a_request(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    flipped = register(backends, rewired(bc, "flipped"), "flipped").version
    backends.registry.set_shadow(MODEL, flipped, 1.0, by="t")
    each = endpoint(backends, clock, MLOPS_SHADOW_METRICS_SECONDS=0)
    summed = endpoint(backends, clock)  # the default: every 10 s
    capsys.readouterr()
    for i in range(30):
        predict(each, f"k{i}", rows=1 + i % 4)
    per_request = [r for r in guard_records(capsys.readouterr().out) if r["role"] == "shadow"]
    for i in range(30):
        predict(summed, f"k{i}", rows=1 + i % 4)
    assert [r for r in guard_records(capsys.readouterr().out) if r["role"] == "shadow"] == [], "not due yet"

    clock.now += 10
    one_more = predict(summed, "one-more", rows=2)  # the request after the interval publishes the sums, its own included
    [record] = [r for r in guard_records(capsys.readouterr().out) if r["role"] == "shadow"]

    assert len(per_request) == 30
    expected = totals("\n".join(json.dumps(r) for r in per_request))[str(flipped), "shadow"]
    expected.update({gm.REQUESTS: 1, gm.ROWS: 2, gm.SHADOW_COMPARED: 2})
    got = totals(json.dumps(record))[str(flipped), "shadow"]
    assert one_more.probabilities is not None
    its_delta = sum(abs(p[1] - p[0]) for p in one_more.probabilities)  # the flipped shadow swaps the probabilities
    assert got.pop(gm.SHADOW_PROBABILITY_DELTA) == pytest.approx(expected.pop(gm.SHADOW_PROBABILITY_DELTA) + its_delta, abs=1e-9)
    assert got == expected
    assert got[gm.SHADOW_AGREED] == 0, "the flipped shadow agreed on no row"
    assert len(record[gm.LATENCY]) == 31, "one latency sample per request"

    predict(summed, "after", rows=1)
    summed.flush()  # a server stopping: what is pending is published with the capture
    assert totals(capsys.readouterr().out)[str(flipped), "shadow"][gm.REQUESTS] == 1


def test_the_shadow_samples_a_stable_share_of_keys(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.registry.set_shadow(MODEL, 2, 0.2, by="t")
    ep = endpoint(backends, clock)
    capsys.readouterr()
    for i in range(2000):
        predict(ep, f"k{i}")
    ep.shadow_guards.flush()
    shadowed = totals(capsys.readouterr().out)["2", "shadow"][gm.REQUESTS]
    half_width = Z_999 * math.sqrt(2000 * 0.2 * 0.8)
    assert 400 - half_width <= shadowed <= 400 + half_width


# -- what else a version can do wrong --------------------------------------------------------------------------------


def test_a_shadow_that_cannot_load_is_counted_and_changes_no_answer(
    backends: Backends, bc: TrainedModel, clock: Clock, trained_models: dict[str, TrainedModel], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _tampered_version(backends, trained_models[MODEL])
    ep = endpoint(backends, clock)
    before = [predict(ep, f"k{i}").model_dump_json() for i in range(4)]
    backends.registry.set_shadow(MODEL, bad, 1.0, by="t")
    clock.now += 30
    capsys.readouterr()
    assert [predict(ep, f"k{i}").model_dump_json() for i in range(4)] == before
    ep.shadow_guards.flush()
    assert totals(capsys.readouterr().out)[str(bad), "shadow"] == Counter({gm.REQUESTS: 4, gm.ERRORS: 4})


def _patch(ep: Endpoint, which: str, error: Exception) -> None:
    served = ep.models.serve(MODEL)
    loaded = served.champion if which == "champion" else served.canary.loaded  # type: ignore[union-attr]
    assert loaded is not None

    def fail(_feeds: Any) -> Any:
        raise error

    loaded.model.predict_feeds = fail  # type: ignore[method-assign]


def test_a_champion_failing_is_counted_against_its_version_and_the_request_fails(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = endpoint(backends, clock)
    _patch(ep, "champion", RuntimeError("onnxruntime fell over"))
    capsys.readouterr()
    with pytest.raises(RuntimeError):
        predict(ep, "k")
    assert totals(capsys.readouterr().out)["1", "production"] == Counter({gm.REQUESTS: 1, gm.ERRORS: 1})


def test_a_champion_with_non_finite_outputs_answers_422_and_counts_them(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = endpoint(backends, clock)
    _patch(ep, "champion", InvalidOutputError("2 row(s) give a prediction that is not a finite number", [], rows=2))
    capsys.readouterr()
    status, error, _ = call(handler_for(ep), "POST", BC, {"instances": _rows(3)})
    assert (status, error["error"]) == (422, "invalid_input")
    assert totals(capsys.readouterr().out)["1", "production"] == Counter({gm.REQUESTS: 1, gm.INVALID_OUTPUTS: 2})


def test_a_canary_with_non_finite_outputs_falls_back_and_a_client_mistake_is_the_clients(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.registry.set_canary(MODEL, 2, 100, release_id="rel", by="t")
    ep = endpoint(backends, clock)
    _patch(ep, "canary", InvalidOutputError("1 row(s) give a prediction that is not a finite number", [], rows=1))
    capsys.readouterr()
    assert predict(ep, "k").version == 1
    assert totals(capsys.readouterr().out)["2", "canary"] == Counter({gm.REQUESTS: 1, gm.INVALID_OUTPUTS: 1, gm.CANARY_FALLBACKS: 1})

    _patch(ep, "canary", InvalidInputError("1 invalid value(s) in the request", [{"row": 0, "field": "x", "problem": "missing"}]))
    with pytest.raises(InvalidInputError):
        predict(ep, "k")


def test_an_alias_other_than_production_is_routed_but_reports_no_guard_metrics(
    backends: Backends, bc: TrainedModel, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.registry.set_alias(MODEL, "staging", 1, by="t")
    backends.registry.set_canary(MODEL, 2, 100, release_id="rel", alias="staging", by="t")
    ep = endpoint(backends, clock)
    capsys.readouterr()
    assert predict(ep, "k", alias="staging").version == 2
    assert guard_records(capsys.readouterr().out) == []
