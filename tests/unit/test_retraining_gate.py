"""The promotion gate: better / worse / tie / no champion / champion that cannot score / floor / min_improvement, for
metrics where higher is better (roc_auc) and where lower is better (rmse)."""

from __future__ import annotations

import pytest

from serverless_mlops.model.spec import Metric
from serverless_mlops.retraining.gate import GateResult, decide, decide_with_recent, holds


def test_better_candidate_passes_with_the_metric_change_in_the_reason() -> None:
    result = decide(Metric.ROC_AUC, 0.9934, champion_version=3, champion_value=0.9871, min_improvement=0.001, floor=0.95)
    assert result.passed
    assert result.improvement == pytest.approx(0.0063)
    assert result.reason == "roc_auc 0.9934 beats champion v3 (0.9871) by 0.0063 ≥ 0.001 and clears floor 0.95"


def test_improvement_below_min_improvement_fails() -> None:
    result = decide(Metric.ROC_AUC, 0.9875, champion_version=3, champion_value=0.9871, min_improvement=0.001, floor=0.95)
    assert not result.passed
    assert "does not beat champion v3 (0.9871) by at least 0.001" in result.reason
    assert "(change +0.0004)" in result.reason


def test_worse_candidate_fails_and_the_reason_shows_a_negative_change() -> None:
    result = decide(Metric.F1, 0.90, champion_version=1, champion_value=0.95)
    assert not result.passed
    assert result.improvement == pytest.approx(-0.05)
    assert "change -0.05" in result.reason


def test_a_tie_keeps_the_champion_even_with_zero_min_improvement() -> None:
    assert not decide(Metric.ACCURACY, 0.9, champion_version=1, champion_value=0.9, min_improvement=0.0).passed
    assert decide(Metric.ACCURACY, 0.9001, champion_version=1, champion_value=0.9, min_improvement=0.0).passed


def test_exactly_min_improvement_passes() -> None:
    assert decide(Metric.RMSE, 52.5, champion_version=1, champion_value=53.0, min_improvement=0.5).passed


def test_lower_is_better_metric_counts_a_drop_as_improvement() -> None:
    result = decide(Metric.RMSE, 50.0, champion_version=2, champion_value=55.0, min_improvement=0.5, floor=70.0)
    assert result.passed
    assert result.improvement == pytest.approx(5.0)
    assert result.reason.endswith("clears floor 70 (at most)")
    worse = decide(Metric.MAE, 56.0, champion_version=2, champion_value=55.0, min_improvement=0.5)
    assert not worse.passed
    assert worse.improvement == pytest.approx(-1.0)


def test_better_than_champion_but_below_floor_fails() -> None:
    result = decide(Metric.ROC_AUC, 0.93, champion_version=1, champion_value=0.90, floor=0.95)
    assert not result.passed
    assert result.reason.endswith("and is below floor 0.95")
    above = decide(Metric.RMSE, 75.0, champion_version=1, champion_value=80.0, floor=70.0)
    assert not above.passed
    assert above.reason.endswith("and is above floor 70 (at most)")


def test_no_champion_passes_when_it_clears_the_floor() -> None:
    result = decide(Metric.ROC_AUC, 0.97, floor=0.95)
    assert result.passed
    assert result.improvement is None
    assert result.reason == "roc_auc 0.97 clears floor 0.95; no champion in production"


def test_no_champion_below_floor_fails() -> None:
    assert not decide(Metric.ROC_AUC, 0.90, floor=0.95).passed
    result = decide(Metric.RMSE, 90.0, floor=70.0)
    assert not result.passed
    assert "is above floor 70 (at most)" in result.reason


def test_no_champion_and_no_floor_passes_and_says_so() -> None:
    result = decide(Metric.R2, 0.1)
    assert result.passed
    assert "no champion in production and the spec sets no floor" in result.reason


