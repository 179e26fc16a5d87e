"""Prediction ids: the caller's, validated row by row, or ``{request id}-{row index}``."""

from __future__ import annotations

import pytest

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.serving.prediction_ids import default_ids, prediction_ids
from serverless_mlops.store.capture_format import id_problem


def test_default_ids_are_the_request_id_and_the_row_index() -> None:
    assert prediction_ids(None, 3, "req-7") == ["req-7-0", "req-7-1", "req-7-2"]
    first, second = default_ids(None, 2), default_ids(None, 2)
    assert [first[0][-2:], first[1][-2:]] == ["-0", "-1"]
    assert first[0][:-2] == first[1][:-2] != second[0][:-2]  # one random base per request when there is no request id
    assert prediction_ids(None, 0, "r") == []


def test_the_callers_ids_are_kept_in_order() -> None:
    assert prediction_ids(["order-1842", "order 1843 ✓"], 2, "req") == ["order-1842", "order 1843 ✓"]


@pytest.mark.parametrize(
    ("ids", "details"),
    [
        (["a", ""], [(1, "an id must not be empty")]),
        (["a", "x" * 129], [(1, "an id is at most 128 characters; got 129")]),
        (["a\tb", "c\n"], [(0, "an id holds printable"), (1, "an id holds printable")]),
        (["a", "b", "a"], [(2, "this id is given to an earlier row")]),
        ([1, "b", None], [(0, "an id is a string"), (2, "an id is a string")]),
    ],
)
def test_a_bad_id_is_named_by_row(ids: list[object], details: list[tuple[int, str]]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        prediction_ids(ids, len(ids), "req")
    got = caught.value.details
    assert [(d["row"], d["field"]) for d in got] == [(row, "ids") for row, _ in details]
    assert all(d["problem"].startswith(problem) for d, (_, problem) in zip(got, details, strict=True))
    assert caught.value.code == "invalid_input"


def test_one_id_per_row() -> None:
    with pytest.raises(InvalidInputError, match="2 id\\(s\\) for 3 row\\(s\\)") as caught:
        prediction_ids(["a", "b"], 3, "req", field="parameters.ids")
    assert caught.value.details == [
        {"row": None, "field": "parameters.ids", "problem": "2 id(s) for 3 row(s): give one id per row, in the rows' order"}
    ]


def test_at_most_fifty_bad_ids_are_listed() -> None:
    with pytest.raises(InvalidInputError) as caught:
        prediction_ids([""] * 80, 80, "req")
    assert len(caught.value.details) == 50


def test_the_id_rule() -> None:
    assert id_problem("x" * 128) is None
    assert id_problem("ünïcode and spaces") is None
    assert id_problem("\ud800") is not None  # a lone surrogate cannot be written as UTF-8
    assert id_problem(3) == "an id is a string"
