"""The guard metrics: what the inference endpoint publishes per model version, and the one place their names live.

The release workflow's CheckGuards reads these with ``GetMetricData`` (namespace :data:`NAMESPACE`, dimensions
:data:`DIMENSIONS`, all four always present), so it compares a candidate with its champion on the same footing. Each
served request publishes one EMF record for the version that answered (``role`` ``production`` or ``canary``); the
shadow's (``role`` ``shadow``) are summed in-process and published as one record per shadow version and interval
(:mod:`serverless_mlops.serving.guard_tally`: the sums, and each request's latency in a list, are what per-request
records would give):

| metric                      | unit         | what                                                                     |
| --------------------------- | ------------ | ------------------------------------------------------------------------ |
| ``GuardRequests``           | Count        | requests this version scored (served, or shadowed)                       |
| ``GuardRows``               | Count        | rows it scored                                                           |
| ``GuardErrors``             | Count        | requests it failed: could not load, or raised while scoring (never a     |
|                             |              | client's invalid input)                                                  |
| ``GuardInvalidOutputs``     | Count        | rows whose output is invalid (:func:`invalid_rows`)                      |
| ``GuardLatency``            | Milliseconds | time this version took to score the request (model only, not the request)|
| ``CanaryFallbacks``         | Count        | requests routed to the canary but answered by the champion because the   |
|                             |              | canary could not load or score them (``role`` ``canary``)                |
| ``ShadowComparedRows``      | Count        | rows the shadow scored next to production (``role`` ``shadow``)          |
| ``ShadowAgreedRows``        | Count        | of those, rows on which the shadow agreed (:func:`agreement`)            |
| ``ShadowProbabilityDelta``  | None         | sum over compared rows of the largest |Δ probability| between the two     |
|                             |              | (classifiers); divide by ``ShadowComparedRows`` for the mean             |

Rates over a window are sums divided by sums: error rate = ``GuardErrors`` / ``GuardRequests``, invalid-output rate =
``GuardInvalidOutputs`` / ``GuardRows``, agreement = ``ShadowAgreedRows`` / ``ShadowComparedRows``.

Agreement, row by row: a classifier agrees when the shadow predicts the same label; a regressor agrees when
``|shadow - production| <= REGRESSION_TOLERANCE * max(|production|, 1)`` (5% of the production value, or 0.05 in
absolute terms for values under 1, so values near zero do not make every tiny difference a disagreement).

Nothing here imports powertools or boto3: the EMF record is built here (:func:`emf_record`) and printed by the handler,
and :func:`metric_data` turns one back into ``PutMetricData`` items for a local stack that has no CloudWatch Logs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

NAMESPACE = "ServerlessMlops"  # the functions' default (POWERTOOLS_METRICS_NAMESPACE names another)
SERVICE = "inference"
DIMENSIONS = ("service", "model", "version", "role")
Role = Literal["production", "canary", "shadow"]
PRODUCTION: Role = "production"
CANARY: Role = "canary"
SHADOW: Role = "shadow"

REQUESTS = "GuardRequests"
ROWS = "GuardRows"
ERRORS = "GuardErrors"
INVALID_OUTPUTS = "GuardInvalidOutputs"
LATENCY = "GuardLatency"
CANARY_FALLBACKS = "CanaryFallbacks"
SHADOW_COMPARED = "ShadowComparedRows"
SHADOW_AGREED = "ShadowAgreedRows"
SHADOW_PROBABILITY_DELTA = "ShadowProbabilityDelta"

UNITS: dict[str, str] = {
    REQUESTS: "Count",
    ROWS: "Count",
    ERRORS: "Count",
    INVALID_OUTPUTS: "Count",
    LATENCY: "Milliseconds",
    CANARY_FALLBACKS: "Count",
    SHADOW_COMPARED: "Count",
    SHADOW_AGREED: "Count",
    SHADOW_PROBABILITY_DELTA: "None",
}

REGRESSION_TOLERANCE = 0.05
PROBABILITY_TOLERANCE = 1e-3  # how far a row's probabilities may sum from 1 (they are rounded to 7 places)


def dimensions(model: str, version: int, role: Role) -> dict[str, str]:
    """The dimension values of ``model``'s ``version`` in ``role`` (what a GetMetricData query names)."""
    return {"service": SERVICE, "model": model, "version": str(version), "role": role}


