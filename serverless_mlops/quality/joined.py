"""What joining ground truth to a window's captured predictions yields (:mod:`serverless_mlops.quality.join` builds
it): per model version, the predictions' class codes and probabilities (for CBPE) and the labelled rows (for the
realized metrics), and the counts of what did not join and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from serverless_mlops.drift.capture_reader import SkippedSource

__all__ = ["JoinCounts", "Joined", "Labelled", "VersionRows"]


@dataclass
class Labelled:
    """The joined rows of one version (in no particular order): ``probabilities``, one row per labelled row that has
    them (as :meth:`Joiner.result` leaves them, one array of rows x classes: a hundred thousand rows are not a
    hundred thousand arrays); ``ids`` and ``times``, the prediction ids and capture times, let
    :mod:`serverless_mlops.quality.recent_rows` find the rows' features again."""

    truth: list[Any] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)
    probabilities: list[NDArray[np.float64]] | NDArray[np.float64] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)


@dataclass
class VersionRows:
    """One version's predictions in the window: their count, class codes and raw probabilities (classifiers, for
    CBPE), and the labelled ones. The codes and probabilities are kept small (the narrowest integer that holds the
    classes; float32, whose 24 bits hold a served probability's 7 decimals), one array per block read, and widened
    when asked for (CBPE, a block at a time): a million binary predictions keep 9 MB, not 24."""

    version: int
    predictions: int = 0
    codes: list[NDArray[np.integer[Any]]] = field(default_factory=list)
    probabilities: list[NDArray[np.floating[Any]]] = field(default_factory=list)
    labelled: Labelled = field(default_factory=Labelled)

    def all_probabilities(self, classes: int) -> NDArray[np.float64]:
        if not self.probabilities:
            return np.zeros((0, classes))
        return np.concatenate(self.probabilities, dtype=np.float64)

    def all_codes(self) -> NDArray[np.int64]:
        if not self.codes:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.codes, dtype=np.int64)


@dataclass
class JoinCounts:
    labels: int = 0
    joined: int = 0
    before_prediction: int = 0
    late: int = 0
    unmatched: int = 0
    duplicate_predictions: int = 0
    predictions_without_id: int = 0


@dataclass
class Joined:
    versions: dict[int, VersionRows]
    counts: JoinCounts
    sources: list[str]
    skipped: list[SkippedSource]
    probabilities: str  # "captured", "recomputed", "mixed", or "none"
    labelled_sources: list[str] = field(default_factory=list)  # the capture objects that hold a matched row (for capture_rows)
