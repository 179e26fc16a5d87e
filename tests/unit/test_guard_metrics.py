"""The guard metrics' pure parts: the EMF record CheckGuards' GetMetricData finds, its PutMetricData form, what an
invalid output is, and what agreeing means (identical outputs agree on every row; flipped labels on none)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from serverless_mlops.serving import guard_metrics as gm


def test_an_emf_record_names_every_dimension_and_unit_and_reads_back_as_metric_data() -> None:
    record = gm.emf_record(
        {gm.REQUESTS: 1, gm.ROWS: 3, gm.LATENCY: 0.25}, model="wine", version=7, role=gm.CANARY, timestamp_ms=1_765_000_000_000
    )

    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "ServerlessMlops"
    assert directive["Dimensions"] == [["service", "model", "version", "role"]]
    assert directive["Metrics"] == [
        {"Name": "GuardRequests", "Unit": "Count"},
        {"Name": "GuardRows", "Unit": "Count"},
        {"Name": "GuardLatency", "Unit": "Milliseconds"},
    ]
    assert {k: record[k] for k in gm.DIMENSIONS} == {"service": "inference", "model": "wine", "version": "7", "role": "canary"}
    assert gm.dimensions("wine", 7, gm.CANARY) == {k: record[k] for k in gm.DIMENSIONS}, "what a GetMetricData query names"

    namespace, data = gm.metric_data(record)
    assert namespace == "ServerlessMlops"
    dims = [
        {"Name": "service", "Value": "inference"},
        {"Name": "model", "Value": "wine"},
        {"Name": "version", "Value": "7"},
        {"Name": "role", "Value": "canary"},
    ]
    when = datetime.fromtimestamp(1_765_000_000, UTC)
    assert data == [
        {"MetricName": "GuardRequests", "Dimensions": dims, "Timestamp": when, "Value": 1.0, "Unit": "Count"},
        {"MetricName": "GuardRows", "Dimensions": dims, "Timestamp": when, "Value": 3.0, "Unit": "Count"},
        {"MetricName": "GuardLatency", "Dimensions": dims, "Timestamp": when, "Value": 0.25, "Unit": "Milliseconds"},
    ]


def test_metric_data_reads_powertools_records_with_value_lists() -> None:
    record = {
        "_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["service"]], "Metrics": [{"Name": "Latency"}]}]},
        "service": "inference",
        "Latency": [1.5, 2.5],
    }
    _, data = gm.metric_data(record)
    assert [(d["Value"], d["Unit"]) for d in data] == [(1.5, "None"), (2.5, "None")]


def test_every_metric_has_a_unit() -> None:
    names = [gm.REQUESTS, gm.ROWS, gm.ERRORS, gm.INVALID_OUTPUTS, gm.LATENCY, gm.CANARY_FALLBACKS, gm.SHADOW_COMPARED, gm.SHADOW_AGREED]
    assert set(gm.UNITS) == {*names, gm.SHADOW_PROBABILITY_DELTA}


@pytest.mark.parametrize(
    ("predictions", "probabilities", "classes", "bad"),
    [
        ([0, 1, 1], [[0.2, 0.8], [0.5, 0.5], [0.0, 1.0]], [0, 1], 0),
        ([0, 2, 1], None, [0, 1], 1),  # a label the model does not have
        (["a", "b"], [[0.5, 0.6], [math.nan, 1.0]], ["a", "b"], 2),  # sums to 1.1; NaN
        ([1], [[1.2, -0.2]], [1, 0], 1),  # outside [0, 1] though it sums to 1
        ([1.5, math.inf, math.nan, True, "x"], None, None, 4),  # regression: only finite numbers
    ],
)
def test_invalid_rows_counts_rows_no_model_should_answer(
    predictions: list, probabilities: list | None, classes: list | None, bad: int
) -> None:
    assert gm.invalid_rows(predictions, probabilities, classes) == bad


def test_identical_outputs_agree_on_every_row_and_flipped_labels_on_none() -> None:
    labels = [0, 1, 1, 0]
    probabilities = [[0.9, 0.1], [0.3, 0.7], [0.4, 0.6], [0.8, 0.2]]
    assert gm.agreement(
        labels, labels, classification=True, production_probabilities=probabilities, shadow_probabilities=probabilities
    ) == (4, 0.0)

    flipped = [1 - label for label in labels]
    swapped = [row[::-1] for row in probabilities]
    agreed, delta = gm.agreement(labels, flipped, classification=True, production_probabilities=probabilities, shadow_probabilities=swapped)
    assert agreed == 0
    assert delta == pytest.approx(0.8 + 0.4 + 0.2 + 0.6)


def test_regression_agreement_is_relative_above_one_and_absolute_below() -> None:
    production = [100.0, 100.0, 0.01, 0.01, -200.0]
    shadow = [104.9, 105.2, 0.055, 0.07, -191.0]
    assert gm.agreement(production, shadow, classification=False) == (3, 0.0)
    assert gm.agreement(production, shadow, classification=False, tolerance=0.1) == (5, 0.0)
