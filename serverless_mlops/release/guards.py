"""The guard decision CheckGuards makes after each bake: pure, no I/O (serverless_mlops/release/metrics.py reads what
it decides on).

In order, the first that applies decides:

1. the canary is no longer this release's (``mlops release abort`` cleared it, or a person moved it) → rollback;
2. an alarm the spec names (``release.guards.alarms``) is in ALARM, or does not exist (a guard that cannot fire) →
   rollback;
3. a guard is breached (any request count: a burst is caught early) → rollback. For each bad-outcome count (failed
   requests, invalid outputs) two one-sided exact binomial tests at ``alpha``:
   (the error rate is over requests, the invalid-output rate over rows)
   - ceiling: the candidate's rate is above ``max_error_rate`` and ``P(X ≥ bad | n, max_error_rate) < alpha``;
   - versus the champion: the candidate's rate is above ``max_error_ratio`` × the champion's (the effect that
     matters) and, conditional on the two versions' ``k`` bad outcomes together, its share is improbable if both
     failed alike (``P(X ≥ bad_c | k, n_c / (n_c + n_0)) < alpha``: the exact conditional test of equal rates);
   and, when ``max_latency_ratio`` is set and both served ``min_requests``, mean latency above that ratio;
4. fewer than ``min_requests`` requests on the candidate: low traffic is not evidence of health → wait one more bake,
   up to ``max_extensions`` times; then ``low_traffic`` decides (``rollback``, the default: production unchanged, or
   ``promote``: advance as if it passed, said so in the reason);
5. otherwise the step passed → advance to the next weight, or promote after the last.

A test of a healthy candidate fires with probability at most ``alpha`` per check and count (a release of s steps with
two counts: at most about 2·s·alpha; tests/unit/test_release_guards.py measures it with a seeded simulation).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from serverless_mlops.model.release_spec import Guards

Decision = Literal["advance", "promote", "rollback", "wait"]


class VersionCounts(BaseModel):
    """One version's guard metrics over the bake window."""

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    rows: int = 0
    errors: int = 0
    invalid: int = 0
    latency_ms: float | None = None  # mean


class Observation(BaseModel):
    """What CheckGuards saw: both versions' counts, the alarms in ALARM and whether the canary is still ours."""

    model_config = ConfigDict(frozen=True)

    candidate: VersionCounts
    champion: VersionCounts
    alarms_in_alarm: list[str] = []
    missing_alarms: list[str] = []  # named in release.guards.alarms, but no such alarm: a guard that cannot fire
    canary_gone: str | None = None  # why the canary is no longer this release's (None: it is)


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    reason: str


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(X ≥ k)`` for ``X ~ Binomial(n, p)``, exact (summed in log space; no scipy on the inference layer)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    lgn = math.lgamma(n + 1)

    def term(i: int) -> float:
        return math.exp(lgn - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)

    if k <= n * p:  # the upper tail is most of the mass: 1 - P(X < k)
        return max(0.0, 1.0 - math.fsum(term(i) for i in range(k)))
    total, i = 0.0, k
    while i <= n:  # terms only shrink beyond the mode: stop once they no longer add anything
        value = term(i)
        total += value
        if value < total * 1e-16:
            break
        i += 1
    return min(1.0, total)


def pct(rate: float) -> str:
    """A rate as a person reads it: 2.1%, 0.05%, 1%."""
    value = rate * 100
    text = f"{value:.2f}" if value < 1 else f"{value:.1f}"
    return text.rstrip("0").rstrip(".") + "%"


