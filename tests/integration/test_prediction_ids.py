"""Prediction ids through the handler on moto: returned by v1 and V2, written with the captured rows, the caller's own
validated row by row."""

from __future__ import annotations

from typing import Any

import pytest

from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.store.capture_format import decode_records
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.inference import Clock, call, endpoint, handler_for, records, register

DIABETES = "/v1/models/diabetes/predict"
REQUEST_ID = "JKJaXmPLvHcESHA="  # the sample event's requestContext.requestId
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def served(backends: Backends, trained_models: dict[str, TrainedModel]) -> Backends:
    register(backends, trained_models["diabetes"], "diabetes-1", promote=True)
    return backends


def _captured(backends: Backends) -> list[dict[str, Any]]:
    s3, bucket = backends.store.s3, backends.store.bucket
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="capture/diabetes/").get("Contents", [])
    return [
        row
        for item in sorted(listing, key=lambda i: i["Key"])
        for row in decode_records(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read(), item["Key"])
    ]


def test_ids_are_returned_and_captured_with_each_row(served: Backends) -> None:
    ep = endpoint(served, Clock())
    handler = handler_for(ep)
    rows = records("diabetes", 3)
    names = list(rows[0])
    status, answer, _ = call(handler, "POST", DIABETES, {"instances": rows[:2]})
    assert status == 200
    assert answer["ids"] == [f"{REQUEST_ID}-0", f"{REQUEST_ID}-1"]
    status, answer, _ = call(handler, "POST", DIABETES, {"inputs": [[rows[2][n] for n in names]], "ids": ["order-1842"]})
    assert (status, answer["ids"]) == (200, ["order-1842"])
    tensors = [{"name": n, "shape": [2], "datatype": "BYTES" if n == "sex" else "FP64", "data": [r[n] for r in rows[:2]]} for n in names]
    status, answer, _ = call(
        handler, "POST", "/v2/models/diabetes/infer", {"id": "v2", "inputs": tensors, "parameters": {"ids": ["x-1", "x-2"]}}
    )
    assert (status, answer["parameters"]) == (200, {"ids": ["x-1", "x-2"]})
    status, answer, _ = call(handler, "POST", "/v2/models/diabetes/infer", {"inputs": tensors, "parameters": {"other": 1}})
    assert (status, answer["parameters"]) == (200, {"ids": [f"{REQUEST_ID}-0", f"{REQUEST_ID}-1"]})
    assert ep.flush()
    captured = _captured(served)
    assert [r["id"] for r in captured] == [
        f"{REQUEST_ID}-0",
        f"{REQUEST_ID}-1",
        "order-1842",
        "x-1",
        "x-2",
        f"{REQUEST_ID}-0",
        f"{REQUEST_ID}-1",
    ]
    assert [r["features"] for r in captured[:3]] == rows


@pytest.mark.parametrize(
    ("body", "row", "field"),
    [
        ({"ids": ["a", "a"]}, 1, "ids"),
        ({"ids": ["a", ""]}, 1, "ids"),
        ({"ids": ["a"]}, None, "ids"),
        ({"ids": ["a", 7]}, 1, "ids"),
        ({"ids": "a"}, None, "ids"),
    ],
)
def test_bad_ids_are_a_422_naming_row_and_field(served: Backends, body: dict[str, Any], row: int | None, field: str) -> None:
    handler = handler_for(endpoint(served, Clock()))
    status, error, _ = call(handler, "POST", DIABETES, {"instances": records("diabetes", 2), **body})
    assert status == 422
    assert (error["details"][0]["row"], error["details"][0]["field"]) == (row, field)


@pytest.mark.parametrize(("ids", "row"), [(["a", "a\n"], 1), (["a"], None), ("a,b", None)])
def test_bad_v2_ids_are_a_422_naming_row_and_field(served: Backends, ids: Any, row: int | None) -> None:
    handler = handler_for(endpoint(served, Clock()))
    rows = records("diabetes", 2)
    tensors = [{"name": n, "shape": [2], "datatype": "BYTES" if n == "sex" else "FP64", "data": [r[n] for r in rows]} for n in rows[0]]
    status, error, _ = call(handler, "POST", "/v2/models/diabetes/infer", {"inputs": tensors, "parameters": {"ids": ids}})
    assert status == 422
    assert (error["details"][0]["row"], error["details"][0]["field"]) == (row, "parameters.ids")
