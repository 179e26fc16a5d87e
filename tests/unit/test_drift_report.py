"""The drift report's HTML, read as a reader would: the summary first, statistics with their thresholds, labelled axes.

Results are built by hand so each test shows the case it is about; tests/integration/test_drift_report_browser.py
renders a realistic drift window in a real browser.
"""

from __future__ import annotations

import pytest

from serverless_mlops.drift.check import BEYOND_FLOAT
from serverless_mlops.drift.report import to_html
from serverless_mlops.drift.result import DriftResult, Quality, Window
from tests.helpers.drift_results import categorical, feature, result
from tests.helpers.html_dom import Element, parse


def page(drift: DriftResult) -> Element:
    return parse(to_html(drift).decode())


def card(dom: Element, name: str) -> Element:
    return next(c for c in dom.iter("section", "card") if next(c.iter("h3")).text() == name)


def summary_rows(dom: Element) -> list[Element]:
    table = next(dom.iter("table", "summary"))
    return [row for row in table.iter("tr") if "data-feature" in row.attrs]


def test_the_summary_lists_drifted_features_first_by_effect_size_under_the_total() -> None:
    drift = result(
        feature("small", "drift", effect_size=0.2, p_value=1e-6),
        feature("quiet", effect_size=0.9),  # large but not significant: not drift, listed after every drifted one
        feature("large", "drift", effect_size=1.4, p_value=1e-9),
        feature("none", "insufficient_data", effect_size=None, p_value=None, notes=["12 values of none to compare, at least 100 needed"]),
        feature("tiny", effect_size=0.01),
    )
    dom = page(drift)
    assert [r.attrs["data-feature"] for r in summary_rows(dom)] == ["large", "small", "quiet", "tiny", "none"]
    headline = next(dom.iter("p", "headline")).text()
    assert headline == "Dataset drift: 2 of 4 features drifted (50%, threshold 50%)"
    box = next(dom.iter("section", "verdict-box")).text()
    assert "Drifted, largest effect size first: large (1.4), small (0.2)." in box
    cards = [next(c.iter("h3")).text() for c in dom.iter("section", "card")]
    assert cards == ["large", "small", "quiet", "tiny", "none"]  # the details follow the summary's order


def test_statistic_effect_size_and_p_value_are_shown_with_their_thresholds() -> None:
    drift = result(feature("x", "drift", effect_size=1.0106, p_value=3.1e-71, ks_statistic=0.509), categorical("c", ["a", "b"]))
    dom = page(drift)
    x = card(dom, "x").text()
    assert "KS testD 0.509 · p-value < 1e−16 drift if p < 0.025 (Bonferroni-corrected)" in x
    assert "Wasserstein ÷ std1.011 and drift if ≥ 0.1" in x
    c = card(dom, "c").text()
    assert "chi-square testχ² 12.5 · p-value 0.5" in c
    assert "Jensen-Shannon distance0.05 and drift if ≥ 0.1" in c
    row = summary_rows(dom)[0]
    cells = [td.text() for td in row.iter("td")]
    assert cells[3:5] == ["D 0.509", "< 1e−16"]
    assert "1.011 W÷std" in cells[2]


@pytest.mark.parametrize("p_value", [0.0, 1e-300, 3.1e-71])
def test_p_values_that_underflow_read_below_1e_16_never_zero_and_never_wrap(p_value: float) -> None:
    drift = result(feature("x", "drift", effect_size=1.0, p_value=p_value, chi_square=float("inf")), feature("y"))
    html = to_html(drift).decode()
    assert "0.0000" not in html
    dom = parse(html)
    p_cell = list(summary_rows(dom)[0].iter("td"))[4]
    assert p_cell.text() == "< 1e−16"
    assert "nowrap" in p_cell.classes()
    assert "is too small to tell from 0 in double precision" in next(dom.iter("section", "verdict-box")).text()
    assert "chi-square is infinite" in card(dom, "x").text()  # an infinite statistic says why


def test_numeric_features_show_reference_and_current_summaries_side_by_side_and_label_the_counts() -> None:
    x = card(page(result(feature("x"), feature("y"))), "x")
    stats = next(x.iter("table", "stats"))
    rows = {next(r.iter("th")).text(): [td.text() for td in r.iter("td")] for r in stats.iter("tr") if list(r.iter("td"))}
    assert rows == {
        "reference (training)": ["1.5", "0.5", "0", "1", "1.5", "2", "4"],
        "current": ["2.5", "0.6", "0.5", "2", "2.5", "3", "4.5"],
    }
    assert [th.text() for th in next(stats.iter("thead")).iter("th")] == ["", "mean", "std", "min", "25%", "median", "75%", "max"]
    assert "reference (training sample) 400 · current 300" in x.text()


