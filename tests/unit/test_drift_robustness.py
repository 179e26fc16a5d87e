"""Drift you can trust: degenerate windows give a report, a metric and a reason, never a crash nor a non-finite number.

NaN, ±inf, numbers beyond the float range, unseen categories, constant, empty and absent columns, 0 and 1 rows go
through the capture reader and ``check_drift`` → ``report.to_json`` (strict JSON) → ``report.to_html`` → the drift
Lambda's ``emit_metrics``. A property test draws such windows (seeded, a fixed budget of examples).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.drift_check import app
from serverless_mlops.drift import stats
from serverless_mlops.drift.capture_reader import CaptureReader, Column, CurrentData
from serverless_mlops.drift.check import ABSENT, ALL_MISSING, BEYOND_FLOAT, INFINITE, NOT_FINITE, TOO_FEW, check_drift
from serverless_mlops.drift.report import to_html, to_json
from serverless_mlops.drift.result import DriftResult, FeatureResult
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.profile import build_profile
from serverless_mlops.model.spec import Drift
from serverless_mlops.store.capture_format import encode_records
from tests.helpers.drift_data import current_from, fresh_sample, profile_of, records_for

KINDS = {"x": "numeric", "y": "numeric", "colour": "categorical"}
COLOURS = np.array(["red", "green", "blue"])


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} in JSON")


def strict_json(data: bytes | str) -> Any:
    """JSON that must hold only finite numbers: NaN and Infinity are errors, not values."""
    return json.loads(data, parse_constant=_reject_constant)


def numbers(document: Any) -> list[float]:
    if isinstance(document, dict):
        return [n for value in document.values() for n in numbers(value)]
    if isinstance(document, list):
        return [n for value in document for n in numbers(value)]
    return [float(document)] if isinstance(document, int | float) and not isinstance(document, bool) else []


def metrics_of(result: DriftResult) -> list[dict[str, Any]]:
    """What the drift Lambda publishes for ``result``: its EMF records, strictly parsed."""
    out = io.StringIO()
    metrics = app.obs.metrics
    try:
        with contextlib.redirect_stdout(out):
            app.emit_metrics(result)  # DriftScore records print at once; the rest wait for the handler's flush
        records = [metrics.serialize_metric_set()]
    finally:
        metrics.clear_metrics()
    records += [strict_json(line) for line in out.getvalue().splitlines() if line.startswith('{"_aws"')]
    return [strict_json(json.dumps(record)) for record in records]


def publish(result: DriftResult) -> dict[str, Any]:
    """Everything downstream of the check; returns the JSON report after asserting all its numbers are finite."""
    document = strict_json(to_json(result))
    assert all(math.isfinite(n) for n in numbers(document))
    assert DriftResult.model_validate(document).features == result.features
    assert to_html(result).startswith(b"<!doctype html>")
    for record in metrics_of(result):
        assert all(math.isfinite(n) for n in numbers(record))
    return document


def reference_profile(seed: int = 0, rows: int = 400) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    columns = {"x": rng.normal(50, 10, rows), "y": rng.normal(0, 1, rows), "colour": COLOURS[rng.integers(0, 3, rows)]}
    return build_profile(columns, KINDS, rng.normal(size=rows), "numeric", seed=seed)


def capture(lines: list[dict[str, Any]]) -> CurrentData:
    """Rows as a capture object holds them, NaN and Infinity written as the JSON extensions Python reads back."""
    reader = CaptureReader(KINDS, "numeric")
    reader.add(io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode()), "mem://capture.jsonl")
    assert reader.result.skipped == []
    return reader.result


def line(i: int, features: dict[str, Any], prediction: Any = 0.0) -> dict[str, Any]:
    return {"ts": f"2026-11-25T10:00:{i % 60:02d}.000Z", "model": "m", "version": 1, "features": features, "prediction": prediction}


def check(current: CurrentData, config: Drift | None = None, profile: dict[str, Any] | None = None) -> DriftResult:
    return check_drift(profile or reference_profile(), config or Drift(), current, model="m", version=1, window=None, generated_at="t")


def feature(result: DriftResult, name: str) -> FeatureResult:
    return next(f for f in result.features if f.name == name)


# -- the capture reader ---------------------------------------------------------------------------------------
def test_the_reader_tells_an_absent_key_from_a_null_value() -> None:
    rows = [line(i, {"x": 1.0, "y": None, "colour": "red"}) for i in range(4)]
    del rows[0]["features"]["x"], rows[1]["features"]["x"], rows[2]["features"]["colour"]
    current = capture(rows)
    x, y, colour = (current.columns[name] for name in ("x", "y", "colour"))
    assert (x.missing, x.absent) == (2, 2)
    assert (y.missing, y.absent) == (4, 0)
    assert (colour.missing, colour.absent) == (1, 1)
    assert np.isnan(x.values()).tolist() == [True, True, False, False]


def test_the_reader_keeps_numbers_beyond_the_float_range_as_infinities_and_never_fails_on_odd_values() -> None:
    text = (
        '{"ts":"t","model":"m","version":1,"features":{"x":1e999,"y":-Infinity,"colour":[1,2]},"prediction":1}\n'
        '{"ts":"t","model":"m","version":1,"features":{"x":' + "9" * 400 + ',"y":NaN,"colour":{"a":1}},"prediction":1}\n'
        '{"ts":"t","model":"m","version":1,"features":{"x":"abc","y":2.0,"colour":NaN},"prediction":1}\n'
    )
    reader = CaptureReader(KINDS, "numeric")
    reader.add(io.BytesIO(text.encode()), "odd")
    assert reader.result.skipped == []
    x, y, colour = (reader.result.columns[name] for name in ("x", "y", "colour"))
    assert x.values()[:2].tolist() == [math.inf, math.inf]
    assert (x.missing, y.missing) == (1, 1)
    assert y.values()[0] == -math.inf
    assert colour.counts == {"[1, 2]": 1, '{"a": 1}': 1}
    assert colour.missing == 1  # NaN is missing, not a category named "NaN"


# -- the check ------------------------------------------------------------------------------------------------
def test_infinities_count_as_out_of_range_and_stay_out_of_the_statistics() -> None:
    rng = np.random.default_rng(1)
    values = [float(v) for v in rng.normal(50, 10, 200)]
    clean = check(capture([line(i, {"x": v, "y": 0.5, "colour": "red"}) for i, v in enumerate(values)]))
    values[:30] = [math.inf] * 20 + [-math.inf] * 10
    result = check(capture([line(i, {"x": v, "y": 0.5, "colour": "red"}) for i, v in enumerate(values)]))
    x = feature(result, "x")
    assert 30 / 200 <= x.quality.out_of_range_share <= 30 / 200 + feature(clean, "x").quality.out_of_range_share
    assert x.quality.missing_share == 0.0
    assert x.current_rows == 170
    assert INFINITE.format(n=30, name="x") in x.notes
    assert x.histogram.current[0] >= 10 / 200  # -inf: below the training minimum
    assert x.histogram.current[-1] >= 20 / 200
    assert x.current_summary is not None
    assert x.current_summary.max is not None
    assert math.isfinite(x.current_summary.max)
    assert x.verdict == "no_drift"  # 170 draws of the training distribution
    assert any(f.feature == "x" and f.problem == "out_of_range" for f in result.data_quality)
    publish(result)


def test_missing_values_are_data_and_the_verdict_uses_the_present_ones() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(50, 10, 300)
    values[::3] = np.nan  # a third missing, in a CurrentData built directly (NaN in the column, missing not counted)
    shifted = values + 15.0
    for column, verdict in ((values, "no_drift"), (shifted, "drift")):
        current = CurrentData(
            rows=300,
            columns={
                "x": Column("numeric", parts=[column]),
                "y": Column("numeric", parts=[rng.normal(0, 1, 300)]),
                "colour": Column("categorical", counts=Counter({"red": 100, "green": 100, "blue": 100})),
            },
            prediction=Column("numeric", parts=[rng.normal(size=300)]),
            versions={},
            sources=[],
            skipped=[],
        )
        x = feature(check(current), "x")
        assert x.quality.missing_share == pytest.approx(1 / 3)
        assert x.current_rows == 200
        assert x.verdict == verdict
        assert x.notes == []


@pytest.mark.parametrize("how", ["capture", "no column", "csv"])
def test_a_feature_absent_from_every_row_is_insufficient_data_and_a_finding_in_the_same_words(how: str) -> None:
    rng = np.random.default_rng(3)
    rows = [line(i, {"x": float(v), "colour": "red"}) for i, v in enumerate(rng.normal(50, 10, 150))]  # no "y" anywhere
    current = capture(rows)
    if how == "no column":
        del current.columns["y"]
    elif how == "csv":  # how serverless_mlops.drift.instances builds a column the file lacks: counts, no values
        current.columns["y"] = Column("numeric", missing=150, absent=150)
    result = check(current)
    y = feature(result, "y")
    note = ABSENT.format(name="y")
    assert note == "column y is absent from the window"
    assert (y.verdict, y.notes, y.statistic) == ("insufficient_data", [note], None)
    assert y.quality.missing_share == 1.0
    [finding] = [f for f in result.data_quality if f.feature == "y"]
    assert (finding.problem, finding.share, finding.detail) == ("absent_column", 1.0, note)
    assert result.checked_features == 2  # x and colour still checked
    assert note in publish(result)["features"][1]["notes"]


def test_a_feature_whose_every_value_is_missing_says_so() -> None:
    rows = [line(i, {"x": 50.0, "y": None, "colour": None}) for i in range(120)]
    rows[0]["features"]["y"] = math.nan
    del rows[1]["features"]["colour"]  # absent from one row, null in the rest: all missing, not absent
    result = check(capture(rows))
    for name in ("y", "colour"):
        note = ALL_MISSING.format(n=120, name=name)
        assert note == f"all 120 values of {name} are missing"
        assert feature(result, name).verdict == "insufficient_data"
        assert feature(result, name).notes == [note]
        [finding] = [f for f in result.data_quality if f.feature == name]
        assert (finding.problem, finding.detail) == ("missing_values", note)
    publish(result)


def test_too_few_rows_and_an_empty_window_have_reasons_and_valid_reports() -> None:
    one = check(capture([line(0, {"x": 50.0, "y": 0.0, "colour": "red"})]))
    assert feature(one, "x").notes == [TOO_FEW.format(n=1, name="x", min_rows=100)]
    empty = check(CurrentData(rows=0, columns={}, prediction=Column("numeric"), versions={}, sources=[], skipped=[]))
    assert empty.status == "insufficient_data"
    assert empty.data_quality == []
    assert all(f.notes == [TOO_FEW.format(n=0, name=f.name, min_rows=100)] for f in empty.features)
    for result in (one, empty):
        publish(result)


def test_values_near_the_float_limit_give_finite_summaries_and_a_large_effect() -> None:
    rng = np.random.default_rng(4)
    constant = build_profile(
        {"x": np.full(300, 5.0), "y": rng.normal(size=300), "colour": COLOURS[rng.integers(0, 3, 300)]},
        KINDS,
        rng.normal(size=300),
        "numeric",
    )
    huge = [1.7e308, -1.7e308] * 100
    for rule in ("significant_and_large", "evidently"):
        result = check(capture([line(i, {"x": v, "y": 0.0, "colour": "red"}) for i, v in enumerate(huge)]), Drift(rule=rule), constant)
        x = feature(result, "x")
        assert x.verdict == "drift"
        assert x.wasserstein_norm is None
        assert x.notes == [BEYOND_FLOAT.format(statistic="wasserstein_norm", name="x")]
        assert x.current_summary is not None
        assert x.current_summary.std == pytest.approx(1.7e308)
        assert x.current_summary.mean == 0.0
        publish(result)


def test_a_statistic_that_is_not_finite_is_null_with_a_note_and_no_verdict_rests_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last guard (nothing known reaches it): a NaN from a statistic is null in JSON, and the feature undecided."""
    monkeypatch.setattr(stats, "jensenshannon", lambda p, q: math.nan)
    rows = [line(i, {"x": 50.0 + i % 7, "y": 0.0, "colour": "red"}) for i in range(150)]
    result = check(capture(rows))
    colour = feature(result, "colour")
    assert colour.verdict == "insufficient_data"
    assert (colour.jensen_shannon, colour.effect_size) == (None, None)
    assert colour.p_value is not None  # the test itself ran
    assert colour.notes == [NOT_FINITE.format(statistic=s, name="colour") for s in ("effect_size", "jensen_shannon")]
    assert result.checked_features == 2
    publish(result)


