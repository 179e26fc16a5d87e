"""``POST /v1/models/{name}/labels`` through the handler on moto: labels validated against the production version's
task and classes (4xx naming row and field, never a 5xx for a payload), stored under ``ground-truth/`` where the
quality check reads them, the last label of an id winning."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serverless_mlops.local.http_api import LocalServer
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.quality.labels import MAX_LABELS_PER_REQUEST, read_ground_truth
from serverless_mlops.serving.endpoint import Endpoint
from serverless_mlops.serving.endpoint_settings import EndpointSettings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.events import LambdaContext, emf_records, load_event
from tests.helpers.inference import Clock, Handler, call, endpoint, handler_for, moto_backends, records, register, strict_json
from tests.helpers.specs import ROOT

BC = "breast-cancer"
# the module-scoped moto account of the property tests stays active around the later tests' own: assertions there name
# the ids they wrote rather than expect an empty bucket
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DAY = (datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))


@pytest.fixture
def served(backends: Backends, trained_models: dict[str, TrainedModel]) -> Backends:
    register(backends, trained_models[BC], f"{BC}-1", promote=True)
    register(backends, trained_models["diabetes"], "diabetes-1", promote=True)
    register(backends, trained_models["wine"], "wine-1")  # registered, never promoted
    return backends


def _labels(handler: Handler, model: str, labels: Any) -> tuple[int, Any]:
    status, answer, _ = call(handler, "POST", f"/v1/models/{model}/labels", {"labels": labels})
    return status, answer


def test_a_client_keeps_the_ids_of_its_predictions_and_reports_labels_later(served: Backends, capsys: pytest.CaptureFixture[str]) -> None:
    handler = handler_for(endpoint(served, Clock()))
    status, answer, _ = call(handler, "POST", f"/v1/models/{BC}/predict", {"instances": records(BC, 3), "ids": ["o-1", "o-2", "o-3"]})
    assert (status, answer["ids"]) == (200, ["o-1", "o-2", "o-3"])
    capsys.readouterr()
    status, receipt = _labels(handler, BC, [{"id": "o-1", "label": 1, "event_time": "2026-12-07T10:15:00Z"}, {"id": "o-2", "label": "0"}])
    assert (status, receipt) == (200, {"model": BC, "version": 1, "received": 2, "distinct_ids": 2})
    assert [r["LabelsReceived"] for r in emf_records(capsys.readouterr().out) if "LabelsReceived" in r] == [[2.0]]
    status, receipt = _labels(handler, BC, [{"id": "o-2", "label": 1}, {"id": "o-3", "label": 1.0}, {"id": "o-3", "label": 0}])
    assert (status, receipt["received"], receipt["distinct_ids"]) == (200, 3, 2)
    truth = read_ground_truth(served.store.s3, served.store.bucket, BC, *DAY, task="binary_classification", classes=[0, 1])
    assert {key: label.label for key, label in truth.labels.items()} == {"o-1": 1, "o-2": 1, "o-3": 0}  # the last label wins
    assert truth.labels["o-1"].event_time == datetime(2026, 12, 7, 10, 15, tzinfo=UTC)
    assert (truth.rows, truth.replaced, len(truth.objects), truth.skipped) == (5, 2, 2, [])
    key = truth.objects[0].removeprefix(f"s3://{served.store.bucket}/")
    assert key.startswith(f"ground-truth/{BC}/{datetime.now(UTC):%Y/%m/%d}/")
    assert key.endswith(".jsonl")
    head = served.store.s3.head_object(Bucket=served.store.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"


def test_a_regressors_labels_are_numbers(served: Backends) -> None:
    handler = handler_for(endpoint(served, Clock()))
    assert _labels(handler, "diabetes", [{"id": "a", "label": 151.5}, {"id": "b", "label": "97"}])[0] == 200
    status, error = _labels(handler, "diabetes", [{"id": "a", "label": "high"}])
    assert (status, error["error"], error["details"][0]["row"], error["details"][0]["field"]) == (422, "invalid_labels", 0, "labels.label")


@pytest.mark.parametrize(
    ("labels", "details"),
    [
        ([{"id": "a", "label": 1}, {"id": "b", "label": 7}], [(1, "labels.label")]),
        ([{"id": "", "label": 1}], [(0, "labels.id")]),
        ([{"label": 1}], [(0, "labels.id")]),
        ([{"id": "a"}], [(0, "labels.label")]),
        ([{"id": "a", "label": True}], [(0, "labels.label")]),
        ([{"id": "a", "label": 1, "event_time": "soon"}], [(0, "labels.event_time")]),
        ([{"id": "a", "label": 1, "score": 0.9}], [(0, "labels.score")]),
        ([{"id": 5, "label": 1}, {"id": "b", "label": 1}], [(0, "labels.id")]),
        ([{"id": "a", "label": 1}, "x"], [(1, "labels")]),  # not an object: refused by the request model
        ([], [(None, "labels")]),
    ],
)
def test_bad_labels_are_a_422_naming_row_and_field(served: Backends, labels: Any, details: list[tuple[int | None, str]]) -> None:
    handler = handler_for(endpoint(served, Clock()))
    status, error = _labels(handler, BC, labels)
    assert status == 422, error
    assert [(d["row"], d["field"]) for d in error["details"]] == details
    assert served.store.s3.list_objects_v2(Bucket=served.store.bucket, Prefix="ground-truth/").get("KeyCount") == 0  # nothing stored


def test_too_many_labels_is_413_and_unknown_or_unpromoted_models_are_404(served: Backends) -> None:
    handler = handler_for(endpoint(served, Clock(), MLOPS_MAX_BODY_BYTES=1_000_000))
    many = [{"id": f"i{i}", "label": 1} for i in range(MAX_LABELS_PER_REQUEST + 1)]
    status, error = _labels(handler, BC, many)
    assert (status, error["error"], error["details"][0]["field"]) == (413, "too_many_labels", "labels")
    assert _labels(handler, BC, many[:MAX_LABELS_PER_REQUEST])[0] == 200
    for model in ("no-such-model", "wine", "Bad_Name"):  # wine has no production version to validate against
        status, error = _labels(handler, model, [{"id": "a", "label": 1}])
        assert (status, error["error"]) == (404, "not_found"), model
    handler = handler_for(endpoint(served, Clock(), MLOPS_MODELS="diabetes"))
    assert _labels(handler, BC, [{"id": "a", "label": 1}])[0] == 404  # not served by this endpoint


def test_the_route_uses_the_labels_budget_and_a_failed_write_is_a_503(served: Backends) -> None:
    budgets: list[int] = []

    class FailingS3:
        def __init__(self, s3: Any) -> None:
            self.s3 = s3

        def put_object(self, **kwargs: Any) -> None:
            raise served.store.s3.exceptions.ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "PutObject")

    def budgeted(budget_ms: int) -> Backends:
        budgets.append(budget_ms)
        if budget_ms == 750:
            store = type(served.store)(served.store.bucket, FailingS3(served.store.s3))
            return Backends(store=store, registry=served.registry)
        return served

    ep = Endpoint(EndpointSettings(MLOPS_LABELS_BUDGET_MS=750), clock=Clock(), budgeted=budgeted)
    status, error = _labels(handler_for(ep), BC, [{"id": "a", "label": 1}])
    assert (status, error["error"]) == (503, "service_unavailable")
    assert 750 in budgets


# -- properties: whatever a client sends to the labels route, 200 or a 4xx in the error shape, never a 5xx -----------
@pytest.fixture(scope="module")
def property_handler(trained_models: dict[str, TrainedModel]) -> Iterator[Handler]:
    with moto_backends() as backends:
        register(backends, trained_models[BC], f"{BC}-1", promote=True)
        yield handler_for(endpoint(backends, Clock(), MLOPS_CAPTURE_SAMPLE=0))


def _invoke(handler: Handler, model: str, body: str) -> tuple[int, Any]:
    response = handler(load_event(method="POST", path=f"/v1/models/{model}/labels", raw_body=body), LambdaContext())
    status, answer = response["statusCode"], strict_json(response["body"])
    assert status == 200 or 400 <= status < 500, (status, answer)
    if status != 200:
        assert set(answer) == {"error", "message", "details"}
        assert all(set(detail) == {"row", "field", "problem"} for detail in answer["details"])
    return status, answer


scalars = st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=10)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=12)
rows = st.fixed_dictionaries(
    {}, optional={"id": values | st.text(max_size=140), "label": values | st.sampled_from([0, 1, "1"]), "event_time": values}
)


@PROPERTY
@given(
    payload=values | st.fixed_dictionaries({}, optional={"labels": st.lists(rows | values, max_size=5) | values}),
    model=st.sampled_from([BC, "x"]),
)
def test_arbitrary_payloads_never_cause_a_server_error(property_handler: Handler, payload: Any, model: str) -> None:
    _invoke(property_handler, model, json.dumps(payload))


GOOD = {"id": "p-1", "label": 1, "event_time": "2026-12-07T10:15:00Z"}
BAD = {
    "id": ["", "x" * 129, "a\nb", 7, None, True, ["a"]],
    "label": [2, "yes", 0.5, None, True, [1], {"v": 1}, ""],
    "event_time": ["soon", 5, "2026-13-01"],
}


@PROPERTY
@given(data=st.data())
def test_one_bad_field_is_a_422_naming_its_row_and_field(property_handler: Handler, data: Any) -> None:
    count = data.draw(st.integers(1, 6), label="count")
    labels = [{**GOOD, "id": f"p-{i}"} for i in range(count)]
    row = data.draw(st.integers(0, count - 1), label="row")
    field = data.draw(st.sampled_from(list(BAD)), label="field")
    labels[row][field] = data.draw(st.sampled_from(BAD[field]), label="value")
    status, answer = _invoke(property_handler, BC, json.dumps({"labels": labels}))
    assert status == 422, answer
    assert (row, f"labels.{field}") in {(d["row"], d["field"]) for d in answer["details"]}, answer


@PROPERTY
@given(
    labels=st.lists(
        st.fixed_dictionaries(
            {"id": st.text(min_size=1, max_size=128).filter(str.isprintable), "label": st.sampled_from([0, 1, "0", "1", 1.0])}
        ),
        min_size=1,
        max_size=20,
    )
)
def test_valid_labels_are_stored(property_handler: Handler, labels: list[dict[str, Any]]) -> None:
    status, answer = _invoke(property_handler, BC, json.dumps({"labels": labels}))
    assert (status, answer["received"], answer["distinct_ids"]) == (200, len(labels), len({label["id"] for label in labels}))


# -- docs/quality.md's examples, sent as written --------------------------------------------------------------------
def _section() -> str:
    page = (ROOT / "docs" / "quality.md").read_text(encoding="utf-8")
    return page.split("\n## Prediction ids and labels\n", 1)[1].split("\n## ", 1)[0]


def test_the_pages_curl_examples_answer_as_written(backends: Backends, trained_models: dict[str, TrainedModel]) -> None:
    register(backends, trained_models["wine"], "wine-1", promote=True)
    handler = handler_for(endpoint(backends, Clock()))
    (block,) = re.findall(r"```sh\n(.*?)```", _section(), re.DOTALL)
    commands = re.split(r"\n(?=curl )", block.strip())
    assert len(commands) == 3
    for text in commands:
        command, _, comment = text.partition("\n#")
        args = shlex.split(command.replace("\\\n", " "))
        expected = "".join(line.lstrip("#").strip() for line in ("#" + comment).splitlines())
        path = "/" + next(a for a in args if a.startswith("localhost:8080")).split("/", 1)[1]
        status, answer, _ = call(handler, "POST", path, json.loads(args[args.index("-d") + 1]))
        assert answer == json.loads(expected), (path, status, answer)
    truth = read_ground_truth(backends.store.s3, backends.store.bucket, "wine", *DAY, task="multiclass_classification", classes=[0, 1, 2])
    assert truth.labels["order-1842"].label == 0


def test_the_pages_python_client_predicts_and_reports_a_label(
    backends: Backends, trained_models: dict[str, TrainedModel], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    register(backends, trained_models["wine"], "wine-1", promote=True)
    (code,) = re.findall(r"```python\n(.*?)```", _section(), re.DOTALL)
    with LocalServer(handler_for(endpoint(backends, Clock()))) as server:
        monkeypatch.setenv("MLOPS_API_URL", server.url + "/")  # the stack's ApiUrl ends in a slash
        namespace: dict[str, Any] = {"__name__": "example"}
        exec(compile(code, "docs/quality.md", "exec"), namespace)  # the page's own example
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == "{'model': 'wine', 'version': 1, 'received': 1, 'distinct_ids': 1}"
    assert "# " + printed in code
    truth = read_ground_truth(backends.store.s3, backends.store.bucket, "wine", *DAY, task="multiclass_classification", classes=[0, 1, 2])
    prediction_id = namespace["order"]["prediction_id"]
    assert prediction_id.endswith("-0")  # {request id}-{row index}: the example let the endpoint name its row
    assert truth.labels[prediction_id].label == 0
