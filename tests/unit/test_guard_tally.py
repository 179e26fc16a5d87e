"""The shadow's guard metrics summed in-process (serverless_mlops/serving/guard_tally.py): the records it publishes
add up, metric by metric, to what one record per request gave (read back as CloudWatch would, through the EMF
records' MetricData), they are published on time, and nothing pending is left behind by a flush."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from serverless_mlops.serving import guard_metrics as gm
from serverless_mlops.serving.guard_tally import MAX_VALUES, GuardTally


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Records:
    """A Telemetry.guard that keeps the EMF records it is given."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, model: str, version: int, role: gm.Role, values: dict[str, Any], *, at: float | None = None) -> None:
        assert at is not None
        self.records.append(gm.emf_record(values, model=model, version=version, role=role, timestamp_ms=int(at * 1000)))

    def statistics(self) -> dict[tuple[str, str, str], dict[str, tuple[float, int]]]:
        """(model, version, role) → metric → (Sum, SampleCount), from the records' MetricData."""
        out: dict[tuple[str, str, str], dict[str, tuple[float, int]]] = {}
        for record in self.records:
            _, data = gm.metric_data(record)
            key = (record["model"], record["version"], record["role"])
            for datum in data:
                total, count = out.setdefault(key, {}).get(datum["MetricName"], (0.0, 0))
                out[key][datum["MetricName"]] = (total + datum["Value"], count + 1)
        return out

    def latencies(self) -> Counter[float]:
        return Counter(
            value
            for record in self.records
            if gm.LATENCY in record
            for value in (record[gm.LATENCY] if isinstance(record[gm.LATENCY], list) else [record[gm.LATENCY]])
        )


def _requests(seed: int, n: int) -> list[tuple[str, int, dict[str, float]]]:
    """What a shadow reports over ``n`` requests of two models: scored (rows, agreement, latency) or failed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        model, version = rng.choice([("wine", 3), ("wine", 4), ("breast-cancer", 2)])
        if rng.random() < 0.1:
            out.append((model, version, {gm.REQUESTS: 1, gm.ERRORS: 1}))
            continue
        rows = rng.randint(1, 20)
        agreed = rng.randint(0, rows)
        values = {gm.REQUESTS: 1, gm.ROWS: rows, gm.INVALID_OUTPUTS: rng.randint(0, 1), gm.LATENCY: round(rng.uniform(0.01, 2.0), 4)}
        values |= {gm.SHADOW_COMPARED: rows, gm.SHADOW_AGREED: agreed, gm.SHADOW_PROBABILITY_DELTA: rng.random() * (rows - agreed)}
        out.append((model, version, values))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_summed_records_give_every_sum_and_every_latency_sample_the_per_request_records_gave(seed: int) -> None:
    clock = Clock()
    each, summed = Records(), Records()
    per_request = GuardTally(each, seconds=0, clock=clock)
    tally = GuardTally(summed, seconds=10, clock=clock)
    for model, version, values in _requests(seed, 1500):
        per_request.add(model, version, gm.SHADOW, values)
        tally.add(model, version, gm.SHADOW, values)
        clock.now += 0.05
        tally.maybe_flush()
    tally.flush()

    assert len(each.records) == 1500
    assert len(summed.records) < 1500 / 5
    expected, got = each.statistics(), summed.statistics()
    assert set(got) == set(expected)
    for key, metrics in expected.items():
        assert set(got[key]) == set(metrics)
        for name, (total, count) in metrics.items():
            assert got[key][name][0] == pytest.approx(total, rel=1e-12, abs=1e-9), (key, name)
            if name == gm.LATENCY:
                assert got[key][name][1] == count, "one latency sample per request, as before"
    assert summed.latencies() == each.latencies()
    assert all(len(r[gm.LATENCY]) <= MAX_VALUES for r in summed.records if gm.LATENCY in r), "EMF takes 100 values a metric"


def test_a_version_is_published_when_its_latencies_reach_100_and_carries_its_first_requests_time() -> None:
    clock = Clock()
    records = Records()
    tally = GuardTally(records, seconds=60, clock=clock)
    first = clock.now
    for i in range(MAX_VALUES - 1):
        tally.add("wine", 3, gm.SHADOW, {gm.REQUESTS: 1, gm.ROWS: 2, gm.LATENCY: float(i)})
        clock.now += 0.01
    assert records.records == []
    tally.add("wine", 3, gm.SHADOW, {gm.REQUESTS: 1, gm.ROWS: 2, gm.LATENCY: 99.0})

    [record] = records.records
    assert record[gm.REQUESTS] == MAX_VALUES
    assert record[gm.ROWS] == 2 * MAX_VALUES
    assert record[gm.LATENCY] == [float(i) for i in range(MAX_VALUES)]
    assert record["_aws"]["Timestamp"] == int(first * 1000)
    assert tally.flush() == 0, "nothing of that version is left pending"


def test_pending_sums_are_published_once_the_oldest_is_due_and_not_before() -> None:
    clock = Clock()
    records = Records()
    tally = GuardTally(records, seconds=10, clock=clock)
    assert tally.maybe_flush() == 0
    tally.add("wine", 3, gm.SHADOW, {gm.REQUESTS: 1, gm.ERRORS: 1})
    clock.now += 4
    tally.add("wine", 4, gm.SHADOW, {gm.REQUESTS: 1, gm.ROWS: 1, gm.LATENCY: 0.5})
    clock.now += 5.9
    assert tally.maybe_flush() == 0
    assert records.records == []
    clock.now += 0.1
    assert tally.maybe_flush() == 2

    by_version = {r["version"]: r for r in records.records}
    assert by_version["3"][gm.ERRORS] == 1
    assert gm.LATENCY not in by_version["3"], "a version whose requests all failed has no latency"
    assert by_version["4"][gm.LATENCY] == [0.5]
    assert tally.maybe_flush() == 0
    clock.now += 100
    assert tally.maybe_flush() == 0, "nothing pending, nothing published"


def test_seconds_zero_publishes_each_request_as_before() -> None:
    clock = Clock()
    records = Records()
    tally = GuardTally(records, seconds=0, clock=clock)
    tally.add("wine", 3, gm.SHADOW, {gm.REQUESTS: 1, gm.LATENCY: 0.25})
    assert [(r[gm.REQUESTS], r[gm.LATENCY]) for r in records.records] == [(1, 0.25)]
    assert tally.flush() == 0
    assert math.isclose(records.records[0]["_aws"]["Timestamp"] / 1000, clock.now)
