"""A spec's hyperparameter search (``search:``): scikit-learn's RandomizedSearchCV on the training split, inside Train.

Candidates are scored by the spec's evaluation metric with ``cv`` folds; the best is refit on the whole training
split and goes on to conversion, parity and the holdout metrics like any model. Before searching, one fit of the
spec's own parameters is timed: a search whose estimated fits (candidates × folds, plus the refit) would not finish
within the Train step's timeout is refused with the estimate, before it starts.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from serverless_mlops.errors import MlopsError, SpecError
from serverless_mlops.model.spec import Metric, ModelSpec, Range, Search, Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

# set on the training Lambda at synth (infra/retraining.py) to its timeout; elsewhere a search may take Lambda's maximum
TRAIN_TIMEOUT_ENV = "MLOPS_TRAIN_TIMEOUT_SECONDS"
DEFAULT_TRAIN_TIMEOUT_SECONDS = 900
ESTIMATOR_STEP = "estimator"


class Candidate(BaseModel):
    params: dict[str, Any]
    mean_score: float
    std_score: float


class SearchResult(BaseModel):
    """What the lineage records of a search: the chosen params, the scoring and every candidate's cv scores."""

    best_params: dict[str, Any]
    best_score: float
    scoring: str
    cv: int
    candidates: list[Candidate]
    probe_seconds: float
    seconds: float


def train_timeout_seconds() -> float:
    value = os.environ.get(TRAIN_TIMEOUT_ENV)
    return float(value) if value else float(DEFAULT_TRAIN_TIMEOUT_SECONDS)


def check_params(spec: ModelSpec, estimator: Any, source: str) -> None:
    """Every searched parameter is one the estimator has."""
    from serverless_mlops.model.families import family_of

    family = family_of(spec.estimator.class_)
    if spec.search is None or (family is not None and family.open_params):
        return
    valid = estimator.get_params(deep=False)
    unknown = sorted(set(spec.search.params) - set(valid))
    if unknown:
        raise SpecError(f"{source}: search.params: unknown parameter(s) {', '.join(unknown)} for {spec.estimator.class_name}")


def distributions(search: Search) -> dict[str, Any]:
    """RandomizedSearchCV's ``param_distributions`` for the pipeline's estimator step."""
    from scipy import stats

    out: dict[str, Any] = {}
    for name, values in search.params.items():
        key = f"{ESTIMATOR_STEP}__{name}"
        if isinstance(values, Range):
            if values.integer:
                low, high = int(values.low), int(values.high)
                out[key] = stats.randint(low, high + 1) if not values.log else _LogInt(low, high)
            else:
                out[key] = stats.loguniform(values.low, values.high) if values.log else stats.uniform(values.low, values.high - values.low)
        else:
            out[key] = list(values)
    return out


class _LogInt:
    """Integers drawn log-uniformly from [low, high] (a distribution RandomizedSearchCV can sample: ``rvs``)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def rvs(self, random_state: Any = None) -> int:
        from scipy import stats

        return min(self.high, int(stats.loguniform(self.low, self.high + 1).rvs(random_state=random_state)))


def candidates(search: Search) -> int:
    """How many candidates RandomizedSearchCV fits: n_iter, or fewer when every parameter is a short list."""
    if all(isinstance(v, list) for v in search.params.values()):
        return min(search.n_iter, math.prod(len(v) for v in search.params.values() if isinstance(v, list)))
    return search.n_iter


def scoring(spec: ModelSpec, y: np.ndarray) -> tuple[Any, str]:
    """The search's scorer for the spec's metric (errors negated: the search maximizes) and its name."""
    import numpy as np
    from sklearn.metrics import f1_score, make_scorer

    metric = spec.evaluation.metric
    if metric is Metric.F1:
        if spec.task is Task.BINARY:
            positive = np.unique(y)[-1]  # the class the holdout metrics call positive (the last of the sorted classes)
            return make_scorer(f1_score, pos_label=positive), "f1"
        return "f1_macro", "f1_macro"
    names = {
        Metric.ACCURACY: "accuracy",
        Metric.ROC_AUC: "roc_auc" if spec.task is Task.BINARY else "roc_auc_ovr",
        Metric.RMSE: "neg_root_mean_squared_error",
        Metric.MAE: "neg_mean_absolute_error",
        Metric.R2: "r2",
    }
    return names[metric], names[metric]


def _plain(value: Any) -> Any:
    """A JSON-friendly parameter value (numpy scalars to Python)."""
    return value.item() if hasattr(value, "item") else value


def search(
    spec: ModelSpec, pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, *, timeout_seconds: float | None = None
) -> tuple[Pipeline, SearchResult]:
    """Run the spec's search on (x, y); returns the refit best pipeline and what the lineage records."""
    from sklearn.base import clone
    from sklearn.model_selection import RandomizedSearchCV

    assert spec.search is not None
    budget = train_timeout_seconds() if timeout_seconds is None else timeout_seconds
    started = time.monotonic()
    try:
        clone(pipeline).fit(x, y)
    except ValueError as exc:
        raise MlopsError(f"{spec.name}: training failed: {str(exc).splitlines()[0]}") from exc
    probe = time.monotonic() - started
    fits = candidates(spec.search) * spec.search.cv + 1
    estimate = probe * fits
    if estimate > budget:
        raise MlopsError(
            f"{spec.name}: search: {candidates(spec.search)} candidates × {spec.search.cv} folds + the refit is {fits} fits of "
            f"about {probe:.2f} s each (one fit of the spec's params, timed), ≈ {estimate:.0f} s: more than the Train step's "
            f"{budget:.0f} s; lower search.n_iter or search.cv, or train through a longer-running Train step "
            "(docs/deploying.md, 'Swapping the Train step')"
        )
    scorer, scorer_name = scoring(spec, y)
    searcher = RandomizedSearchCV(
        pipeline,
        distributions(spec.search),
        n_iter=candidates(spec.search),
        cv=spec.search.cv,
        scoring=scorer,
        random_state=spec.split.seed,
        refit=True,
        error_score="raise",
    )
    try:
        searcher.fit(x, y)
    except ValueError as exc:
        raise MlopsError(f"{spec.name}: search failed: {str(exc).splitlines()[0]}") from exc
    results = searcher.cv_results_
    prefix = f"{ESTIMATOR_STEP}__"
    result = SearchResult(
        best_params={k.removeprefix(prefix): _plain(v) for k, v in searcher.best_params_.items()},
        best_score=float(searcher.best_score_),
        scoring=scorer_name,
        cv=spec.search.cv,
        candidates=[
            Candidate(
                params={k.removeprefix(prefix): _plain(v) for k, v in params.items()},
                mean_score=float(mean),
                std_score=float(std),
            )
            for params, mean, std in zip(results["params"], results["mean_test_score"], results["std_test_score"], strict=True)
        ],
        probe_seconds=round(probe, 3),
        seconds=round(time.monotonic() - started, 3),
    )
    return searcher.best_estimator_, result
