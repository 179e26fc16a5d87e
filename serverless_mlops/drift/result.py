"""What a drift check finds, as the report, the alert and the metrics read it: per feature and for the data set.

Pydantic models only (the JSON document is ``DriftResult.model_dump(mode="json")``); the check that fills them is
:mod:`serverless_mlops.drift.check`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["drift", "no_drift", "insufficient_data"]
Test = Literal["ks", "chi_square", "wasserstein_norm", "jensen_shannon"]
Problem = Literal["absent_column", "missing_values", "out_of_range", "unseen_categories"]


class Histogram(BaseModel):
    """Reference vs current shares per bin (numeric: ``edges``; categorical: ``labels``), for the HTML report."""

    labels: list[str]
    reference: list[float]
    current: list[float]


class Quality(BaseModel):
    missing_share: float = 0.0
    out_of_range_share: float = 0.0
    unseen_share: float = 0.0
    unseen: list[str] = Field(default_factory=list)


class Summary(BaseModel):
    """A numeric sample at a glance: its mean, standard deviation and quartiles (None when it has no values)."""

    mean: float | None = None
    std: float | None = None
    min: float | None = None
    q25: float | None = None
    median: float | None = None
    q75: float | None = None
    max: float | None = None


class FeatureResult(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    verdict: Verdict
    test: Test
    statistic: float | None = Field(default=None, description="the value the verdict rests on: a p-value or a distance")
    threshold: float
    effect: Literal["wasserstein_norm", "jensen_shannon"] | None = Field(
        default=None, description="significant_and_large: the effect size that must also reach effect_threshold"
    )
    effect_size: float | None = None
    effect_threshold: float | None = None
    p_value: float | None = None
    ks_statistic: float | None = None
    chi_square: float | None = None
    wasserstein_norm: float | None = None
    jensen_shannon: float | None = None
    psi: float | None = None
    reference_rows: int
    current_rows: int
    reference_summary: Summary | None = None
    current_summary: Summary | None = None
    notes: list[str] = Field(
        default_factory=list,
        description="why a verdict or a statistic is missing (a column absent from the window, every value missing, too few rows)",
    )  # the wording: ABSENT, ALL_MISSING, TOO_FEW, NO_REFERENCE, INFINITE, BEYOND_FLOAT, NOT_FINITE
    quality: Quality
    histogram: Histogram


class Finding(BaseModel):
    feature: str
    problem: Problem
    share: float
    detail: str


class Window(BaseModel):
    start: str
    end: str
    label: str


class DriftResult(BaseModel):
    model: str
    version: int
    window: Window | None
    generated_at: str
    status: Verdict
    dataset_drift: bool
    rows: int
    min_rows: int
    method: Literal["significant_and_large", "statistical_tests", "distances"]
    correction: str
    p_value: float
    distance_threshold: float
    drift_share: float
    drifted_features: int
    checked_features: int
    drifted_share: float
    features: list[FeatureResult]
    prediction: FeatureResult | None
    data_quality: list[Finding]
    versions: dict[str, int] = Field(default_factory=dict)
    sources: int = 0
    files: list[str] = Field(default_factory=list, description="a check of local files (no window): their names")
    skipped_sources: list[dict[str, str]] = Field(default_factory=list)

    def drifted(self) -> list[FeatureResult]:
        return [f for f in self.features if f.verdict == "drift"]
