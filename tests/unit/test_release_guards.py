"""The release guards' decision (serverless_mlops/release/guards.py) and the spec's release section
(serverless_mlops/model/release_spec.py): pure, no I/O.

The statistical guard gets a seeded simulation of its false-alarm rate (a healthy candidate with the champion's error
rate) and its power (a 5x error burst) at a canary's traffic split.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from serverless_mlops.model.release_spec import Guards, ReleaseSpec, check_strategy, duration_seconds, plan_steps
from serverless_mlops.model.spec import parse_spec
from serverless_mlops.release.guards import Observation, VersionCounts, binomial_sf, breaches, decide, pct
from tests.helpers.specs import example_spec

GUARDS = Guards()


def verdict(candidate: VersionCounts, champion: VersionCounts | None = None, **kwargs: object) -> tuple[str, str]:
    options: dict[str, object] = {"last_step": True, "extensions": 0, "max_extensions": 3, "low_traffic": "rollback"} | kwargs
    observation = Observation(
        candidate=candidate,
        champion=champion or VersionCounts(),
        **{k: options.pop(k) for k in ("alarms_in_alarm", "missing_alarms", "canary_gone") if k in options},
    )
    guards = options.pop("guards", GUARDS)
    assert isinstance(guards, Guards)
    result = decide(observation, guards, **options)  # type: ignore[arg-type]
    return result.decision, result.reason


# -- the exact binomial tail ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("k", "n", "p"), [(0, 10, 0.3), (1, 10, 0.3), (3, 10, 0.3), (10, 10, 0.3), (5, 412, 0.01), (40, 412, 0.01), (2, 5, 0.9)]
)
def test_binomial_tail_matches_the_definition(k: int, n: int, p: float) -> None:
    expected = math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert binomial_sf(k, n, p) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_binomial_tail_edges() -> None:
    assert binomial_sf(11, 10, 0.5) == 0.0
    assert binomial_sf(1, 10, 0.0) == 0.0
    assert binomial_sf(3, 10, 1.0) == 1.0
    assert binomial_sf(5000, 1_000_000, 0.004) == pytest.approx(0.0, abs=1e-12)  # far in the tail, no overflow


# -- decisions -----------------------------------------------------------------------------------------------------
def test_an_error_burst_is_rolled_back_with_a_reason_a_person_can_read() -> None:
    decision, reason = verdict(VersionCounts(requests=412, rows=412, errors=15))
    assert decision == "rollback"
    assert reason == "error rate 3.6% > 1% over 412 requests"
    # 9 of 412 (2.2%) is not enough evidence against the 1% ceiling at alpha 1% (P = 0.02) ...
    assert breaches(Observation(candidate=VersionCounts(requests=412, rows=412, errors=9), champion=VersionCounts()), GUARDS) == []
    # ... but it is against a champion failing 0.2% of 4,000 requests
    decision, reason = verdict(VersionCounts(requests=412, rows=412, errors=9), VersionCounts(requests=4000, rows=4000, errors=8))
    assert (decision, reason) == (
        "rollback",
        "error rate 2.2% over 412 requests vs the champion's 0.2% over 4000 (10.9x; at most 2x allowed)",
    )


def test_a_candidate_worse_than_the_champion_is_rolled_back_below_the_ceiling() -> None:
    guards = Guards(max_error_rate=0.2)
    decision, reason = verdict(
        VersionCounts(requests=1000, rows=1000, errors=40), VersionCounts(requests=9000, rows=9000, errors=45), guards=guards
    )
    assert decision == "rollback"
    assert reason == "error rate 4% over 1000 requests vs the champion's 0.5% over 9000 (8.0x; at most 2x allowed)"


def test_invalid_outputs_count_over_rows() -> None:
    decision, reason = verdict(VersionCounts(requests=200, rows=1000, invalid=1000), VersionCounts(requests=2000, rows=2000))
    assert decision == "rollback"
    assert reason.startswith("invalid-output rate 100% > 1% over 1000 rows")


def test_a_burst_rolls_back_before_the_minimum_request_count() -> None:
    assert verdict(VersionCounts(requests=20, rows=20, errors=20))[0] == "rollback"


def test_low_traffic_waits_then_ends_as_configured() -> None:
    few = VersionCounts(requests=40, rows=40)
    decision, reason = verdict(few, extensions=0, max_extensions=2)
    assert (decision, reason) == ("wait", "40 requests on the candidate < 100 needed (guards.min_requests): baking again (1 of 2)")
    decision, reason = verdict(few, extensions=2, max_extensions=2)
    assert decision == "rollback"
    assert reason.startswith("too little traffic to judge")
    assert verdict(few, extensions=2, max_extensions=2, low_traffic="promote")[0] == "promote"
    assert verdict(few, extensions=2, max_extensions=2, low_traffic="promote", last_step=False)[0] == "advance"


def test_healthy_steps_advance_then_promote() -> None:
    healthy = VersionCounts(requests=300, rows=600, errors=1)
    assert verdict(healthy, last_step=False)[0] == "advance"
    decision, reason = verdict(healthy)
    assert decision == "promote"
    assert reason == "guards passed: error rate 0.33% over 300 requests, invalid-output rate 0% over 600 rows"


def test_alarms_and_a_lost_canary_decide_first() -> None:
    healthy = VersionCounts(requests=300, rows=300)
    assert verdict(healthy, canary_gone="aborted by ann: enough") == ("rollback", "aborted by ann: enough")
    assert verdict(healthy, alarms_in_alarm=["p99", "5xx"]) == ("rollback", "alarm p99, 5xx in ALARM")
    decision, reason = verdict(healthy, missing_alarms=["typo"])
    assert (decision, reason) == ("rollback", "alarm typo named in release.guards.alarms does not exist")


def test_latency_guard_only_when_asked_and_with_enough_requests() -> None:
    slow = VersionCounts(requests=300, rows=300, latency_ms=30.0)
    champion = VersionCounts(requests=3000, rows=3000, latency_ms=10.0)
    assert breaches(Observation(candidate=slow, champion=champion), GUARDS) == []
    guards = Guards(max_latency_ratio=2.0)
    assert breaches(Observation(candidate=slow, champion=champion), guards) == [
        "mean latency 30.0 ms vs the champion's 10.0 ms (3.0x > 2x) over 300 requests"
    ]
    few = slow.model_copy(update={"requests": 10})
    assert breaches(Observation(candidate=few, champion=champion), guards) == []


def test_pct_reads_like_a_person_writes_it() -> None:
    assert [pct(0.021), pct(0.01), pct(0.0005), pct(0.125)] == ["2.1%", "1%", "0.05%", "12.5%"]


# -- the statistical guard, simulated ------------------------------------------------------------------------------
def simulate(rng: np.random.Generator, candidate_rate: float, *, trials: int, n_candidate: int, n_champion: int, rate: float) -> float:
    """The share of checks that roll back a candidate with ``candidate_rate`` next to a champion with ``rate``."""
    fired = 0
    for _ in range(trials):
        bad_c = int(rng.binomial(n_candidate, candidate_rate))
        bad_0 = int(rng.binomial(n_champion, rate))
        observation = Observation(
            candidate=VersionCounts(requests=n_candidate, rows=n_candidate, errors=bad_c),
            champion=VersionCounts(requests=n_champion, rows=n_champion, errors=bad_0),
        )
        fired += bool(breaches(observation, GUARDS))
    return fired / trials


def test_false_alarm_rate_and_power_of_the_error_guard() -> None:
    """A 10% canary (1,000 of 10,000 requests) next to a champion failing 0.4% of requests: a healthy candidate with
    the same rate is rolled back in at most alpha (1%) of checks; a 5x burst (2%) in at least 90%."""
    rng = np.random.default_rng(17)
    false_alarms = simulate(rng, 0.004, trials=2000, n_candidate=1000, n_champion=9000, rate=0.004)
    power = simulate(rng, 0.02, trials=2000, n_candidate=1000, n_champion=9000, rate=0.004)
    assert false_alarms <= GUARDS.alpha
    assert power >= 0.9, power


# -- the spec's release section ------------------------------------------------------------------------------------
def test_presets_become_steps() -> None:
    release = ReleaseSpec()
    assert plan_steps(release) == [(10.0, 600)]
    assert plan_steps(release, "linear20-5m") == [(20.0, 300), (40.0, 300), (60.0, 300), (80.0, 300)]
    assert plan_steps(release, "all-at-once") == [(100.0, 600)]
    explicit = ReleaseSpec(strategy="steps", steps=[{"weight": 5, "bake": "2m"}, {"weight": 50, "bake": "1h"}])  # type: ignore[list-item]
    assert plan_steps(explicit) == [(5.0, 120), (50.0, 3600)]
    with pytest.raises(ValueError, match=r"release\.steps"):
        plan_steps(release, "steps")


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"strategy": "canary0-1m"}, "must be 1..99"),
        ({"strategy": "blue-green"}, "expected all-at-once, canary"),
        ({"strategy": "canary10-25h"}, "at most 24h"),
        ({"strategy": "steps"}, "needs at least one step"),
        ({"steps": [{"weight": 5, "bake": "1m"}]}, "only strategy 'steps' takes steps"),
        ({"strategy": "steps", "steps": [{"weight": 50, "bake": "1m"}, {"weight": 5, "bake": "1m"}]}, "must not decrease"),
        ({"bake": "25h"}, "at most 24h"),
        ({"guards": {"max_error_rate": 1.5}}, "release.guards.max_error_rate"),
        ({"low_traffic": "pray"}, "release.low_traffic"),
    ],
)
def test_a_bad_release_section_names_the_field(section: dict[str, object], problem: str) -> None:
    document = example_spec("breast-cancer").model_dump(mode="json", by_alias=True)
    document["release"] = section
    with pytest.raises(Exception, match="invalid model spec") as caught:
        parse_spec(document, source="models/breast-cancer.yaml")
    assert problem in str(caught.value)


def test_strategy_and_duration_checks() -> None:
    assert check_strategy("canary5-30s") == "canary5-30s"
    assert duration_seconds(" 2h ") == 7200
    with pytest.raises(ValueError, match="expected a duration"):
        duration_seconds("10 minutes")
    with pytest.raises(ValidationError):
        ReleaseSpec(max_extensions=11)
