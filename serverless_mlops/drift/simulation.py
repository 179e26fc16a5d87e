"""How often a drift rule false-alarms and how often it detects, measured on windows drawn from known distributions.

A reference data set is profiled as training profiles it (``profile.build_profile``: summaries and a seeded sample of
at most 10,000 rows); then windows are drawn either from the same distributions (undrifted: every alarm is false) or
with some numeric features shifted by a fraction of their standard deviation, and each window goes through the same
:func:`~serverless_mlops.drift.check.check_drift` the drift Lambda runs. Seeded: the same arguments give the same
counts. ``tests/unit/test_drift_rule.py`` runs a small grid in ``make test``; ``benchmarks/drift_rule.py`` a large
one for the table in docs/drift.md.

Features: three quarters numeric, N(0, 1); one quarter categorical, five categories with fixed unequal shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from serverless_mlops.drift.capture_reader import Column, CurrentData
from serverless_mlops.drift.check import check_drift
from serverless_mlops.model.profile import build_profile
from serverless_mlops.model.spec import Drift

CATEGORIES = np.array(["a", "b", "c", "d", "e"])
SHARES = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


@dataclass(frozen=True)
class Outcome:
    """What a rule said over ``windows`` windows of one size against one reference."""

    windows: int
    dataset_alarms: int  # windows declared dataset drift
    feature_flags: int  # features declared drifted, over all windows, among the unshifted ones
    features_checked: int  # unshifted features checked, over all windows
    shifted_detected: int  # shifted features declared drifted, over all windows
    shifted_checked: int

    @property
    def dataset_rate(self) -> float:
        return self.dataset_alarms / self.windows if self.windows else 0.0

    @property
    def false_flag_rate(self) -> float:
        return self.feature_flags / self.features_checked if self.features_checked else 0.0

    @property
    def detection_rate(self) -> float:
        return self.shifted_detected / self.shifted_checked if self.shifted_checked else 0.0


def feature_kinds(features: int) -> dict[str, str]:
    """``features`` names: the first three quarters numeric, the rest categorical."""
    numeric = features - features // 4
    return {f"f{i:02d}": "numeric" if i < numeric else "categorical" for i in range(features)}


def _draw(rng: np.random.Generator, kinds: dict[str, str], rows: int, shifted: set[str], shift: float) -> dict[str, NDArray[Any]]:
    columns: dict[str, NDArray[Any]] = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            columns[name] = rng.standard_normal(rows) + (shift if name in shifted else 0.0)
        else:
            columns[name] = CATEGORIES[rng.choice(CATEGORIES.size, size=rows, p=SHARES)]
    return columns


def _current(columns: dict[str, NDArray[Any]], kinds: dict[str, str], prediction: NDArray[Any]) -> CurrentData:
    built = {name: Column(kinds[name]) for name in columns}
    for name, values in columns.items():
        built[name].add(values)
    rows = len(prediction)
    return CurrentData(
        rows=rows, columns=built, prediction=Column("numeric", parts=[prediction]), versions={1: rows}, sources=["simulated"], skipped=[]
    )


def simulate(
    *,
    reference_rows: int,
    window_rows: int,
    windows: int,
    config: Drift,
    features: int = 20,
    shifted: int = 0,
    shift: float = 0.5,
    seed: int = 0,
) -> Outcome:
    """Run ``windows`` windows of ``window_rows`` rows against a reference of ``reference_rows`` rows under ``config``.

    ``shifted`` numeric features (the first ones) are moved by ``shift`` standard deviations in every window; the
    others are drawn from the reference's own distributions."""
    rng = np.random.default_rng(seed)
    kinds = feature_kinds(features)
    numeric = [name for name, kind in kinds.items() if kind == "numeric"]
    moved = set(numeric[:shifted])
    reference = _draw(rng, kinds, reference_rows, set(), 0.0)
    profile = build_profile(reference, kinds, rng.standard_normal(reference_rows), "numeric", seed=seed)
    alarms = flags = checked = detected = shifted_checked = 0
    for _ in range(windows):
        current = _current(_draw(rng, kinds, window_rows, moved, shift), kinds, rng.standard_normal(window_rows))
        result = check_drift(profile, config, current, model="simulated", version=1, window=None, generated_at="")
        alarms += result.dataset_drift
        for feature in result.features:
            if feature.verdict == "insufficient_data":
                continue
            if feature.name in moved:
                shifted_checked += 1
                detected += feature.verdict == "drift"
            else:
                checked += 1
                flags += feature.verdict == "drift"
    return Outcome(windows, alarms, flags, checked, detected, shifted_checked)
