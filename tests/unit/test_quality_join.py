"""Joining labels to captured predictions: the delay window, duplicates, unknown ids, versions kept apart, bad sources;
and the spec's quality section."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from serverless_mlops.drift.result import Window
from serverless_mlops.errors import SpecError
from serverless_mlops.model.quality_spec import Quality, parse_duration
from serverless_mlops.model.spec import ModelSpec
from serverless_mlops.quality.check import check_quality
from serverless_mlops.quality.join import Joiner
from serverless_mlops.quality.labels import GroundTruth, Label
from serverless_mlops.quality.result import NO_CALIBRATION, NO_PROBABILITIES
from serverless_mlops.store.capture_format import timestamp

START = datetime(2026, 12, 1, tzinfo=UTC)
END = START + timedelta(days=7)
DAY = timedelta(days=1)


def row(
    pid: str | None, when: datetime, version: int = 1, prediction: Any = "1", probabilities: list[float] | None = None, **extra: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {"ts": timestamp(when), "model": "m", "version": version, "features": {"x": 1.0}, "prediction": prediction}
    if pid is not None:
        found["id"] = pid
    if probabilities is not None:
        found["probabilities"] = probabilities
    return found | extra


def truth(*labels: tuple[str, Any, datetime | None]) -> dict[str, Label]:
    gt = GroundTruth()
    gt.add([Label(pid, label, when) for pid, label, when in labels], "test")
    return gt.labels


def joiner(labels: dict[str, Label], **kwargs: Any) -> Joiner:
    return Joiner(
        labels, start=START, end=END, label_delay=kwargs.pop("delay", 2 * DAY), classes=kwargs.pop("classes", ["0", "1"]), **kwargs
    )


def test_labels_before_inside_and_after_the_delay_window() -> None:
    made = START + DAY
    labels = truth(
        ("before", "1", made - timedelta(seconds=1)),
        ("at", "1", made),
        ("inside", "0", made + DAY),
        ("edge", "1", made + 2 * DAY),
        ("late", "1", made + 2 * DAY + timedelta(seconds=1)),
        ("untimed", "1", None),
    )
    j = joiner(labels)
    j.add_rows([row(pid, made) for pid in ("before", "at", "inside", "edge", "late", "untimed")])
    joined = j.result()
    assert (joined.counts.joined, joined.counts.before_prediction, joined.counts.late) == (4, 1, 1)
    assert joined.versions[1].labelled.truth == ["1", "0", "1", "1"]
    assert joined.versions[1].predictions == 6


def test_last_label_wins_unknown_ids_are_counted_and_duplicate_predictions_keep_the_latest() -> None:
    made = START + DAY
    gt = GroundTruth()
    gt.add([Label("a", "0", None), Label("nobody", "1", None)], "first")
    gt.add([Label("a", "1", None)], "second")  # a correction: the last label wins
    j = joiner(gt.labels)
    j.add_rows([row("a", made, prediction="0"), row("a", made + timedelta(hours=1), prediction="1"), row(None, made)])
    joined = j.result()
    assert joined.counts.labels == 2
    assert joined.counts.unmatched == 1  # "nobody" names no captured prediction: counted, not an error
    assert joined.counts.duplicate_predictions == 1
    assert joined.counts.predictions_without_id == 1
    assert joined.versions[1].labelled.truth == ["1"]
    assert joined.versions[1].labelled.predicted == ["1"]  # the later captured row


def test_rows_outside_the_window_do_not_count() -> None:
    labels = truth(("early", "1", None), ("in", "1", None), ("end", "1", None))
    j = joiner(labels)
    j.add_rows([row("early", START - timedelta(seconds=1)), row("in", START), row("end", END)])
    joined = j.result()
    assert joined.versions[1].predictions == 1
    assert joined.counts.joined == 1
    assert joined.counts.unmatched == 2


def test_two_versions_in_one_window_keep_their_own_metrics() -> None:
    made = START + DAY
    rows, labels = [], []
    for i in range(300):
        rows.append(row(f"v1-{i}", made, version=1, prediction="1", probabilities=[0.2, 0.8]))
        labels.append((f"v1-{i}", "1", None))  # version 1 always right
        rows.append(row(f"v2-{i}", made, version=2, prediction="1", probabilities=[0.3, 0.7]))
        labels.append((f"v2-{i}", "1" if i % 2 else "0", None))  # version 2 right half the time
    j = joiner(truth(*labels))
    j.add_rows(rows)
    joined = j.result()
    assert joined.probabilities == "captured"
    window = Window(start=timestamp(START), end=timestamp(END), label="w")
    config = Quality(min_labels=100, floors={"accuracy": 0.9})
    result = check_quality(
        joined,
        model="m",
        task="binary_classification",
        window=window,
        generated_at="now",
        config=config,
        classes=["0", "1"],
        calibrations={},
        holdouts={1: {"accuracy": 0.95}, 2: {"accuracy": 0.95}},
    )
    one, two = result.versions
    assert (one.version, one.realized["accuracy"], one.status, one.coverage) == (1, 1.0, "ok", 1.0)
    assert (two.version, two.realized["accuracy"], two.status) == (2, 0.5, "breach")
    assert [b.metric for b in two.breaches] == ["accuracy"]
    assert result.status == "breach"
    assert NO_CALIBRATION in two.notes  # no calibration stored: estimates are not made up
    assert two.estimated == {}


def test_too_few_labels_is_insufficient_never_a_breach() -> None:
    made = START + DAY
    j = joiner(truth(*[(f"p{i}", "0", None) for i in range(5)]))
    j.add_rows([row(f"p{i}", made, prediction="1", probabilities=[0.1, 0.9]) for i in range(5)])
    window = Window(start=timestamp(START), end=timestamp(END), label="w")
    result = check_quality(
        j.result(),
        model="m",
        task="binary_classification",
        window=window,
        generated_at="now",
        config=Quality(min_labels=10, floors={"accuracy": 0.9}),
        classes=["0", "1"],
        calibrations={},
        holdouts={},
    )
    (only,) = result.versions
    assert only.realized["accuracy"] == 0.0
    assert only.status == result.status == "insufficient_labels"
    assert only.breaches == []


def test_probabilities_are_recomputed_by_the_scorer_when_the_capture_has_none() -> None:
    made = START + DAY
    calls: list[tuple[int, list[dict[str, Any]]]] = []

    def scorer(version: int, records: Any) -> np.ndarray:
        calls.append((version, list(records)))
        return np.tile([0.25, 0.75], (len(records), 1))

    j = joiner(truth(("a", "1", None)), scorer=scorer)
    j.add_rows([row("a", made), row("b", made, version=2)])
    joined = j.result()
    assert joined.probabilities == "recomputed"
    assert [v for v, _ in calls] == [1, 2]
    assert calls[0][1] == [{"x": 1.0}]
    assert joined.versions[1].labelled.probabilities[0].tolist() == [0.25, 0.75]
    no_scorer = joiner(truth(("a", "1", None)))
    no_scorer.add_rows([row("a", made)])
    result = check_quality(
        no_scorer.result(),
        model="m",
        task="binary_classification",
        window=Window(start="s", end="e", label="w"),
        generated_at="now",
        config=Quality(min_labels=1),
        classes=["0", "1"],
        calibrations={},
        holdouts={},
    )
    assert NO_PROBABILITIES in result.versions[0].notes


def test_an_unreadable_capture_object_is_skipped_whole_and_named() -> None:
    made = START + DAY
    j = joiner(truth(("a", "1", None), ("b", "1", None)))
    good = gzip.compress(json.dumps(row("a", made, probabilities=[0.5, 0.5])).encode() + b"\n")
    bad = gzip.compress(json.dumps(row("b", made)).encode() + b"\n{not json\n")
    j.add_stream(io.BytesIO(good), "s3://b/good.jsonl.gz")
    j.add_stream(io.BytesIO(bad), "s3://b/bad.jsonl.gz")
    joined = j.result()
    assert joined.sources == ["s3://b/good.jsonl.gz"]
    assert [s.source for s in joined.skipped] == ["s3://b/bad.jsonl.gz"]
    assert joined.versions[1].predictions == 1
    assert joined.counts.joined == 1


def test_regression_rows_join_by_value() -> None:
    made = START + DAY
    j = joiner(truth(*[(f"p{i}", float(i), None) for i in range(20)]), classes=None)
    j.add_rows([row(f"p{i}", made, prediction=float(i) + 1.0) for i in range(20)])
    window = Window(start="s", end="e", label="w")
    result = check_quality(
        j.result(),
        model="m",
        task="regression",
        window=window,
        generated_at="now",
        config=Quality(min_labels=10, floors={"mae": 0.5}),
        classes=None,
        calibrations={},
        holdouts={},
    )
    (only,) = result.versions
    assert only.realized["bias"] == pytest.approx(1.0)
    assert only.realized["mae"] == pytest.approx(1.0)
    assert only.status == "breach"
    assert result.estimation == "not_estimated"


def test_quality_section_durations_and_metrics_fit_the_task() -> None:
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration(" 12h ") == timedelta(hours=12)
    assert parse_duration("30m") == timedelta(minutes=30)
    for bad in ("0d", "7 weeks", "", "-1h"):
        with pytest.raises(ValueError, match="expected a positive duration"):
            parse_duration(bad)
    with pytest.raises(ValidationError, match="label_delay"):
        Quality(label_delay="soon")
    with pytest.raises(ValidationError, match="schedule"):
        Quality(schedule="every day")
    Quality(floors={"rmse": 3.0}).check_task(classification=False)
    with pytest.raises(SpecError, match=r"quality\.max_drop\.rmse: a classifier has no such metric"):
        Quality(max_drop={"rmse": 3.0}).check_task(classification=True)
    assert ModelSpec.model_fields["quality"].default == Quality()
