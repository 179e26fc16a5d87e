"""The verdict of a release's shadow phase (``mlops release start --shadow-first``): pure, no I/O
(serverless_mlops/release/shadow_phase.py reads what it decides on and acts on it).

During the shadow phase the candidate never answers: it scores ``release.shadow.sample`` of production's requests in
the background (serverless_mlops/serving/rollout.py), and the inference function publishes its guard metrics with
``role`` ``shadow``, including how many of the rows it scored agreed with production's answer
(serverless_mlops/serving/guard_metrics.py). After the phase's bake, in order, the first rule that applies decides:

1. the shadow is no longer this release's (``mlops release abort`` cleared it, or it was changed by hand) → rollback;
2. an alarm the spec names is in ALARM, or does not exist → rollback (as after a canary step);
3. a guard is breached by the shadow's own counts (failed requests, invalid outputs, latency: the same exact tests and
   thresholds as a canary step, serverless_mlops/release/guards.py) → rollback;
4. the agreement is below ``release.shadow.min_agreement`` and significantly so: with ``d`` of ``n`` compared rows
   disagreeing, ``P(X ≥ d | n, 1 - min_agreement) < alpha`` (one-sided exact binomial test; a candidate that agrees
   exactly ``min_agreement`` of the time fails it with probability at most ``alpha``) → rollback;
5. fewer than ``guards.min_requests`` shadowed requests: low traffic is not evidence → bake again, up to
   ``max_extensions`` times; then ``low_traffic`` decides (``rollback``, or ``promote``: go on to the canary steps, which
   are guarded in their turn, and say so);
6. otherwise the phase passed → advance to the first canary step.

Every reason starts with ``shadow phase:`` so a notification tells the shadow's verdict from a canary step's.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from serverless_mlops.model.release_spec import Guards
from serverless_mlops.release.guards import Observation, Verdict, VersionCounts, binomial_sf, breaches, pct

PREFIX = "shadow phase: "


class AgreementCounts(BaseModel):
    """How the shadow's answers compared with production's over the phase: rows compared, rows agreed, and the sum of
    each compared row's largest |Δ probability| (classifiers; 0 otherwise)."""

    model_config = ConfigDict(frozen=True)

    compared: int = 0
    agreed: int = 0
    probability_delta: float = 0.0

    @property
    def rate(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


class ShadowObservation(BaseModel):
    """What CheckShadow saw: the shadow's guard counts and agreement, the champion's counts over the same window, the
    alarms, and whether the shadow is still this release's."""

    model_config = ConfigDict(frozen=True)

    shadow: VersionCounts
    agreement: AgreementCounts
    champion: VersionCounts
    alarms_in_alarm: list[str] = []
    missing_alarms: list[str] = []
    shadow_gone: str | None = None  # why the shadow is no longer this release's (None: it is)


def agreement_breach(agreement: AgreementCounts, min_agreement: float, alpha: float) -> str | None:
    """The reason the agreement is significantly below ``min_agreement``, or None."""
    n = agreement.compared
    if n <= 0:
        return None
    rate = agreement.agreed / n
    if rate < min_agreement and binomial_sf(n - agreement.agreed, n, 1.0 - min_agreement) < alpha:
        return f"agreement {pct(rate)} < {pct(min_agreement)} over {n} rows (release.shadow.min_agreement)"
    return None


def _summary(observation: ShadowObservation) -> str:
    s, a = observation.shadow, observation.agreement
    agreed = f"agreement {pct(a.rate)} over {a.compared} rows" if a.rate is not None else "no rows compared"
    return f"{agreed}, error rate {pct(s.errors / s.requests) if s.requests else 'n/a'} over {s.requests} shadowed requests"


def decide_shadow(
    observation: ShadowObservation,
    guards: Guards,
    *,
    min_agreement: float,
    extensions: int,
    max_extensions: int,
    low_traffic: str,
) -> Verdict:
    """What follows the shadow phase's bake (the module docstring gives the order): advance, wait or rollback."""
    if observation.shadow_gone is not None:
        return Verdict(decision="rollback", reason=PREFIX + observation.shadow_gone)
    if observation.missing_alarms:
        names = ", ".join(observation.missing_alarms)
        return Verdict(decision="rollback", reason=f"{PREFIX}alarm {names} named in release.guards.alarms does not exist")
    if observation.alarms_in_alarm:
        return Verdict(decision="rollback", reason=f"{PREFIX}alarm {', '.join(observation.alarms_in_alarm)} in ALARM")
    found = breaches(Observation(candidate=observation.shadow, champion=observation.champion), guards)
    disagreement = agreement_breach(observation.agreement, min_agreement, guards.alpha)
    if disagreement is not None:
        found.append(disagreement)
    if found:
        return Verdict(decision="rollback", reason=PREFIX + "; ".join(found))
    requests = observation.shadow.requests
    if requests < guards.min_requests:
        short = f"{requests} shadowed requests < {guards.min_requests} needed (guards.min_requests)"
        if extensions < max_extensions:
            return Verdict(decision="wait", reason=f"{PREFIX}{short}: baking again ({extensions + 1} of {max_extensions})")
        if low_traffic == "rollback":
            return Verdict(
                decision="rollback",
                reason=f"{PREFIX}too little traffic to judge: {short} after {max_extensions} extra bakes (low_traffic: rollback)",
            )
        return Verdict(
            decision="advance",
            reason=f"{PREFIX}too little traffic to judge, going on to the canary as configured: {short} after {max_extensions} "
            "extra bakes (low_traffic: promote)",
        )
    return Verdict(decision="advance", reason=f"{PREFIX}passed: {_summary(observation)}")