def _rate_breach(label: str, unit: str, bad_c: int, n_c: int, bad_0: int, n_0: int, guards: Guards) -> str | None:
    """The reason a bad-outcome count (``bad_c`` of ``n_c`` requests or rows) is breached, or None."""
    if n_c <= 0 or bad_c <= 0:
        return None
    rate_c = bad_c / n_c
    if rate_c > guards.max_error_rate and binomial_sf(bad_c, n_c, guards.max_error_rate) < guards.alpha:
        return f"{label} {pct(rate_c)} > {pct(guards.max_error_rate)} over {n_c} {unit}"
    if n_0 > 0:
        ratio = guards.max_error_ratio
        rate_0 = bad_0 / n_0
        share = n_c / (n_c + n_0)  # the candidate's share of all bad outcomes if both versions failed alike
        if rate_c > ratio * rate_0 and binomial_sf(bad_c, bad_c + bad_0, share) < guards.alpha:
            times = f"{rate_c / rate_0:.1f}x" if rate_0 > 0 else "the champion had none"
            return (
                f"{label} {pct(rate_c)} over {n_c} {unit} vs the champion's {pct(rate_0)} over {n_0} ({times}; at most {ratio:g}x allowed)"
            )
    return None


def _latency_breach(candidate: VersionCounts, champion: VersionCounts, guards: Guards) -> str | None:
    ratio = guards.max_latency_ratio
    if ratio is None or candidate.latency_ms is None or champion.latency_ms is None or champion.latency_ms <= 0:
        return None
    if min(candidate.requests, champion.requests) < guards.min_requests:
        return None
    if candidate.latency_ms > ratio * champion.latency_ms:
        return (
            f"mean latency {candidate.latency_ms:.1f} ms vs the champion's {champion.latency_ms:.1f} ms "
            f"({candidate.latency_ms / champion.latency_ms:.1f}x > {ratio:g}x) over {candidate.requests} requests"
        )
    return None


def breaches(observation: Observation, guards: Guards) -> list[str]:
    """Every breached guard's reason (empty: none)."""
    c, o = observation.candidate, observation.champion
    found = [
        _rate_breach("error rate", "requests", c.errors, c.requests, o.errors, o.requests, guards),
        _rate_breach("invalid-output rate", "rows", c.invalid, c.rows, o.invalid, o.rows, guards),
        _latency_breach(c, o, guards),
    ]
    return [reason for reason in found if reason is not None]


def decide(observation: Observation, guards: Guards, *, last_step: bool, extensions: int, max_extensions: int, low_traffic: str) -> Verdict:
    """What follows a bake (the module docstring gives the order)."""
    if observation.canary_gone is not None:
        return Verdict(decision="rollback", reason=observation.canary_gone)
    if observation.missing_alarms:
        names = ", ".join(observation.missing_alarms)
        return Verdict(decision="rollback", reason=f"alarm {names} named in release.guards.alarms does not exist")
    if observation.alarms_in_alarm:
        names = ", ".join(observation.alarms_in_alarm)
        return Verdict(decision="rollback", reason=f"alarm {names} in ALARM")
    found = breaches(observation, guards)
    if found:
        return Verdict(decision="rollback", reason="; ".join(found))
    c = observation.candidate
    healthy = f"error rate {pct(c.errors / c.requests) if c.requests else 'n/a'} over {c.requests} requests, " + (
        f"invalid-output rate {pct(c.invalid / c.rows) if c.rows else 'n/a'} over {c.rows} rows"
    )
    if c.requests < guards.min_requests:
        short = f"{c.requests} requests on the candidate < {guards.min_requests} needed (guards.min_requests)"
        if extensions < max_extensions:
            return Verdict(decision="wait", reason=f"{short}: baking again ({extensions + 1} of {max_extensions})")
        if low_traffic == "rollback":
            return Verdict(
                decision="rollback",
                reason=f"too little traffic to judge: {short} after {max_extensions} extra bakes (low_traffic: rollback)",
            )
        return Verdict(
            decision="promote" if last_step else "advance",
            reason=f"too little traffic to judge, going on as configured: {short} after {max_extensions} extra bakes "
            "(low_traffic: promote)",
        )
    return Verdict(decision="promote" if last_step else "advance", reason=f"guards passed: {healthy}")