def test_champion_that_cannot_score_compares_with_the_floor_only() -> None:
    result = decide(
        Metric.ROC_AUC, 0.96, champion_version=4, champion_value=None, champion_problem="columns missing from the data: x", floor=0.95
    )
    assert result.passed
    assert "champion v4 cannot score this data (columns missing from the data: x), so only the floor counts" in result.reason
    assert not decide(Metric.ROC_AUC, 0.94, champion_version=4, champion_problem="p", floor=0.95).passed


def test_a_perfect_score_reads_as_a_number_with_a_decimal_point() -> None:
    assert decide(Metric.F1, 1.0, floor=0.85).reason == "f1 1.0 clears floor 0.85; no champion in production"
    assert decide(Metric.RMSE, 53.0, champion_version=1, champion_value=60.0).reason.startswith("rmse 53.0 beats champion v1 (60.0) by 7.0")


# -- with the newest labelled rows of a quality breach (decide_with_recent) ---------------------------------------------
def _recent_gate(candidate: float, champion: float, *, holdout: tuple[float, float], floor: float | None = None) -> GateResult:
    on_holdout = holds(Metric.ACCURACY, holdout[0], champion_version=1, champion_value=holdout[1], floor=floor)
    on_recent = decide(Metric.ACCURACY, candidate, champion_version=1, champion_value=champion, floor=floor)
    return decide_with_recent(on_holdout, on_recent, rows=200)


def test_the_recent_rows_decide_where_the_holdout_alone_would_say_otherwise() -> None:
    # better on the holdout, worse on the newest labelled rows: the holdout alone would promote; not promoted
    assert decide(Metric.ACCURACY, 0.95, champion_version=1, champion_value=0.90).passed
    worse_recently = _recent_gate(0.70, 0.80, holdout=(0.95, 0.90))
    assert not worse_recently.passed
    assert worse_recently.improvement == pytest.approx(-0.10)
    assert worse_recently.reason == (
        "fails: on the 200 newest labelled rows accuracy 0.7 does not beat champion v1 (0.8) by at least 0 (change -0.1); "
        "on the split holdout accuracy 0.95 is not worse than champion v1 (0.9)"
    )
    # a tie on the holdout, better on the newest rows: the holdout alone would keep the champion; promoted
    assert not decide(Metric.ACCURACY, 0.90, champion_version=1, champion_value=0.90).passed
    better_recently = _recent_gate(0.85, 0.70, holdout=(0.90, 0.90))
    assert better_recently.passed
    assert better_recently.reason.startswith("passes: on the 200 newest labelled rows accuracy 0.85 beats champion v1 (0.7)")


def test_better_on_the_recent_rows_but_worse_on_the_holdout_or_below_the_floor_fails() -> None:
    forgetting = _recent_gate(0.85, 0.70, holdout=(0.88, 0.90))
    assert not forgetting.passed
    assert "on the split holdout accuracy 0.88 is worse than champion v1 (0.9) (change -0.02)" in forgetting.reason
    below = _recent_gate(0.85, 0.70, holdout=(0.90, 0.85), floor=0.92)
    assert not below.passed
    assert below.reason.endswith("accuracy 0.9 is not worse than champion v1 (0.85) and is below floor 0.92")


def test_holds_for_errors_and_without_a_champion_value() -> None:
    assert holds(Metric.RMSE, 50.0, champion_version=1, champion_value=50.0, floor=None).passed  # a tie holds
    worse = holds(Metric.RMSE, 51.0, champion_version=1, champion_value=50.0, floor=60.0)
    assert (worse.passed, worse.improvement) == (False, -1.0)
    assert worse.reason == "rmse 51.0 is worse than champion v1 (50.0) (change -1) and clears floor 60 (at most)"
    above = holds(Metric.RMSE, 61.0, champion_version=None, champion_value=None, floor=60.0)
    assert (above.passed, above.improvement) == (False, None)
    assert above.reason == "rmse 61.0 has no champion value to compare with and is above floor 60 (at most)"