def emf_record(
    values: Mapping[str, float | list[float]], *, model: str, version: int, role: Role, namespace: str = NAMESPACE, timestamp_ms: int
) -> dict[str, Any]:
    """One CloudWatch embedded-metric-format record holding ``values`` (metric name → value, or a list of up to 100
    values, one sample each) for one version/role."""
    return {
        "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": _directive(namespace, tuple(values))},
        "service": SERVICE,
        "model": model,
        "version": str(version),
        "role": role,
        **values,
    }


@functools.lru_cache(maxsize=64)
def _directive(namespace: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The metric directive of a record holding ``names`` (a request path makes the same few shapes over and over;
    callers only serialize it)."""
    return [{"Namespace": namespace, "Dimensions": [list(DIMENSIONS)], "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in names]}]


def metric_data(record: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """An EMF record (any, not only this module's) as ``(namespace, MetricData)`` for ``PutMetricData``."""
    from datetime import UTC, datetime

    meta = record["_aws"]
    when = datetime.fromtimestamp(meta["Timestamp"] / 1000, UTC)
    namespace = ""
    data: list[dict[str, Any]] = []
    for directive in meta["CloudWatchMetrics"]:
        namespace = directive["Namespace"]
        dims = [{"Name": name, "Value": str(record[name])} for name in directive["Dimensions"][0]]
        for metric in directive["Metrics"]:
            values = record[metric["Name"]]
            for value in values if isinstance(values, list) else [values]:
                data.append(
                    {
                        "MetricName": metric["Name"],
                        "Dimensions": dims,
                        "Timestamp": when,
                        "Value": float(value),
                        "Unit": metric.get("Unit", "None"),
                    }
                )
    return namespace, data


def invalid_rows(predictions: Sequence[Any], probabilities: Sequence[Sequence[float]] | None, classes: Sequence[Any] | None) -> int:
    """How many rows of an output are invalid: a value that is not a finite number (regression) or a label that is not
    one of the model's ``classes`` (classification), or probabilities that are not finite, outside [0, 1], or do not sum
    to 1 (within :data:`PROBABILITY_TOLERANCE`)."""
    allowed = set(classes) if classes else None
    bad = 0
    for row, prediction in enumerate(predictions):
        if allowed is not None:
            wrong = prediction not in allowed
        else:
            wrong = isinstance(prediction, bool) or not isinstance(prediction, int | float) or not math.isfinite(prediction)
        if not wrong and probabilities is not None:
            values = probabilities[row]
            wrong = not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in values) or abs(math.fsum(values) - 1.0) > PROBABILITY_TOLERANCE
        bad += wrong
    return bad


def agreement(
    production: Sequence[Any],
    shadow: Sequence[Any],
    *,
    classification: bool,
    production_probabilities: Sequence[Sequence[float]] | None = None,
    shadow_probabilities: Sequence[Sequence[float]] | None = None,
    tolerance: float = REGRESSION_TOLERANCE,
) -> tuple[int, float]:
    """``(rows agreed, sum of per-row largest |Δ probability|)`` between two outputs for the same rows (see the module
    docstring for what agreeing means; the probability sum is 0 without probabilities on both sides)."""
    agreed = 0
    if classification:
        for p, s in zip(production, shadow, strict=True):
            agreed += p == s
    else:
        for p, s in zip(production, shadow, strict=True):
            agreed += abs(s - p) <= tolerance * max(abs(p), 1.0)
    delta = 0.0
    if production_probabilities is not None and shadow_probabilities is not None:
        for p_row, s_row in zip(production_probabilities, shadow_probabilities, strict=True):
            delta += max([abs(a - b) for a, b in zip(p_row, s_row, strict=True)], default=0.0)
    return agreed, delta
