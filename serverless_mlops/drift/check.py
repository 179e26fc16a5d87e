"""The drift check: captured rows against a version's baseline profile, one verdict per feature and for the data set.

The rule (the spec's ``drift.rule``; thresholds from the same section):

- ``significant_and_large`` (the default): a feature drifts when the difference is both statistically significant
  and practically large. Significant: a two-sample test whose null distribution accounts for both sample sizes —
  Kolmogorov-Smirnov (numeric) or the chi-square test of homogeneity on the two samples' category counts
  (categorical) — rejects at ``p_value`` (default 0.05) after correcting for the number of features (Bonferroni by
  default, Benjamini-Hochberg, or none). Large: the effect size — Wasserstein distance divided by the reference
  standard deviation (numeric) or Jensen-Shannon distance (categorical) — is at least ``distance_threshold``
  (default 0.1). The test keeps small windows from false alarms (two samples of one distribution are far apart when
  small, but not significantly so); the effect size keeps a million rows from flagging a negligible shift.
- ``evidently`` (the old behaviour, as an explicit option): Evidently's preset. A reference sample of at most
  ``reference_size_cutoff`` rows (default 1,000) → the tests alone; a larger one → the distances alone, against
  ``distance_threshold`` whatever the current window's size (so small windows look drifted: 100 undrifted rows
  against 1,600 reference rows flagged 78% of features).

PSI (over reference-quantile bins, or categories including unseen ones) is reported for every feature. The data set
drifts when the share of drifted features reaches ``drift_share`` (default 0.5). With fewer than ``min_rows``
captured rows (or non-missing values of a feature) the verdict is ``insufficient_data`` and never an alert. The
prediction is checked the same way and reported beside the features; it does not count towards the share.

Degenerate data gives a verdict or an explicit null, never an error nor a number JSON cannot hold:

- Missing values are data. A row without a value (the key absent, ``null``, NaN, a numeric feature's text) counts
  in ``quality.missing_share``; the verdict rests on the values present.
- ±inf in a numeric column (``Infinity``, ``1e999``) counts as out of range (``quality.out_of_range_share``, and the
  histogram's outer bins) and is left out of every statistic, with a note saying how many there were.
- A feature absent from every row of the window (:data:`ABSENT`), or with every value missing
  (:data:`ALL_MISSING`), or with fewer than ``min_rows`` values to compare (:data:`TOO_FEW`) is
  ``insufficient_data``; the reason is in the feature's ``notes`` and, for the first two, also a data-quality
  finding with the same words.
- Every statistic is finite or null: sums over values near the float limit are taken on values scaled by a power of
  two; an effect size that still exceeds the float range is null with :data:`BEYOND_FLOAT` and counts as large;
  anything else not finite is null with :data:`NOT_FINITE` (and no verdict rests on it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from serverless_mlops.drift import stats
from serverless_mlops.drift.capture_reader import Column, CurrentData
from serverless_mlops.drift.result import DriftResult, FeatureResult, Finding, Histogram, Problem, Quality, Summary, Window
from serverless_mlops.model.spec import Drift

MAX_CATEGORIES_SHOWN = 20
STD_FLOOR = 0.001  # Evidently's floor on the reference std that normalizes the Wasserstein distance
SAFE_MAGNITUDE = 2.0**400  # beyond this, sums of squares over millions of values can overflow: compute on scaled values

# Why a verdict or a statistic is missing: FeatureResult.notes, and (ABSENT, ALL_MISSING) the data-quality finding's
# detail. Format with str.format; the CSV path (serverless_mlops.drift.instances) reports the same cases in these words.
ABSENT = "column {name} is absent from the window"
ALL_MISSING = "all {n} values of {name} are missing"
TOO_FEW = "{n} values of {name} to compare, at least {min_rows} needed"
NO_REFERENCE = "the baseline profile holds no values of {name}"
INFINITE = "{n} infinite values of {name} counted as out of range and left out of the statistics"
BEYOND_FLOAT = "{statistic} of {name} exceeds the floating point range: reported as null, counted as large"
NOT_FINITE = "{statistic} of {name} is not a finite number: reported as null"


def _scale(*sorted_arrays: NDArray[np.float64]) -> float:
    """1, or (for values beyond :data:`SAFE_MAGNITUDE`) the power of two that brings the largest magnitude into
    [1, 2): dividing by it is exact, and sums, differences and squares of the scaled values cannot overflow."""
    peak = max((max(abs(float(a[0])), abs(float(a[-1]))) for a in sorted_arrays if a.size), default=0.0)
    if not peak < SAFE_MAGNITUDE:
        return math.ldexp(1.0, math.frexp(peak)[1] - 1)
    return 1.0


def summarize(sorted_values: NDArray[np.float64]) -> Summary:
    """Mean, std and quartiles of finite sorted values; finite however large they are (computed on scaled values)."""
    if sorted_values.size == 0:
        return Summary()
    scale = _scale(sorted_values)
    scaled = sorted_values / scale if scale != 1.0 else sorted_values
    q25, median, q75 = (float(q) * scale for q in np.quantile(scaled, [0.25, 0.5, 0.75]))
    return Summary(
        mean=float(np.mean(scaled)) * scale,
        std=float(np.std(scaled)) * scale,
        min=float(sorted_values[0]),
        q25=q25,
        median=median,
        q75=q75,
        max=float(sorted_values[-1]),
    )


def normalized_wasserstein(sorted_reference: NDArray[np.float64], sorted_current: NDArray[np.float64]) -> float:
    """The Wasserstein distance divided by the reference's standard deviation (at least :data:`STD_FLOOR`).

    Values beyond :data:`SAFE_MAGNITUDE` are scaled by a power of two first (the distance scales with them), so the
    result is inf only when the distance itself exceeds the float range."""
    own = _scale(sorted_reference)  # the reference's own: a common scale could make its values subnormal
    std = float(np.std(sorted_reference / own if own != 1.0 else sorted_reference)) * own
    scale = _scale(sorted_reference, sorted_current)
    if scale != 1.0:
        sorted_reference, sorted_current = sorted_reference / scale, sorted_current / scale
    distance = stats.wasserstein_distance(sorted_reference, sorted_current, assume_sorted=True)
    return distance / max(std, STD_FLOOR) * scale


def _finite(values: NDArray[np.float64]) -> NDArray[np.float64]:
    return values[np.isfinite(values)]


def _shares(counts: NDArray[Any]) -> list[float]:
    total = float(np.sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]


def _missing(column: Column, rows: int, without_value: int) -> int:
    """Rows without a value: the column's own count, or those it holds no value for (a builder may keep either)."""
    return min(max(column.missing, without_value), rows)


