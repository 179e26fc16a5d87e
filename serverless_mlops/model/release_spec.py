"""The spec's ``release:`` section: how a new version of the model goes out (strategy, bake times) and what stops it
(the guards). Every field has a default, so a spec without the section releases as ``canary10-10m`` with the default
guards. The release workflow (serverless_mlops/release/, docs/releasing.md) reads it from the version it releases.

Strategies (:func:`plan_steps` turns one into steps of ``(weight %, bake seconds)``; the last step is followed by the
promotion, which moves the alias to the candidate and clears the canary in one write):

- ``all-at-once``: 100% to the candidate for ``bake``, then promoted (the champion stays cached for a rollback);
- ``canary{W}-{D}`` (``canary10-10m``): W% for D, then promoted;
- ``linear{W}-{D}`` (``linear20-5m``): W%, 2W%, ... below 100%, each for D, then promoted;
- ``steps``: the explicit ``steps:`` list (``[{weight: 5, bake: 2m}, {weight: 50, bake: 10m}]``), then promoted.

A release started with ``--shadow-first DURATION`` first lets the candidate score ``shadow.sample`` of production's
requests in the background for that long, and goes on to the strategy's steps only if it agreed with production on at
least ``shadow.min_agreement`` of the rows (serverless_mlops/release/shadow_guards.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^(\d+)(s|m|h)$")
_UNIT = {"s": 1, "m": 60, "h": 3600}
_STRATEGY = re.compile(r"^(canary|linear)(\d+)-(\d+[smh])$")
MAX_BAKE_SECONDS = 24 * 3600  # a step bakes at most a day: the release machine's timeout bounds the whole release


def duration_seconds(value: str) -> int:
    """``"90s"``, ``"10m"``, ``"2h"`` in seconds; ValueError naming the value otherwise."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a duration like 30s, 10m or 1h, got {value!r}")
    return int(match.group(1)) * _UNIT[match.group(2)]


def bounded_seconds(value: str) -> int:
    """``value`` in seconds, at most a day (a bake, or a release's shadow phase); ValueError naming the value otherwise."""
    seconds = duration_seconds(value)
    if seconds > MAX_BAKE_SECONDS:
        raise ValueError(f"at most 24h, got {value!r}")
    return seconds


def _duration(value: str) -> str:
    bounded_seconds(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]


def check_strategy(value: str) -> str:
    """``value`` if it names a strategy (a preset or ``steps``); ValueError saying what is expected otherwise."""
    if value in ("all-at-once", "steps"):
        return value
    match = _STRATEGY.fullmatch(value)
    if match is None:
        raise ValueError(f"expected all-at-once, canary{{W}}-{{D}} (canary10-10m), linear{{W}}-{{D}} (linear20-5m) or steps, got {value!r}")
    weight = int(match.group(2))
    if not 1 <= weight <= 99:
        raise ValueError(f"the weight of {value!r} must be 1..99 (percent of requests on the candidate)")
    _duration(match.group(3))
    return value


Strategy = Annotated[str, AfterValidator(check_strategy)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReleaseStep(_Strict):
    weight: Annotated[float, Field(gt=0.0, le=100.0, description="percent of requests routed to the candidate")]
    bake: Duration = Field(description="how long this weight runs before the guards decide")


class Guards(_Strict):
    """What CheckGuards compares after each bake (serverless_mlops/release/guards.py has the tests)."""

    min_requests: Annotated[int, Field(ge=1, description="requests the candidate must serve in a bake before it may advance")] = 100
    max_error_rate: Annotated[
        float, Field(gt=0.0, lt=1.0, description="ceiling on the candidate's share of failed requests and of invalid outputs")
    ] = 0.01
    max_error_ratio: Annotated[
        float, Field(ge=1.0, description="the candidate's error rate may be at most this many times the champion's")
    ] = 2.0
    alpha: Annotated[float, Field(gt=0.0, lt=0.5, description="significance of each one-sided test (false-alarm rate per check)")] = 0.01
    max_latency_ratio: Annotated[
        float | None, Field(gt=1.0, description="the candidate's mean latency may be at most this many times the champion's; none: off")
    ] = None
    alarms: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, description="CloudWatch alarms (names) that roll the release back when in ALARM"
    )


class ShadowPhase(_Strict):
    """The shadow phase of a release started with ``--shadow-first``: how much production traffic the candidate scores
    in the background, and how often it must agree with production to go on to the canary."""

    sample: Annotated[float, Field(gt=0.0, le=1.0, description="share of production's requests the candidate scores in the background")] = (
        1.0
    )
    min_agreement: Annotated[
        float,
        Field(
            ge=0.0,
            le=1.0,
            description="the candidate must agree with production on at least this share of the rows (same label; for a "
            "regressor, within 5%)",
        ),
    ] = 0.9


class ReleaseSpec(_Strict):
    strategy: Strategy = "canary10-10m"
    bake: Duration = Field(default="10m", description="all-at-once: how long 100% runs on the candidate before the promotion")
    steps: list[ReleaseStep] | None = Field(default=None, description="strategy steps: the weights and bake times, in order")
    low_traffic: Literal["rollback", "promote"] = Field(
        default="rollback",
        description="what ends a release whose candidate served fewer than guards.min_requests after max_extensions extra bakes",
    )
    max_extensions: Annotated[int, Field(ge=0, le=10, description="extra bakes waited for traffic before low_traffic applies")] = 3
    guards: Guards = Guards()
    shadow: ShadowPhase = ShadowPhase()

    @model_validator(mode="after")
    def _steps(self) -> ReleaseSpec:
        if self.strategy == "steps":
            if not self.steps:
                raise ValueError("steps: strategy 'steps' needs at least one step ({weight, bake})")
            weights = [step.weight for step in self.steps]
            if weights != sorted(weights):
                raise ValueError(f"steps: weights must not decrease, got {weights}")
        elif self.steps is not None:
            raise ValueError(f"steps: only strategy 'steps' takes steps (strategy is {self.strategy!r})")
        return self


def plan_steps(release: ReleaseSpec, strategy: str | None = None) -> list[tuple[float, int]]:
    """The ``(weight %, bake seconds)`` steps of ``strategy`` (default: the spec's), before the promotion."""
    name = check_strategy(strategy) if strategy is not None else release.strategy
    if name == "all-at-once":
        return [(100.0, duration_seconds(release.bake))]
    if name == "steps":
        if not release.steps:
            raise ValueError("strategy 'steps' needs the spec's release.steps")
        return [(step.weight, duration_seconds(step.bake)) for step in release.steps]
    match = _STRATEGY.fullmatch(name)
    assert match is not None  # check_strategy checked it
    kind, weight, bake = match.group(1), int(match.group(2)), duration_seconds(match.group(3))
    if kind == "canary":
        return [(float(weight), bake)]
    return [(float(w), bake) for w in range(weight, 100, weight)]