def test_the_issue_reproducer_an_unseen_category_on_half_the_rows(trained_models: dict[str, TrainedModel]) -> None:
    """Diabetes, 200 rows, sex "c" (training has a and b) on 100 of them: a report, a metric, no crash."""
    trained = trained_models["diabetes"]
    records = records_for(trained, fresh_sample("diabetes", 200, seed=6))  # the model's predictions (it refuses "c")
    for record in records[:100]:
        record["features"]["sex"] = "c"
    profile = profile_of(trained)
    current = current_from(profile, ("mem://capture.jsonl.gz", encode_records(records)))
    config = Drift.model_validate(trained.record.spec.get("drift", {}))
    result = check_drift(profile, config, current, model="diabetes", version=1, window=None, generated_at="t")
    sex = feature(result, "sex")
    assert sex.verdict == "drift"
    assert sex.chi_square is not None
    assert math.isfinite(sex.chi_square)
    assert sex.p_value is not None
    assert sex.p_value < 1e-10
    [unseen] = [f for f in result.data_quality if (f.feature, f.problem) == ("sex", "unseen_categories")]
    assert unseen.share == pytest.approx(0.5)
    publish(result)
    records = metrics_of(result)
    assert any(r.get("feature") == "sex" and "DriftScore" in r for r in records)
    assert any(r.get("RowsChecked") in (200, 200.0, [200.0]) for r in records)


