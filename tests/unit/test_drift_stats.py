"""The numpy drift statistics agree with scipy to 1e-6 (scipy is a test dependency only)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sp
from scipy.spatial.distance import jensenshannon as sp_jensenshannon

from serverless_mlops.drift import stats

TOL = 1e-6
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sample(seed: int, size: int, shift: float, rounding: int | None) -> np.ndarray:
    values = np.random.default_rng(seed).normal(shift, 1.0, size)
    return np.round(values, rounding) if rounding is not None else values


def _scipy_ks(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sp.ks_2samp(x, y)
    return float(result.statistic), float(result.pvalue)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n1=st.integers(1, 400),
    n2=st.integers(1, 1200),
    shift=st.sampled_from([0.0, 0.1, 0.4, 1.5]),
    rounding=st.sampled_from([None, 1, 0]),
)
def test_ks_exact_regime_matches_scipy(seed: int, n1: int, n2: int, shift: float, rounding: int | None) -> None:
    x, y = _sample(seed, n1, 0.0, rounding), _sample(seed + 1, n2, shift, rounding)
    d, p = stats.ks_2samp(x, y)
    expected_d, expected_p = _scipy_ks(x, y)
    assert d == pytest.approx(expected_d, abs=TOL)
    assert p == pytest.approx(expected_p, abs=TOL)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 2000), shift=st.sampled_from([0.0, 0.05, 0.3]))
def test_ks_equal_sizes_match_scipy(seed: int, n: int, shift: float) -> None:
    x, y = _sample(seed, n, 0.0, None), _sample(seed + 7, n, shift, None)
    assert stats.ks_2samp(x, y) == pytest.approx(_scipy_ks(x, y), abs=TOL)


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [(10_000, 10_001, 0.0), (150, 20_000, 0.0), (150, 20_000, 0.3), (5_000, 12_000, 0.02), (9_000, 40_000, 0.05), (60, 15_000, 2.0)],
)
def test_ks_asymptotic_regime_matches_scipy(n1: int, n2: int, shift: float) -> None:
    x, y = _sample(n1, n1, 0.0, None), _sample(n2, n2, shift, None)
    assert stats.ks_2samp(x, y) == pytest.approx(_scipy_ks(x, y), abs=TOL)


@pytest.mark.parametrize("n", [1, 2, 5, 30, 100, 140, 141, 500, 3_000, 10_000, 150_000])
def test_kolmogorov_distribution_matches_scipy_in_every_branch(n: int) -> None:
    for x in (0.0, 0.3 / n, 0.7 / n, 0.002, 0.01, 0.03, 0.05, 0.1, 0.2, 0.45, 0.5, 0.8, 1 - 0.5 / n, 1.0):
        assert stats.kolmogorov_sf(n, x) == pytest.approx(float(sp.kstwo.sf(x, n)), abs=1e-9), (n, x)


def test_kolmogorov_of_an_empty_sample_is_undefined() -> None:
    assert np.isnan(stats.kolmogorov_sf(0, 0.1))


@pytest.mark.parametrize("n", [1, 3, 50, 1_000, 10_000])
def test_one_sided_smirnov_matches_scipy(n: int) -> None:
    for e in (0.0, 0.001, 0.05, 0.2, 0.5, 0.9, 1.0):
        assert stats.smirnov_sf(n, e) == pytest.approx(float(special.smirnov(n, e)), abs=1e-9), (n, e)


def test_ks_refuses_an_empty_sample() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        stats.ks_2samp([], [1.0])


@FAST
@given(
    observed=st.lists(st.integers(0, 500), min_size=2, max_size=12),
    weights=st.lists(st.floats(0.05, 10.0), min_size=12, max_size=12),
)
def test_chisquare_matches_scipy(observed: list[int], weights: list[float]) -> None:
    obs = np.array(observed, dtype=float)
    if obs.sum() == 0:
        obs[0] = 1
    w = np.array(weights[: obs.size])
    expected = w / w.sum() * obs.sum()
    statistic, p = stats.chisquare(obs, expected)
    reference = sp.chisquare(obs, expected)
    assert statistic == pytest.approx(float(reference.statistic), rel=1e-9, abs=TOL)
    assert p == pytest.approx(float(reference.pvalue), abs=TOL)


def test_chisquare_with_an_unexpected_category_is_certain_drift() -> None:
    statistic, p = stats.chisquare([5, 5, 1], [5.5, 5.5, 0.0])
    assert statistic == float("inf")
    assert p == 0.0


@FAST
@given(
    reference=st.lists(st.integers(0, 500), min_size=2, max_size=12),
    current=st.lists(st.integers(0, 5_000), min_size=12, max_size=12),
)
def test_chi2_homogeneity_matches_scipys_contingency_table(reference: list[int], current: list[int]) -> None:
    ref = np.array(reference, dtype=float)
    cur = np.array(current[: ref.size], dtype=float)
    statistic, p = stats.chi2_homogeneity(ref, cur)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        assert (statistic, p) == (0.0, 1.0)
        return
    expected = sp.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(float(expected.statistic), rel=1e-9, abs=TOL)
    assert p == pytest.approx(float(expected.pvalue), abs=TOL)


def test_chi2_homogeneity_counts_a_category_only_one_sample_has_finitely() -> None:
    """The reference never saw the third category: goodness-of-fit against its shares is infinite, homogeneity is not."""
    statistic, p = stats.chi2_homogeneity([50, 50, 0], [45, 45, 10])
    assert np.isfinite(statistic)
    assert 0.0 < p < 0.01
    assert stats.chi2_homogeneity([10, 0], [0, 0]) == (0.0, 1.0)  # an empty window: nothing to compare


@pytest.mark.parametrize("df", [1, 2, 3, 9, 30, 250, 5_000])
def test_chi2_survival_matches_scipy(df: int) -> None:
    for x in (0.0, 0.01, 0.5, df / 2, float(df), df + 3 * np.sqrt(2 * df), 4.0 * df + 50):
        assert stats.chi2_sf(x, df) == pytest.approx(float(sp.chi2.sf(x, df)), abs=1e-9), (df, x)
    assert np.isnan(stats.chi2_sf(1.0, 0))


@FAST
@given(
    u=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=300),
    v=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=300),
)
def test_wasserstein_matches_scipy(u: list[float], v: list[float]) -> None:
    assert stats.wasserstein_distance(u, v) == pytest.approx(float(sp.wasserstein_distance(u, v)), rel=1e-9, abs=TOL)


@FAST
@given(
    p=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=20),
    q=st.lists(st.floats(0.0, 100.0), min_size=20, max_size=20),
)
def test_jensenshannon_matches_scipy(p: list[float], q: list[float]) -> None:
    a = np.array(p) + np.r_[1.0, np.zeros(len(p) - 1)]  # never all zero
    b = np.array(q[: len(p)]) + np.r_[np.zeros(len(p) - 1), 1.0]
    assert stats.jensenshannon(a, b) == pytest.approx(float(sp_jensenshannon(a, b)), abs=TOL)


def test_psi_of_identical_distributions_is_zero_and_grows_with_shift() -> None:
    assert stats.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-12)
    # (0.5-0.2)ln(0.5/0.2) + (0.5-0.8)ln(0.5/0.8)
    assert stats.psi([20, 80], [50, 50]) == pytest.approx(0.3 * np.log(2.5) - 0.3 * np.log(0.625))
    assert stats.psi([10, 0], [5, 5]) == pytest.approx((0.5 - 1) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4))


def test_corrections() -> None:
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    assert stats.reject(p, 0.05, "none").tolist() == [True] * 5 + [False] * 5
    assert stats.reject(p, 0.05, "bonferroni").tolist() == [True] + [False] * 9
    # Benjamini-Hochberg at 0.05: ranks 1..2 pass (0.008 <= 0.01), rank 3 needs <= 0.015
    assert stats.reject(p, 0.05, "benjamini_hochberg").tolist() == [True, True] + [False] * 8
    assert stats.reject([0.04, 0.001], 0.05, "benjamini_hochberg").tolist() == [True, True]
    assert stats.reject([0.5, 0.9], 0.05, "benjamini_hochberg").tolist() == [False, False]
    assert stats.reject([], 0.05, "bonferroni").tolist() == []
    with pytest.raises(ValueError, match="unknown correction"):
        stats.reject([0.1], 0.05, "holm")
    assert stats.adjusted_alpha(p, 0.05, "bonferroni") == pytest.approx(0.005)
    assert stats.adjusted_alpha(p, 0.05, "benjamini_hochberg") == pytest.approx(0.01)  # rank 2 passes: 0.05 * 2 / 10
    assert stats.adjusted_alpha([0.5, 0.9], 0.05, "benjamini_hochberg") == pytest.approx(0.025)
    assert stats.adjusted_alpha(p, 0.05, "none") == 0.05
    assert stats.adjusted_alpha([0.01], 0.05, "bonferroni") == 0.05


def test_a_single_value_against_many_matches_scipy() -> None:  # found by hypothesis: the exact count lands on 1
    x = np.random.default_rng(1_015_015_568).normal(0, 1, 1)
    y = np.random.default_rng(1_015_015_569).normal(0.1, 1, 91)
    assert stats.ks_2samp(x, y) == pytest.approx(_scipy_ks(x, y), abs=TOL)


def test_identical_samples_do_not_differ() -> None:
    x = np.random.default_rng(5).normal(size=300)
    assert stats.ks_2samp(x, x) == (0.0, 1.0)
    assert stats.ks_2samp(x, x[:150]) == pytest.approx(_scipy_ks(x, x[:150]), abs=TOL)