def _no_verdict(name: str, column: Column, rows: int, missing: int, usable: int, reference: int, config: Drift) -> list[str]:
    """Why there can be no verdict (nothing when there can be one): the notes of an ``insufficient_data`` feature."""
    notes = [NO_REFERENCE.format(name=name)] if reference == 0 else []
    if rows and column.absent >= rows:
        notes.append(ABSENT.format(name=name))
    elif rows and missing >= rows:
        notes.append(ALL_MISSING.format(n=rows, name=name))
    elif usable < config.min_rows:
        notes.append(TOO_FEW.format(n=usable, name=name, min_rows=config.min_rows))
    return notes


_STATISTICS = ("statistic", "effect_size", "p_value", "ks_statistic", "chi_square", "wasserstein_norm", "jensen_shannon", "psi")


def _finite_only(result: FeatureResult) -> FeatureResult:
    """Null, with a note, any statistic or summary value that is not finite (none should be; JSON cannot hold one).
    A verdict never rests on a nulled statistic: it becomes ``insufficient_data``."""
    update: dict[str, Any] = {}
    notes: list[str] = []
    for field in _STATISTICS:
        value = getattr(result, field)
        if value is not None and not math.isfinite(value):
            update[field] = None
            notes.append(NOT_FINITE.format(statistic=field, name=result.name))
    for field in ("reference_summary", "current_summary"):
        summary: Summary | None = getattr(result, field)
        bad = [key for key, value in summary or () if value is not None and not math.isfinite(value)]
        if summary is not None and bad:
            update[field] = summary.model_copy(update=dict.fromkeys(bad))
            notes.extend(NOT_FINITE.format(statistic=f"{field} {key}", name=result.name) for key in bad)
    if not update:
        return result
    if update.keys() & {"statistic", "p_value", "effect_size"}:  # decided here (distances) or in check_drift (tests)
        update["verdict"] = "insufficient_data"
    return result.model_copy(update=update | {"notes": [*result.notes, *notes]})


