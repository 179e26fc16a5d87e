"""Where the quality check puts the newest labelled rows it hands to retraining (:mod:`serverless_mlops.quality.recent_rows`
writes them, the retraining contract names the prefix for the state machine's grants). Apart, with no imports, so the
contract stays light: the release function imports it and must not load numpy."""

from __future__ import annotations

HOLDOUT_RECENT_PREFIX = "holdout-recent"  # holdout-recent/{model}/{window}/{sha256}.csv; PrepareData never reads it


def recent_key(model: str, window_label: str, sha256: str) -> str:
    return f"{HOLDOUT_RECENT_PREFIX}/{model}/{window_label}/{sha256}.csv"
