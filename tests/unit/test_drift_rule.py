"""The drift rule's false-alarm rate and power, measured by seeded simulation (``serverless_mlops.drift.simulation``).

A small grid here (``make test``); ``benchmarks/drift_rule.py`` runs windows of 50 to 1,000,000 rows against
references of 100 to 100,000 rows for the table in docs/drift.md. 20 features (15 numeric N(0, 1), 5 categorical); the
power runs shift a quarter of them (5 numeric) by half a standard deviation.
"""

from __future__ import annotations

import numpy as np
import pytest

from serverless_mlops.drift.capture_reader import Column, CurrentData
from serverless_mlops.drift.check import check_drift
from serverless_mlops.drift.simulation import simulate
from serverless_mlops.model.profile import build_profile
from serverless_mlops.model.spec import Drift

DEFAULT = Drift(min_rows=50)  # the spec's defaults, with windows of 50 rows allowed
EVIDENTLY = Drift(min_rows=50, rule="evidently")
FEATURES = 20
SHIFTED = FEATURES // 4
# (reference rows, window rows): small windows against a large reference and the reverse, and both small
GRID = [(1_600, 100), (100, 50), (100, 20_000), (2_000, 500)]


@pytest.mark.parametrize(("reference_rows", "window_rows"), GRID)
def test_undrifted_windows_raise_no_dataset_alarm_at_any_size(reference_rows: int, window_rows: int) -> None:
    outcome = simulate(reference_rows=reference_rows, window_rows=window_rows, windows=25, config=DEFAULT, features=FEATURES, seed=3)
    assert outcome.dataset_alarms == 0  # the target is at most 1% of windows
    # feature by feature, the rate stays near the corrected level (0.05 / 20 = 0.25%): at most 6 of 500 (a binomial
    # with p = 0.0025 exceeds that with probability 0.0003)
    assert outcome.features_checked == 25 * FEATURES
    assert outcome.feature_flags <= 6, outcome


def test_the_evidently_rule_false_alarms_on_small_windows_which_is_why_it_is_an_option() -> None:
    """The issue's measurement: 100 undrifted rows against 1,600 reference rows declared dataset drift nearly always."""
    old = simulate(reference_rows=1_600, window_rows=100, windows=25, config=EVIDENTLY, features=FEATURES, seed=3)
    assert old.dataset_rate >= 0.8
    assert old.false_flag_rate > 0.3


@pytest.mark.parametrize(("reference_rows", "window_rows"), GRID)
def test_a_half_std_shift_in_a_quarter_of_the_features_is_found_more_often_with_more_data(reference_rows: int, window_rows: int) -> None:
    outcome = simulate(
        reference_rows=reference_rows, window_rows=window_rows, windows=10, config=DEFAULT, features=FEATURES, shifted=SHIFTED, seed=4
    )
    assert outcome.shifted_checked == 10 * SHIFTED
    smallest = min(reference_rows, window_rows)
    if smallest >= 500:
        assert outcome.detection_rate == 1.0
    elif smallest >= 100:  # the smaller sample bounds the power: the KS cutoff is about 1.8 / sqrt(100), D is 0.2
        assert outcome.detection_rate >= 0.4
    else:  # 50 rows against 100: most of a half-std shift is noise at this size
        assert 0.1 <= outcome.detection_rate < 0.8
    assert outcome.feature_flags <= 2  # the unshifted features stay quiet beside the shifted ones
    assert outcome.dataset_alarms == 0  # a quarter drifted is under the default drift_share of 0.5


def test_power_grows_with_the_window() -> None:
    rates = [
        simulate(reference_rows=2_000, window_rows=rows, windows=8, config=DEFAULT, features=8, shifted=2, shift=0.3, seed=6).detection_rate
        for rows in (50, 150, 600)
    ]
    assert rates == sorted(rates)
    assert rates[0] < 0.5 < rates[-1]


def _window(values: np.ndarray, kind: str = "numeric") -> CurrentData:
    column = Column(kind, parts=[values])
    return CurrentData(
        rows=values.size, columns={"x": column}, prediction=Column("numeric", parts=[values]), versions={}, sources=[], skipped=[]
    )


def test_a_million_rows_do_not_flag_a_negligible_shift_but_do_flag_a_large_one() -> None:
    rng = np.random.default_rng(7)
    reference = rng.standard_normal(10_000)
    profile = build_profile({"x": reference}, {"x": "numeric"}, reference, "numeric")
    small = check_drift(
        profile, Drift(), _window(rng.standard_normal(1_000_000) + 0.08), model="m", version=1, window=None, generated_at=""
    )
    (x,) = small.features
    assert x.p_value is not None
    assert x.p_value < x.threshold  # significant: a million rows see a shift of 0.08 std
    assert x.effect_size is not None
    assert x.effect_size < x.effect_threshold == 0.1  # but it is not large
    assert x.verdict == "no_drift"
    assert small.method == "significant_and_large"
    large = check_drift(profile, Drift(), _window(rng.standard_normal(1_000_000) + 0.3), model="m", version=1, window=None, generated_at="")
    assert large.features[0].verdict == "drift"
    assert large.dataset_drift
    # the effect threshold is the spec's distance_threshold: lowered, the small shift counts
    lowered = check_drift(
        profile,
        Drift(distance_threshold=0.05),
        _window(rng.standard_normal(1_000_000) + 0.08),
        model="m",
        version=1,
        window=None,
        generated_at="",
    )
    assert lowered.features[0].verdict == "drift"