def test_insufficient_data_shows_the_corrected_threshold_and_the_reason() -> None:
    note = "12 values of z to compare, at least 100 needed"
    starved = feature("z", "insufficient_data", effect_size=None, p_value=None, threshold=0.05, current_rows=12, notes=[note])
    z = card(page(result(feature("x"), feature("y"), starved)), "z").text()
    assert "drift if p < 0.025 (Bonferroni-corrected)" in z  # what x and y were held to, not the uncorrected 0.05
    assert "0.05 " not in z
    assert note in z
    alone = card(page(result(starved, status="insufficient_data")), "z").text()
    assert "KS testnot computed drift if p < —" in alone  # no feature was tested: no corrected threshold to show
    assert note in alone


def test_a_data_quality_line_only_where_its_share_is_above_zero() -> None:
    inside = feature("inside", quality=Quality(out_of_range_share=0.0))
    barely = feature("barely", quality=Quality(out_of_range_share=0.0004, missing_share=0.05))
    dom = page(result(inside, barely))
    assert "out of range" not in card(dom, "inside").text()
    assert "missing 5.0% · out of range < 0.1%" in card(dom, "barely").text()


def test_the_source_is_a_local_file_or_a_window_of_capture_objects() -> None:
    local = next(page(result(feature("x"))).iter("p", "meta")).text()
    assert local.startswith("300 rows from a local file · served by version 1 · generated")
    named = next(page(result(feature("x"), files=["rows.csv"])).iter("p", "meta")).text()
    assert named.startswith("300 rows from rows.csv · served by version 1")
    window = Window(start="2026-11-25T10:00:00Z", end="2026-11-25T11:00:00Z", label="w")
    scheduled = next(page(result(feature("x"), window=window, sources=3)).iter("p", "meta")).text()
    assert scheduled.startswith("window 2026-11-25T10:00:00Z → 2026-11-25T11:00:00Z · 300 rows from 3 capture objects")


def chart_parts(svg: Element) -> dict[str, list[str]]:
    return {cls: [t.own_text() for t in svg.iter("text", cls)] for cls in ("x-tick", "y-tick", "x-title", "y-title", "legend-text")}


def test_numeric_charts_label_the_bin_edges_and_the_share_of_rows() -> None:
    svg = next(card(page(result(feature("x"))), "x").iter("svg"))
    assert svg.attrs["role"] == "img"
    assert svg.attrs["aria-label"] == "x: share of rows per bin, reference (training) and current"
    parts = chart_parts(svg)
    assert parts["x-tick"] == ["0", "1", "2", "3", "4", "< min", "> max"]
    assert parts["y-tick"] == ["0%", "10%", "20%", "30%", "40%"]
    assert parts["y-title"] == ["share of rows"]
    assert parts["x-title"] == ["x: bins of the training range (grey: outside it)"]
    assert parts["legend-text"] == ["reference (training)", "current"]


def test_categorical_charts_label_every_category() -> None:
    labels = [f"c{i:02d}" for i in range(19)] + ["a-very-long-category-name-indeed", "(other)"]
    svg = next(card(page(result(categorical("city", labels), feature("x"))), "city").iter("svg"))
    ticks = list(svg.iter("text", "x-tick"))
    assert [t.own_text() for t in ticks] == [*labels[:19], "a-very-l…-indeed", "(other)"]
    assert next(ticks[19].iter("title")).text() == "a-very-long-category-name-indeed"  # the whole name on hover
    assert all("rotate(-40" in t.attrs["transform"] for t in ticks)  # 21 names do not fit side by side
    assert chart_parts(svg)["x-title"] == ["city: category (the rest as “(other)”)"]


def test_the_distances_rule_shows_distances_against_their_threshold_and_no_p_values() -> None:
    x = feature("x", "drift", test="wasserstein_norm", effect=None, effect_size=None, effect_threshold=None, p_value=None, statistic=0.3)
    x = x.model_copy(update={"wasserstein_norm": 0.3, "threshold": 0.1})
    dom = page(result(x, feature("y", effect=None, effect_threshold=None, p_value=None), method="distances", correction="none"))
    head = [th.text() for th in next(dom.iter("table", "summary")).iter("th")]
    assert "distancedrift if ≥ 0.1" in head
    assert not any(h.startswith("p-value") for h in head)
    assert "Wasserstein ÷ std0.3 drift if ≥ 0.1" in card(dom, "x").text()


def test_an_effect_beyond_the_float_range_is_the_largest_and_says_why() -> None:
    note = BEYOND_FLOAT.format(statistic="wasserstein_norm", name="huge")
    huge = feature("huge", "drift", effect_size=None, p_value=1e-9, wasserstein_norm=None, notes=[note])
    dom = page(result(feature("large", "drift", effect_size=1.4, p_value=1e-9), huge))
    rows = summary_rows(dom)
    assert [r.attrs["data-feature"] for r in rows] == ["huge", "large"]
    cells = [td.text() for td in rows[0].iter("td")]
    assert cells[1] == f"drift{note}"
    assert cells[2].startswith("∞ W÷std")
    assert f"note{note}" in card(dom, "huge").text()
