"""The ground-truth fast path (columns decoded at once, each distinct label read once) gives exactly what the row-by-row
path gives on valid files, and hands every file with a problem to the row-by-row path, whose messages name the line."""

from __future__ import annotations

import functools
import json
import random

import pytest

from serverless_mlops.quality import label_rows
from serverless_mlops.quality.label_rows import LabelsError, parse_labels

PIECES = label_rows._pieces


def _slow(monkeypatch: pytest.MonkeyPatch, data: str, source: str, task: str, classes: list[object] | None) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(label_rows, "_fast_labels", lambda *args, **kwargs: None)
        return parse_labels(data, source, task, classes)  # type: ignore[arg-type]


def _no_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the row-by-row path ran on a valid file")

    monkeypatch.setattr(label_rows, "_check_rows", refuse)


CASES = [
    ("binary_classification", [0, 1], lambda r: r.choice([0, 1, 1.0, "1", " 0 "])),
    ("multiclass_classification", ["cat", "dog"], lambda r: r.choice(["cat", "dog", " dog"])),
    ("multiclass_classification", None, lambda r: r.choice(["a", 2, 2.0, 2.5])),
    ("regression", None, lambda r: r.choice([1, 2.5, "3.25", -7])),
]


@pytest.mark.parametrize(("task", "classes", "draw"), CASES)
def test_jsonl_fast_path_equals_row_by_row(monkeypatch: pytest.MonkeyPatch, task: str, classes: list[object] | None, draw: object) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(300):
        row: dict[str, object] = {"id": f"req-{i % 250}", "label": draw(rng)}  # type: ignore[operator]
        if i % 3 == 0:
            row["event_time"] = rng.choice(["2026-12-07T10:15:00Z", "2026-12-07", "", None, "2026-12-07T11:15:00+01:00"])
        rows.append(json.dumps(row))
    text = "\n".join(rows[:150]) + "\n\n" + "\r\n".join(rows[150:]) + "\n"
    expected = _slow(monkeypatch, text, "l.jsonl", task, classes)
    _no_slow(monkeypatch)
    assert parse_labels(text, "l.jsonl", task, classes) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("with_time", [True, False])
def test_csv_fast_path_equals_row_by_row(monkeypatch: pytest.MonkeyPatch, with_time: bool) -> None:
    header = "id, label, event_time" if with_time else "id,label"
    lines = [header] + [
        f"r{i},{'dog' if i % 2 else ' cat'}" + (",2026-12-07T10:00:00Z" if with_time and i % 2 else "," if with_time else "")
        for i in range(40)
    ]
    text = "\r\n".join(lines) + "\r\n\r\n"
    expected = _slow(monkeypatch, text, "l.csv", "multiclass_classification", ["cat", "dog"])
    _no_slow(monkeypatch)
    assert parse_labels(text, "l.csv", "multiclass_classification", ["cat", "dog"]) == expected
    assert len(expected) == 40  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"id":"a","label":1}\n{"id":"b","label":7}\n', "line 2, field label"),  # not a class
        ('{"id":"a","label":1}\n{"id":"b","label":true}\n', "line 2, field label"),  # not a string or number
        ('{"id":"a","label":1}\n{"id":"","label":1}\n', "line 2, field id"),
        ('{"id":"a","label":1}\n{"id":"' + "x" * 129 + '","label":1}\n', "line 2, field id"),
        ('{"id":"a","label":1}\n{"id":"b\\tc","label":1}\n', "line 2, field id"),
        ('{"id":"a","label":1}\n{"id":"b","label":1,"extra":2}\n', "line 2, field extra"),
        ('{"id":"a","label":1}\n{"id":"b","label":1,"event_time":"yesterday"}\n', "line 2, field event_time"),
        ('{"id":"a","label":1}\n{"id":"b","label":1}, {"id":"c","label":1}\n', "line 2"),  # two objects on one line
        ('{"id":"a",\n"label":1}\n', "line 1"),  # one object over two lines
        ('{"id":"a","label":1}\n{"id":"b","label":null}\n', "line 2, field label"),
        ('{"id":"a","label":1}\n[1]\n', "line 2"),
        ("", "no label rows"),
    ],
)
def test_jsonl_problems_take_the_path_that_names_them(text: str, where: str) -> None:
    with pytest.raises(LabelsError) as raised:
        parse_labels(text, "l.jsonl", "binary_classification", [0, 1])
    assert where in str(raised.value)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("id,label\na,1\nb,3\n", "line 3, field label"),
        ("id,label\na,1\nb\n", "line 3"),  # wrong width
        ("label,id\n1,a\n2,b\n", "line 3, field label"),  # columns in another order: the row-by-row path
        ("id,label,event_time\na,1,\nb,1,soon\n", "line 3, field event_time"),
        ("id,label\n", "no label rows"),
        ('id,label\na,"1\n', "not CSV"),
    ],
)
def test_csv_problems_take_the_path_that_names_them(text: str, where: str) -> None:
    with pytest.raises(LabelsError) as raised:
        parse_labels(text, "l.csv", "binary_classification", [0, 1])
    assert where in str(raised.value)


@pytest.mark.parametrize("size", [1, 5, 40, 1 << 18])
def test_jsonl_pieces_split_into_the_lines_of_the_whole_text(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """The fast path decodes a piece of the text at a time (not every line's string and row at once): cut just after a
    line feed, the pieces' lines are the whole text's, \\r\\n pairs and other line ends included."""
    texts = ["", "a", "a\n", "a\r\nb\rc\u2028d\n\ne", "\n\n", "x" * 50 + "\r\n" + "y" * 7]
    for text in texts:
        pieces = list(PIECES(text, size))
        assert "".join(pieces) == text
        assert [line for piece in pieces for line in piece.splitlines()] == text.splitlines()
    rows = [json.dumps({"id": f"req-{i}", "label": i % 2}) for i in range(40)]
    text = "\n".join(rows[:20]) + "\n\n" + "\r\n".join(rows[20:])
    expected = _slow(monkeypatch, text, "l.jsonl", "binary_classification", [0, 1])
    monkeypatch.setattr(label_rows, "_pieces", functools.partial(PIECES, size=size))
    _no_slow(monkeypatch)
    assert parse_labels(text, "l.jsonl", "binary_classification", [0, 1]) == expected
