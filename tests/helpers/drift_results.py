"""Drift results built by hand (numeric and categorical features, the result around them), so a test shows its case."""

from __future__ import annotations

from typing import Any

from serverless_mlops.drift.result import DriftResult, FeatureResult, Histogram, Quality, Summary, Verdict

NUMERIC_LABELS = ["< min", "0 – 1", "1 – 2", "2 – 3", "3 – 4", "> max"]


def feature(
    name: str, verdict: Verdict = "no_drift", *, effect_size: float | None = 0.05, p_value: float | None = 0.5, **update: Any
) -> FeatureResult:
    """A numeric feature under the significant_and_large rule (Bonferroni over two features: threshold 0.025)."""
    built = FeatureResult(
        name=name,
        kind="numeric",
        verdict=verdict,
        test="ks",
        statistic=p_value,
        threshold=0.025,
        effect="wasserstein_norm",
        effect_size=effect_size,
        effect_threshold=0.1,
        p_value=p_value,
        ks_statistic=0.25,
        wasserstein_norm=effect_size,
        psi=0.2,
        reference_rows=400,
        current_rows=300,
        reference_summary=Summary(mean=1.5, std=0.5, min=0.0, q25=1.0, median=1.5, q75=2.0, max=4.0),
        current_summary=Summary(mean=2.5, std=0.6, min=0.5, q25=2.0, median=2.5, q75=3.0, max=4.5),
        quality=Quality(),
        histogram=Histogram(labels=NUMERIC_LABELS, reference=[0, 0.2, 0.3, 0.3, 0.2, 0], current=[0, 0.05, 0.2, 0.3, 0.35, 0.1]),
    )
    return built.model_copy(update=update)


def categorical(name: str, labels: list[str], verdict: Verdict = "no_drift", **update: Any) -> FeatureResult:
    share = 1 / len(labels)
    return feature(
        name,
        verdict,
        kind="categorical",
        test="chi_square",
        effect="jensen_shannon",
        ks_statistic=None,
        wasserstein_norm=None,
        jensen_shannon=0.05,
        chi_square=12.5,
        reference_summary=None,
        current_summary=None,
        histogram=Histogram(labels=labels, reference=[share] * len(labels), current=[share] * len(labels)),
        **update,
    )


def result(*features: FeatureResult, **update: Any) -> DriftResult:
    drifted = sum(f.verdict == "drift" for f in features)
    checked = sum(f.verdict != "insufficient_data" for f in features)
    built = DriftResult(
        model="m",
        version=1,
        window=None,
        generated_at="2026-11-25T11:30:00.000Z",
        status="drift" if drifted * 2 >= max(checked, 1) else "no_drift",
        dataset_drift=drifted * 2 >= max(checked, 1),
        rows=300,
        min_rows=100,
        method="significant_and_large",
        correction="bonferroni",
        p_value=0.05,
        distance_threshold=0.1,
        drift_share=0.5,
        drifted_features=drifted,
        checked_features=checked,
        drifted_share=drifted / checked if checked else 0.0,
        features=list(features),
        prediction=None,
        data_quality=[],
        versions={"1": 300},
        sources=1,
    )
    return built.model_copy(update=update)
