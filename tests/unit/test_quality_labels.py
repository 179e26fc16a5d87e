"""Ground truth: validating label files and payloads (row and field named), the last label of an id winning, the
key layout that makes key order arrival order."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from serverless_mlops.quality.labels import (
    GroundTruth,
    Label,
    LabelsError,
    day_prefixes,
    encode_labels,
    ground_truth_key,
    label_format,
    merge_labels,
    parse_event_time,
    parse_labels,
)

CLASSES = [0, 1, 2]


def _error(
    data: bytes | str | list[object], source: str = "labels.csv", task: str = "multiclass_classification", classes: object = CLASSES
) -> LabelsError:
    with pytest.raises(LabelsError) as caught:
        parse_labels(data, source, task, classes)  # type: ignore[arg-type]
    return caught.value


def test_a_csv_file_with_any_column_order_and_optional_event_time() -> None:
    text = "label,id,event_time\n1,a,2026-12-07T10:15:00Z\n2,b,\n0,c,2026-12-07T11:00:00+01:00\n"
    labels = parse_labels(text.encode(), "labels.csv", "multiclass_classification", CLASSES)
    assert labels == [
        Label("a", 1, datetime(2026, 12, 7, 10, 15, tzinfo=UTC), 0),
        Label("b", 2, None, 1),
        Label("c", 0, datetime(2026, 12, 7, 10, 0, tzinfo=UTC), 2),
    ]
    assert all(type(label.label) is int for label in labels)  # the class as the model holds it, not the text "1"


def test_json_lines_with_classes_named_as_numbers_or_text_and_gzip() -> None:
    rows = [
        {"id": "a", "label": 1},
        {"id": "b", "label": "2"},
        {"id": "c", "label": 0.0, "event_time": "2026-12-07"},
        {"id": "d", "label": 1},
    ]
    text = "\n".join(json.dumps(row) for row in rows) + "\n\n"
    for data in (text, gzip.compress(text.encode())):
        labels = parse_labels(data, "s3://b/ground-truth/m/x.jsonl.gz", "multiclass_classification", CLASSES)
        assert [(label.id, label.label) for label in labels] == [("a", 1), ("b", 2), ("c", 0), ("d", 1)]
        assert labels[2].event_time == datetime(2026, 12, 7, tzinfo=UTC)  # a date alone, read as UTC midnight


def test_string_classes_and_regression_values() -> None:
    labels = parse_labels('{"id":"a","label":"yes"}\n', "x.jsonl", "binary_classification", ["no", "yes"])
    assert labels[0].label == "yes"
    assert _error('{"id":"a","label":"maybe"}\n', "x.jsonl", "binary_classification", ["no", "yes"]).details[0]["field"] == "label"
    values = parse_labels("id,label\na, 151.5\nb,-3\n", "y.csv", "regression")
    assert [label.label for label in values] == [151.5, -3.0]
    for bad in ("nan", "inf", "abc", ""):
        error = _error(f"id,label\na,{bad}\n", "y.csv", "regression", None)
        assert error.details[0]["field"] == "label"
    assert _error([{"id": "a", "label": True}], "request", "regression", None).details[0]["field"] == "label"


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        ("id,label\na,1\nb,7\n", 3, "label", "not one of the model's classes (0, 1, 2)"),
        ("id,label\na,1\n,1\n", 3, "id", "an id must not be empty"),
        ("id,label\na,1\n" + "x" * 129 + ",1\n", 3, "id", "an id is at most 128 characters; got 129"),
        ("id,label,event_time\na,1,yesterday\n", 2, "event_time", "event_time is not ISO 8601"),
        ("id,label\na,1,9\n", 2, None, "3 value(s) for 2 column(s)"),
        ("id,lable\na,1\n", 1, "label", "the header lacks the column 'label'"),
        ("id,label,score\na,1,3\n", 1, "score", "unknown column 'score'"),
        ("id,label,id\na,1,b\n", 1, "id", "the column 'id' is named twice"),
    ],
)
def test_a_bad_csv_row_is_named_by_line_and_field(text: str, line: int, field: str | None, problem: str) -> None:
    error = _error(text.encode())
    assert str(error).startswith(f"labels.csv: line {line}" + (f", field {field}" if field else "") + ": " + problem)
    assert error.details[0]["field"] == field
    assert error.code == "invalid_labels"


def test_a_bad_json_lines_row_is_named_and_every_problem_listed() -> None:
    text = '{"id":"a","label":1}\nnot json\n[1]\n{"id":"b"}\n{"id":"c","label":1,"extra":2}\n{"id":3,"label":9}\n'
    error = _error(text, "x.jsonl")
    assert [(d["row"], d["field"]) for d in error.details] == [(1, None), (2, None), (3, "label"), (4, "extra"), (5, "id"), (5, "label")]
    assert str(error).startswith("x.jsonl: line 2: invalid JSON")
    assert "(and 5 more problem(s))" in str(error)
    assert error.details[3]["problem"].startswith("unknown field")
    assert error.details[2]["problem"] == "required field is missing"


def test_request_rows_are_named_by_their_index() -> None:
    error = _error([{"id": "a", "label": 1}, {"id": "a\n", "label": 1}, "x"], "request")
    assert [(d["row"], d["field"]) for d in error.details] == [(1, "id"), (2, None)]
    assert str(error).startswith("request: row 1, field id: an id holds printable characters only")
    assert parse_labels([], "request", "binary_classification", [0, 1]) == []


def test_at_most_fifty_problems_are_listed() -> None:
    error = _error([{"id": "", "label": 1}] * 80, "request")
    assert len(error.details) == 50


def test_files_that_are_empty_unreadable_or_of_another_kind_are_refused() -> None:
    assert "no label rows" in str(_error("id,label\n"))
    assert "empty file" in str(_error(""))
    assert "no label rows" in str(_error("\n", "x.jsonl"))
    assert "ends in .csv or .jsonl" in str(_error("id,label\n", "labels.parquet"))
    assert "not UTF-8" in str(_error(b"\xff\xfe\x00", "x.csv"))
    assert str(_error('id,label\n"a,1', "x.csv")).startswith("x.csv: line 2: not CSV: unexpected end of data")


def test_a_csv_with_a_byte_order_mark_crlf_and_blank_lines_reads() -> None:
    labels = parse_labels("\ufeff\r\nid,label\r\n\r\na,1\r\n\r\n".encode(), "x.csv", "binary_classification", [0, 1])
    assert labels == [Label("a", 1, None, 0)]


def test_a_classifier_without_classes_keeps_labels_as_given() -> None:
    labels = parse_labels(
        [{"id": "a", "label": "x"}, {"id": "b", "label": 3}, {"id": "c", "label": 2.0}], "request", "binary_classification"
    )
    assert [label.label for label in labels] == ["x", 3, "2"]


def test_the_last_label_of_an_id_wins_across_objects_and_lines() -> None:
    truth = GroundTruth()
    truth.add([Label("a", 0), Label("b", 1), Label("a", 2)], "first")
    truth.add([Label("b", 0)], "second")
    assert {key: label.label for key, label in truth.labels.items()} == {"a": 2, "b": 0}
    assert (truth.rows, truth.replaced, truth.objects) == (4, 2, ["first", "second"])
    assert [truth.labels["a"].order, truth.labels["b"].order] == [2, 3]  # received order, across objects
    merged = merge_labels([[Label("x", 1)], [Label("x", 0)]])
    assert merged.labels["x"].label == 0


def test_keys_sort_in_arrival_order_and_day_prefixes_cover_a_range() -> None:
    early = ground_truth_key("m", datetime(2026, 12, 7, 10, 0, 0, 1, tzinfo=UTC), batch_id="ffff")
    late = ground_truth_key("m", datetime(2026, 12, 7, 10, 0, 0, 2, tzinfo=UTC), batch_id="0000")
    assert early == "ground-truth/m/2026/12/07/20261207T100000000001Z-ffff.jsonl"
    assert early < late
    assert label_format(early) == "jsonl"
    assert label_format("a/b.CSV.gz") == "csv"
    assert label_format("a/b.json") is None
    start, end = datetime(2026, 12, 6, 23, tzinfo=UTC), datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
    assert day_prefixes("m", start, end) == ["ground-truth/m/2026/12/06/", "ground-truth/m/2026/12/07/"]
    with pytest.raises(ValueError, match="must end after"):
        day_prefixes("m", end, start)


def test_written_labels_read_back_as_they_were() -> None:
    labels = [Label("a", 1, datetime(2026, 12, 7, 10, tzinfo=UTC), 0), Label("é", 0, None, 1)]
    assert parse_labels(encode_labels(labels), "x.jsonl", "binary_classification", [0, 1]) == labels


def test_event_times() -> None:
    assert parse_event_time(None) == (None, None)
    assert parse_event_time(5)[1] is not None
    assert parse_event_time("2026-12-07T10:00:00")[0] == datetime(2026, 12, 7, 10, tzinfo=UTC)
