"""Drift statistics in numpy alone, so the drift-check Lambda needs no scipy.

Each function reproduces its scipy counterpart (the tests compare them to 1e-6 on random inputs):

- :func:`ks_2samp` — ``scipy.stats.ks_2samp(x, y)`` (two-sided, ``method="auto"``), from
  :mod:`serverless_mlops.drift.ks`, where its exact and asymptotic distributions live.
- :func:`chisquare` — ``scipy.stats.chisquare(f_obs, f_exp)`` with the chi-square survival function computed as the
  regularized upper incomplete gamma function (series / continued fraction).
- :func:`chi2_homogeneity` — ``scipy.stats.chi2_contingency(table, correction=False)`` on the 2×k table of the
  reference's and the current window's category counts.
- :func:`wasserstein_distance` — ``scipy.stats.wasserstein_distance(u, v)`` (1-D, unweighted).
- :func:`jensenshannon` — ``scipy.spatial.distance.jensenshannon(p, q)`` (natural logarithm).
- :func:`psi` — population stability index, with Evidently's floor of 0.0001 on empty bins.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from serverless_mlops.drift.ks import EXACT_KS_MAX_N, clip_probability, kolmogorov_sf, ks_2samp, ks_pvalue, ks_statistic, smirnov_sf

__all__ = [
    "EXACT_KS_MAX_N",
    "PSI_FLOOR",
    "adjusted_alpha",
    "chi2_homogeneity",
    "chi2_sf",
    "chisquare",
    "gammaincc",
    "jensenshannon",
    "kolmogorov_sf",
    "ks_2samp",
    "ks_pvalue",
    "ks_statistic",
    "psi",
    "reject",
    "smirnov_sf",
    "wasserstein_distance",
]

PSI_FLOOR = 1e-4


# -- chi-square -----------------------------------------------------------------------------------------------
def chisquare(f_obs: ArrayLike, f_exp: ArrayLike) -> tuple[float, float]:
    """(statistic, p-value) of Pearson's chi-square goodness-of-fit test with ``len(f_obs) - 1`` degrees of freedom.

    An expected count of zero with observations makes the statistic infinite and the p-value 0, as in scipy.
    """
    obs = np.asarray(f_obs, dtype=np.float64)
    exp = np.asarray(f_exp, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where((exp == 0) & (obs == 0), 0.0, (obs - exp) ** 2 / exp)
    statistic = float(terms.sum())
    return statistic, chi2_sf(statistic, obs.size - 1)


def chi2_homogeneity(reference_counts: ArrayLike, current_counts: ArrayLike) -> tuple[float, float]:
    """(statistic, p-value) of Pearson's chi-square test that two samples of categories come from one distribution.

    The 2×k contingency table of the two samples' counts (``scipy.stats.chi2_contingency(..., correction=False)``):
    unlike :func:`chisquare` against the reference's shares, it counts the reference's own sampling noise, so a
    small reference does not make a large current window look drifted, and a category only one sample has is a
    finite contribution, not an infinite statistic. Categories neither sample has are dropped; with fewer than two
    left nothing can differ: (0, 1).
    """
    table = np.vstack([np.asarray(reference_counts, dtype=np.float64), np.asarray(current_counts, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, chi2_sf(statistic, table.shape[1] - 1)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X ~ chi-square(df): the regularized upper incomplete gamma Q(df/2, x/2)."""
    if df < 1:
        return math.nan
    if math.isinf(x):
        return 0.0
    if x <= 0:
        return 1.0
    return gammaincc(df / 2.0, x / 2.0)


def gammaincc(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (series below a+1, Lentz's continued fraction above)."""
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return clip_probability(1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    fraction = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        fraction *= delta
        if abs(delta - 1.0) < 1e-17:
            break
    return clip_probability(math.exp(log_prefix) * fraction)


# -- distances ------------------------------------------------------------------------------------------------
def wasserstein_distance(u: ArrayLike, v: ArrayLike, *, assume_sorted: bool = False) -> float:
    """The 1-D first Wasserstein distance between two empirical distributions: the area between their CDFs."""
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    if not assume_sorted:
        a, b = np.sort(a), np.sort(b)
    both = np.sort(np.concatenate([a, b]), kind="stable")  # two sorted runs: timsort merges them in linear time
    deltas = np.diff(both)
    cdf_a = np.searchsorted(a, both[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, both[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * deltas))


def jensenshannon(p: ArrayLike, q: ArrayLike) -> float:
    """The Jensen-Shannon distance (square root of the divergence, natural log) of two frequency vectors."""
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    a = a / a.sum()
    b = b / b.sum()
    m = (a + b) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(a > 0, a * np.log(a / m), 0.0).sum()
        right = np.where(b > 0, b * np.log(b / m), 0.0).sum()
    return float(math.sqrt(max((left + right) / 2.0, 0.0)))


def psi(reference_counts: ArrayLike, current_counts: ArrayLike, *, floor: float = PSI_FLOOR) -> float:
    """Population stability index: sum((cur - ref) * ln(cur / ref)) over bins, empty bins floored at ``floor``."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    ref = np.maximum(ref / max(ref.sum(), 1.0), floor)
    cur = np.maximum(cur / max(cur.sum(), 1.0), floor)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


# -- multiple testing -----------------------------------------------------------------------------------------
def reject(p_values: ArrayLike, alpha: float, correction: str) -> NDArray[np.bool_]:
    """Which hypotheses to reject at family level ``alpha``: bonferroni, benjamini_hochberg or none."""
    p = np.asarray(p_values, dtype=np.float64)
    k = p.size
    if k == 0:
        return np.zeros(0, dtype=bool)
    if correction == "bonferroni":
        return p < alpha / k  # type: ignore[no-any-return]
    if correction == "benjamini_hochberg":
        order = np.argsort(p, kind="stable")
        passed = p[order] <= alpha * np.arange(1, k + 1) / k
        rejected = np.zeros(k, dtype=bool)
        if passed.any():
            last = int(np.nonzero(passed)[0].max())
            rejected[order[: last + 1]] = True
        return rejected
    if correction == "none":
        return p < alpha  # type: ignore[no-any-return]
    raise ValueError(f"unknown correction {correction!r}; expected bonferroni, benjamini_hochberg or none")


def adjusted_alpha(p_values: ArrayLike, alpha: float, correction: str) -> float:
    """The cutoff a reader can compare each p-value with: Bonferroni alpha/k; Benjamini-Hochberg alpha*r/k for the
    largest rank r that passes (alpha/k if none does), which :func:`reject` applies with ``<=``; none: alpha."""
    p = np.sort(np.asarray(p_values, dtype=np.float64))
    k = p.size
    if correction == "none" or k <= 1:
        return alpha
    if correction == "benjamini_hochberg":
        passed = np.nonzero(p <= alpha * np.arange(1, k + 1) / k)[0]
        return float(alpha * (passed.max() + 1) / k) if passed.size else alpha / k
    return alpha / k