# -- the property ---------------------------------------------------------------------------------------------
ODD = [math.nan, math.inf, -math.inf, 1.7e308, -1.7e308, 5e-324, 0.0, -0.0]
ODD_NUMBERS = st.sampled_from(ODD) | st.floats(allow_nan=True, allow_infinity=True)
ODD_LABELS = st.sampled_from(["red", "green", "blue", "unseen", "", "ünïcode"]) | st.none()
MODES = ["normal", "constant", "odd", "missing", "absent", "empty"]


def _values(draw: st.DrawFn, rng: np.random.Generator, kind: str, mode: str, rows: int) -> list[Any] | None:
    """One column of a window: None when absent from every row; ``empty``: no row has the key either (the capture
    path) or the column holds no value for any row (built directly)."""
    if mode == "absent":
        return None
    if mode in ("empty", "missing"):
        return [] if mode == "empty" else [None] * rows
    if mode == "odd":
        return draw(st.lists(ODD_NUMBERS | st.none() if kind == "numeric" else ODD_LABELS, min_size=rows, max_size=rows))
    if kind == "numeric":
        return [float(v) for v in rng.normal(50, 10, rows)] if mode == "normal" else [3.0] * rows
    return [str(c) for c in COLOURS[rng.integers(0, 3, rows)]] if mode == "normal" else ["purple"] * rows


