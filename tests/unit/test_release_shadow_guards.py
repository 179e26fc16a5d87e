"""The shadow phase's verdict (serverless_mlops/release/shadow_guards.py) and the spec's ``release.shadow``: pure, no I/O.

The agreement test gets a seeded simulation of its false-alarm rate (a candidate that agrees exactly
``min_agreement`` of the time, and one above it) and its power (one that agrees 80% and 50% of the time), printed as
a table (``pytest -s``) and bounded by the assertions.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from serverless_mlops.model.release_spec import Guards, ReleaseSpec, bounded_seconds
from serverless_mlops.release.guards import VersionCounts
from serverless_mlops.release.shadow_guards import AgreementCounts, ShadowObservation, agreement_breach, decide_shadow

GUARDS = Guards()
HEALTHY = VersionCounts(requests=300, rows=300)
AGREEING = AgreementCounts(compared=300, agreed=290)


def verdict(
    shadow: VersionCounts = HEALTHY,
    agreement: AgreementCounts = AGREEING,
    **kwargs: object,
) -> tuple[str, str]:
    options: dict[str, object] = {"min_agreement": 0.9, "extensions": 0, "max_extensions": 2, "low_traffic": "rollback"} | kwargs
    observation = ShadowObservation(
        shadow=shadow,
        agreement=agreement,
        champion=VersionCounts(requests=300, rows=300),
        **{k: options.pop(k) for k in ("alarms_in_alarm", "missing_alarms", "shadow_gone") if k in options},
    )
    result = decide_shadow(observation, GUARDS, **options)  # type: ignore[arg-type]
    return result.decision, result.reason


def test_a_shadow_that_agrees_passes_with_its_figures() -> None:
    assert verdict() == ("advance", "shadow phase: passed: agreement 96.7% over 300 rows, error rate 0% over 300 shadowed requests")
    # a regressor's rows that all failed to compare (none scored) say so rather than invent a rate
    decision, reason = verdict(agreement=AgreementCounts())
    assert (decision, reason.endswith("no rows compared, error rate 0% over 300 shadowed requests")) == ("advance", True)


def test_the_rules_apply_in_order() -> None:
    gone = "aborted by alice: wrong candidate"
    assert verdict(shadow_gone=gone, alarms_in_alarm=["5xx"]) == ("rollback", f"shadow phase: {gone}")
    assert verdict(missing_alarms=["p99"], alarms_in_alarm=["5xx"]) == (
        "rollback",
        "shadow phase: alarm p99 named in release.guards.alarms does not exist",
    )
    assert verdict(alarms_in_alarm=["5xx", "p99"]) == ("rollback", "shadow phase: alarm 5xx, p99 in ALARM")
    # the shadow's own failures and its disagreement are both named
    decision, reason = verdict(VersionCounts(requests=300, rows=270, errors=30), AgreementCounts(compared=270, agreed=100))
    assert decision == "rollback"
    assert reason == (
        "shadow phase: error rate 10% > 1% over 300 requests; agreement 37% < 90% over 270 rows (release.shadow.min_agreement)"
    )


def test_disagreement_is_caught_at_any_traffic_but_only_when_it_is_evidence() -> None:
    # 12 of 20 rows agreeing is far enough below 90% to stop a release before min_requests
    assert verdict(VersionCounts(requests=20, rows=20), AgreementCounts(compared=20, agreed=12))[0] == "rollback"
    # 27 of 30 (90%) and 25 of 30 (83%: P = 0.18 under 90%) are not: the phase waits for traffic
    for agreed in (27, 25):
        decision, reason = verdict(VersionCounts(requests=30, rows=30), AgreementCounts(compared=30, agreed=agreed))
        assert (decision, reason) == (
            "wait",
            "shadow phase: 30 shadowed requests < 100 needed (guards.min_requests): baking again (1 of 2)",
        )
    assert agreement_breach(AgreementCounts(compared=100, agreed=99), 1.0, 0.01) is not None  # min_agreement 1: any difference
    assert agreement_breach(AgreementCounts(compared=100, agreed=0), 0.0, 0.01) is None  # min_agreement 0: off


def test_low_traffic_ends_the_phase_as_the_release_says() -> None:
    quiet = VersionCounts(requests=10, rows=10)
    agreement = AgreementCounts(compared=10, agreed=10)
    decision, reason = verdict(quiet, agreement, extensions=2)
    assert decision == "rollback"
    assert reason == (
        "shadow phase: too little traffic to judge: 10 shadowed requests < 100 needed (guards.min_requests) after 2 extra bakes "
        "(low_traffic: rollback)"
    )
    decision, reason = verdict(quiet, agreement, extensions=2, low_traffic="promote")
    assert decision == "advance"  # on to the canary steps, which are guarded in their turn
    assert reason.startswith("shadow phase: too little traffic to judge, going on to the canary as configured: 10 shadowed")


def test_the_release_section_has_shadow_defaults_and_checks_them() -> None:
    assert ReleaseSpec().shadow.model_dump() == {"sample": 1.0, "min_agreement": 0.9, "first": None}
    assert ReleaseSpec.model_validate({"shadow": {"sample": 0.2}}).shadow.sample == 0.2
    for bad in ({"sample": 0}, {"sample": 1.5}, {"min_agreement": 1.2}, {"agreement": 0.9}):
        with pytest.raises(ValidationError):
            ReleaseSpec.model_validate({"shadow": bad})
    assert (bounded_seconds("90s"), bounded_seconds("30m"), bounded_seconds("24h")) == (90, 1800, 86400)
    with pytest.raises(ValueError, match="at most 24h"):
        bounded_seconds("25h")


# -- the agreement test, simulated ---------------------------------------------------------------------------------
def rollback_rate(rng: np.random.Generator, agreement: float, *, rows: int, trials: int = 4000) -> float:
    agreed = rng.binomial(rows, agreement, size=trials)
    return float(np.mean([agreement_breach(AgreementCounts(compared=rows, agreed=int(a)), 0.9, GUARDS.alpha) is not None for a in agreed]))


def test_the_agreement_test_false_alarm_rate_and_power() -> None:
    rng = np.random.default_rng(17)
    table = {rows: {p: rollback_rate(rng, p, rows=rows) for p in (0.95, 0.9, 0.8, 0.5)} for rows in (100, 300, 1000)}
    print("\nrows  rollback at agreement 95% / 90% (threshold) / 80% / 50%")
    for rows, rates in table.items():
        print(f"{rows:5d}  " + " / ".join(f"{rate:.2%}" for rate in rates.values()))
    for rows, rates in table.items():
        assert rates[0.9] <= GUARDS.alpha + 0.005, rows  # at the threshold: at most alpha (plus simulation noise)
        assert rates[0.95] <= 0.001, rows
        assert rates[0.5] == 1.0, rows  # a broken candidate (a coin flip) never gets through
    assert table[100][0.8] >= 0.5
    assert table[300][0.8] >= 0.99
    assert table[1000][0.8] == 1.0