def _numeric(name: str, summary: dict[str, Any], sample: list[Any], column: Column, rows: int, config: Drift, tests: bool) -> FeatureResult:
    reference = np.sort(_finite(np.array([np.nan if v is None else v for v in sample], dtype=np.float64)))
    values = np.asarray(column.values(), dtype=np.float64)
    nan = np.isnan(values)
    present = values[~nan]  # numbers, ±inf included: out of range, in the histogram's outer bins
    infinite = np.isinf(present)
    current = np.sort(present[~infinite])  # what the statistics compare
    missing = _missing(column, rows, int(nan.sum()) + max(rows - values.size, 0))
    low, high = summary.get("min", -np.inf), summary.get("max", np.inf)
    outside = int(np.count_nonzero((current < low) | (current > high))) + int(infinite.sum())
    quality = Quality(
        missing_share=missing / rows if rows else 0.0,
        out_of_range_share=outside / present.size if present.size else 0.0,
    )
    edges = np.asarray(summary.get("histogram", {}).get("edges", []), dtype=np.float64)
    ref_counts = np.asarray(summary.get("histogram", {}).get("counts", []), dtype=np.float64)
    if edges.size >= 2:
        inside, _ = np.histogram(np.clip(present, edges[0], edges[-1]), bins=edges)
        below, above = int(np.count_nonzero(present < edges[0])), int(np.count_nonzero(present > edges[-1]))
        inside[0] -= below
        inside[-1] -= above
        labels = ["< min"] + [f"{edges[i]:.4g} – {edges[i + 1]:.4g}" for i in range(edges.size - 1)] + ["> max"]
        histogram = Histogram(
            labels=labels,
            reference=_shares(np.concatenate([[0], ref_counts, [0]])),
            current=_shares(np.concatenate([[below], inside, [above]])),
        )
    else:
        histogram = Histogram(labels=[], reference=[], current=[])
    threshold = config.p_value if tests else config.distance_threshold
    both = config.rule == "significant_and_large"
    notes = _no_verdict(name, column, rows, missing, int(current.size), int(reference.size), config)
    if infinite.any():
        notes.append(INFINITE.format(n=int(infinite.sum()), name=name))
    result = FeatureResult(
        name=name,
        kind="numeric",
        verdict="insufficient_data",
        test="ks" if tests else "wasserstein_norm",
        threshold=threshold,
        effect="wasserstein_norm" if both else None,
        effect_threshold=config.distance_threshold if both else None,
        reference_rows=int(reference.size),
        current_rows=int(current.size),
        reference_summary=summarize(reference),
        current_summary=summarize(current),
        notes=notes,
        quality=quality,
        histogram=histogram,
    )
    if current.size < config.min_rows or reference.size == 0:
        return _finite_only(result)
    inner = np.asarray(summary.get("quantile_edges", []), dtype=np.float64)[1:-1]
    ref_bins = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=inner.size + 1)
    cur_bins = np.bincount(np.searchsorted(inner, current, side="right"), minlength=inner.size + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        distance = normalized_wasserstein(reference, current)
    wasserstein: float | None = distance
    if not math.isfinite(distance):  # farther apart than a float can say: large, but JSON cannot hold it
        wasserstein = None
        notes = [*notes, BEYOND_FLOAT.format(statistic="wasserstein_norm", name=name)]
    update: dict[str, Any] = {"psi": stats.psi(ref_bins, cur_bins), "wasserstein_norm": wasserstein, "notes": notes}
    if both:
        update["effect_size"] = wasserstein
    if tests:
        d, p = stats.ks_2samp(reference, current, assume_sorted=True)
        update |= {"ks_statistic": d, "p_value": p, "statistic": p}
    else:
        update |= {"ks_statistic": stats.ks_statistic(reference, current), "statistic": wasserstein}
        update["verdict"] = "drift" if wasserstein is None or wasserstein >= threshold else "no_drift"
    return _finite_only(result.model_copy(update=update))


def _categorical(
    name: str, summary: dict[str, Any], sample: list[Any], column: Column, rows: int, config: Drift, tests: bool
) -> FeatureResult:
    reference_counts: dict[str, int] = {}
    for value in sample:
        reference_counts[str(value)] = reference_counts.get(str(value), 0) + 1
    known = set(summary.get("frequencies", {})) | set(reference_counts)
    current_total = sum(column.counts.values())
    missing = _missing(column, rows, max(rows - current_total, 0))
    unseen = {k: v for k, v in column.counts.items() if k not in known}
    unseen_count = sum(unseen.values())
    quality = Quality(
        missing_share=missing / rows if rows else 0.0,
        unseen_share=unseen_count / current_total if current_total else 0.0,
        unseen=sorted(unseen, key=lambda k: -unseen[k])[:5],
    )
    categories = sorted(
        set(reference_counts) | set(column.counts), key=lambda k: (-reference_counts.get(k, 0), -column.counts.get(k, 0), k)
    )
    ref = np.array([reference_counts.get(k, 0) for k in categories], dtype=np.float64)
    cur = np.array([column.counts.get(k, 0) for k in categories], dtype=np.float64)
    shown = categories[:MAX_CATEGORIES_SHOWN]
    ref_shares, cur_shares = _shares(ref), _shares(cur)
    histogram = Histogram(labels=shown, reference=ref_shares[: len(shown)], current=cur_shares[: len(shown)])
    if len(categories) > MAX_CATEGORIES_SHOWN:
        histogram.labels.append("(other)")
        histogram.reference.append(float(sum(ref_shares[MAX_CATEGORIES_SHOWN:])))
        histogram.current.append(float(sum(cur_shares[MAX_CATEGORIES_SHOWN:])))
    threshold = config.p_value if tests else config.distance_threshold
    both = config.rule == "significant_and_large"
    result = FeatureResult(
        name=name,
        kind="categorical",
        verdict="insufficient_data",
        test="chi_square" if tests else "jensen_shannon",
        threshold=threshold,
        effect="jensen_shannon" if both else None,
        effect_threshold=config.distance_threshold if both else None,
        reference_rows=int(ref.sum()),
        current_rows=current_total,
        notes=_no_verdict(name, column, rows, missing, current_total, int(ref.sum()), config),
        quality=quality,
        histogram=histogram,
    )
    if current_total < config.min_rows or ref.sum() == 0:
        return _finite_only(result)
    js = stats.jensenshannon(ref, cur)
    update: dict[str, Any] = {"psi": stats.psi(ref, cur), "jensen_shannon": js}
    if both:
        update["effect_size"] = js
    if tests:
        # homogeneity of the two samples (not goodness of fit to the reference's shares): the reference's own sampling
        # noise counts, and a category the reference never saw is a finite contribution
        chi, p = stats.chi2_homogeneity(ref, cur)
        update |= {"chi_square": chi, "p_value": p, "statistic": p}
    else:
        update |= {"statistic": js, "verdict": "drift" if js >= threshold else "no_drift"}
    return _finite_only(result.model_copy(update=update))


def _findings(features: list[FeatureResult], profile_features: dict[str, Any], rows: int) -> list[Finding]:
    findings: list[Finding] = []
    for feature in features:
        absent, everything = ABSENT.format(name=feature.name), ALL_MISSING.format(n=rows, name=feature.name)
        if absent in feature.notes:  # said once, in the verdict's words
            findings.append(Finding(feature=feature.name, problem="absent_column", share=1.0, detail=absent))
            continue
        if everything in feature.notes:
            findings.append(Finding(feature=feature.name, problem="missing_values", share=1.0, detail=everything))
            continue
        q = feature.quality
        baseline_missing = float(profile_features.get(feature.name, {}).get("missing_share", 0.0))
        checks: tuple[tuple[Problem, float, float, str], ...] = (
            ("missing_values", q.missing_share, baseline_missing, f"{q.missing_share:.1%} missing (training: {baseline_missing:.1%})"),
            ("out_of_range", q.out_of_range_share, 0.0, f"{q.out_of_range_share:.1%} outside the training range"),
            ("unseen_categories", q.unseen_share, 0.0, f"{q.unseen_share:.1%} in categories unseen in training: {', '.join(q.unseen)}"),
        )
        findings.extend(
            Finding(feature=feature.name, problem=problem, share=share, detail=detail)
            for problem, share, floor, detail in checks
            if share > floor
        )
    return findings


def _decidable(feature: FeatureResult) -> bool:
    """Whether the test ran and, under significant_and_large, the effect size is known (or beyond the float range)."""
    if feature.p_value is None:
        return False
    return feature.effect is None or feature.effect_size is not None or _large(feature)


def _large(feature: FeatureResult) -> bool:
    """Whether the effect size reaches its threshold (always, under the evidently rule, which has none; and when it
    exceeds the float range)."""
    if feature.effect_threshold is None:
        return True
    if feature.effect_size is None:
        return feature.effect is not None and BEYOND_FLOAT.format(statistic=feature.effect, name=feature.name) in feature.notes
    return feature.effect_size >= feature.effect_threshold


def check_drift(
    profile: dict[str, Any],
    config: Drift,
    current: CurrentData,
    *,
    model: str,
    version: int,
    window: Window | None,
    generated_at: str,
) -> DriftResult:
    """Compare ``current`` with ``profile`` (see :mod:`serverless_mlops.model.profile`) under ``config`` (the spec's drift).

    A feature ``current`` has no column for is absent from every row (as a capture whose rows lack the key)."""
    sample = profile["sample"]
    reference_rows = int(sample["rows"])
    both = config.rule == "significant_and_large"
    tests = both or reference_rows <= config.reference_size_cutoff
    rows = current.rows
    features: list[FeatureResult] = []
    for name, summary in profile["features"].items():
        build = _numeric if summary["kind"] == "numeric" else _categorical
        column = current.columns.get(name) or Column(summary["kind"], missing=rows, absent=rows)
        features.append(build(name, summary, sample["features"][name], column, rows, config, tests))
    prediction_summary = profile["prediction"]
    build = _numeric if prediction_summary["kind"] == "numeric" else _categorical
    prediction = build("prediction", prediction_summary, sample["prediction"], current.prediction, rows, config, tests)

    if tests:
        tested = [f for f in features if _decidable(f)]
        p_values = [float(f.p_value or 0.0) for f in tested]
        rejected = stats.reject(p_values, config.p_value, config.correction.value)
        threshold = stats.adjusted_alpha(p_values, config.p_value, config.correction.value)
        verdicts = {f.name: ("drift" if r and _large(f) else "no_drift") for f, r in zip(tested, rejected, strict=True)}
        features = [
            f.model_copy(update={"verdict": verdicts[f.name], "threshold": threshold}) if f.name in verdicts else f for f in features
        ]
        if prediction.p_value is not None and _decidable(prediction):
            moved = prediction.p_value < config.p_value and _large(prediction)
            prediction = prediction.model_copy(update={"verdict": "drift" if moved else "no_drift"})
        checked = tested
    else:  # distances decided each verdict already
        checked = [f for f in features if f.verdict != "insufficient_data"]
    drifted = sum(1 for f in features if f.verdict == "drift")
    share = drifted / len(checked) if checked else 0.0
    enough = rows >= config.min_rows and bool(checked)
    dataset_drift = enough and share >= config.drift_share
    return DriftResult(
        model=model,
        version=version,
        window=window,
        generated_at=generated_at,
        status=("drift" if dataset_drift else "no_drift") if enough else "insufficient_data",
        dataset_drift=dataset_drift,
        rows=rows,
        min_rows=config.min_rows,
        method="significant_and_large" if both else "statistical_tests" if tests else "distances",
        correction=config.correction.value if tests else "none",
        p_value=config.p_value,
        distance_threshold=config.distance_threshold,
        drift_share=config.drift_share,
        drifted_features=drifted,
        checked_features=len(checked),
        drifted_share=share,
        features=features,
        prediction=prediction,
        data_quality=_findings(features, profile["features"], rows) if rows else [],
        versions={str(k): v for k, v in sorted(current.versions.items())},
        sources=len(current.sources),
        files=[] if window is not None else [Path(source).name for source in current.sources],
        skipped_sources=[{"source": s.source, "error": s.error} for s in current.skipped],
    )