@st.composite
def windows(draw: st.DrawFn) -> tuple[dict[str, Any], Drift, CurrentData]:
    seed = draw(st.integers(0, 3))
    rng = np.random.default_rng(seed)
    reference_rows = draw(st.sampled_from([1, 2, 40]))
    x = draw(st.sampled_from(["normal", "constant", "missing"]))  # a reference with every value missing has no sample
    columns = {
        "x": {
            "normal": rng.normal(50, 10, reference_rows),
            "constant": np.full(reference_rows, 7.0),
            "missing": np.full(reference_rows, np.nan),
        }[x],
        "y": rng.normal(0, 1, reference_rows),
        "colour": COLOURS[rng.integers(0, draw(st.sampled_from([1, 3])), reference_rows)],
    }
    prediction_kind = draw(st.sampled_from(["numeric", "categorical"]))
    predictions = rng.normal(size=reference_rows) if prediction_kind == "numeric" else COLOURS[rng.integers(0, 2, reference_rows)]
    profile = build_profile(columns, KINDS, predictions, prediction_kind, seed=seed)
    config = Drift(
        min_rows=draw(st.sampled_from([1, 2, 100])),
        rule=draw(st.sampled_from(["significant_and_large", "evidently"])),
        reference_size_cutoff=draw(st.sampled_from([1, 1000])),
    )
    rows = draw(st.sampled_from([0, 1, 2, 7, 120]))
    values = {name: _values(draw, rng, kind, draw(st.sampled_from(MODES)), rows) for name, kind in KINDS.items()}
    prediction = (
        draw(st.lists(ODD_NUMBERS | st.none(), min_size=rows, max_size=rows))
        if prediction_kind == "numeric"
        else draw(st.lists(st.sampled_from(["red", "green", "teal"]) | st.none(), min_size=rows, max_size=rows))
    )
    if draw(st.booleans()):  # through the capture reader, as the Lambda reads a window
        lines = []
        for i in range(rows):
            features = {name: column[i] for name, column in values.items() if column is not None and i < len(column)}
            lines.append(line(i, features, prediction[i]))
        reader = CaptureReader(KINDS, prediction_kind)
        reader.add(io.BytesIO("".join(json.dumps(row) + "\n" for row in lines).encode()), "mem://window.jsonl")
        assert reader.result.skipped == []
        return profile, config, reader.result
    built: dict[str, Column] = {}  # built directly, as the simulation and the CSV path build columns
    for name, column in values.items():
        if column is None:
            if draw(st.booleans()):
                built[name] = Column(KINDS[name], missing=rows, absent=rows)
            continue
        if KINDS[name] == "numeric":
            built[name] = Column("numeric", parts=[np.array([math.nan if v is None else v for v in column], dtype=np.float64)])
        else:
            built[name] = Column("categorical", missing=sum(v is None for v in column))
            built[name].counts.update(v for v in column if v is not None)
    if prediction_kind == "numeric":
        predicted = Column("numeric", parts=[np.array([math.nan if v is None else v for v in prediction], dtype=np.float64)])
    else:
        predicted = Column("categorical", missing=sum(v is None for v in prediction))
        predicted.counts.update(v for v in prediction if v is not None)
    return profile, config, CurrentData(rows=rows, columns=built, prediction=predicted, versions={}, sources=[], skipped=[])


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(windows())
def test_any_window_gives_a_finite_report_html_and_metrics(window: tuple[dict[str, Any], Drift, CurrentData]) -> None:
    profile, config, current = window
    result = check_drift(profile, config, current, model="m", version=1, window=None, generated_at="t")
    document = publish(result)
    assert len(document["features"]) == len(KINDS)
    for f in [*result.features, result.prediction]:
        assert f is not None
        if f.verdict == "insufficient_data":
            assert f.notes, f  # every missing verdict has its reason
        elif f.statistic is None:
            assert BEYOND_FLOAT.format(statistic="wasserstein_norm", name=f.name) in f.notes, f
        if ABSENT.format(name=f.name) in f.notes and f.name != "prediction":
            assert any(q.feature == f.name and q.detail == ABSENT.format(name=f.name) for q in result.data_quality)
    for q in result.data_quality:
        assert 0.0 <= q.share <= 1.0
