"""The promotion gate, computed in Python (the state machine's Choice only reads ``passed``).

A candidate passes when it beats the production champion by at least the spec's ``min_improvement`` (strictly
better when that is 0: a tie keeps the champion) and clears the spec's absolute ``floor`` (at least the floor, or
at most for errors such as rmse). With no champion, or a champion that cannot score the data, only the floor counts.
The reason says which, in words a person reads in the notification.

When a quality breach started the run and handed over its newest labelled rows (``recent``), those rows decide, since
they are why the model is retrained: the candidate must pass the gate above on them, and on the split holdout it must
still clear the floor and not be worse than the champion (:func:`decide_with_recent`). A candidate that is better on
old rows but worse on the traffic that breached is not promoted, nor one that fixes the new traffic by forgetting the old.
"""

from __future__ import annotations

from dataclasses import dataclass

from serverless_mlops.model.spec import Metric

EPSILON = 1e-12


@dataclass(frozen=True)
class GateResult:
    passed: bool
    improvement: float | None
    reason: str


def fmt_value(value: float) -> str:
    """Four significant digits, never bare like an integer: a perfect f1 reads "1.0", not "1"."""
    text = f"{value:.4g}"
    return text if any(c in text for c in ".eninf") else text + ".0"


def decide(
    metric: Metric,
    candidate: float,
    *,
    champion_version: int | None = None,
    champion_value: float | None = None,
    champion_problem: str = "",
    min_improvement: float = 0.0,
    floor: float | None = None,
) -> GateResult:
    """Whether ``candidate`` may replace the champion; ``champion_problem`` says why a champion has no value."""
    higher = metric.higher_is_better
    name = f"{metric.value} {fmt_value(candidate)}"
    clears = floor is None or (candidate >= floor - EPSILON if higher else candidate <= floor + EPSILON)
    bound = "" if floor is None else f"floor {floor:g}" + ("" if higher else " (at most)")
    if champion_version is None or champion_value is None:
        if champion_version is None:
            context = "no champion in production"
        else:
            context = f"champion v{champion_version} cannot score this data ({champion_problem}), so only the floor counts"
        if floor is None:
            return GateResult(True, None, f"{name}: {context} and the spec sets no floor")
        verdict = f"clears {bound}" if clears else ("is below " if higher else "is above ") + bound
        return GateResult(clears, None, f"{name} {verdict}; {context}")
    improvement = candidate - champion_value if higher else champion_value - candidate
    beats = improvement > EPSILON and improvement >= min_improvement - EPSILON
    versus = f"champion v{champion_version} ({fmt_value(champion_value)})"
    if beats:
        text = f"{name} beats {versus} by {fmt_value(improvement)} ≥ {min_improvement:g}"
    else:
        text = f"{name} does not beat {versus} by at least {min_improvement:g} (change {improvement:+.4g})"
    if floor is not None:
        text += (" and clears " if clears else (" and is below " if higher else " and is above ")) + bound
    return GateResult(beats and clears, improvement, text)


def holds(
    metric: Metric, candidate: float, *, champion_version: int | None, champion_value: float | None, floor: float | None
) -> GateResult:
    """The split holdout's part when recent labelled rows decide: the candidate must clear the floor and must not be worse
    than the champion there (a tie holds; no ``min_improvement``: the recent rows ask for the improvement)."""
    higher = metric.higher_is_better
    name = f"{metric.value} {fmt_value(candidate)}"
    clears = floor is None or (candidate >= floor - EPSILON if higher else candidate <= floor + EPSILON)
    parts: list[str] = []
    improvement = None
    not_worse = True
    if champion_version is not None and champion_value is not None:
        improvement = candidate - champion_value if higher else champion_value - candidate
        not_worse = improvement >= -EPSILON
        versus = f"champion v{champion_version} ({fmt_value(champion_value)})"
        parts.append(f"is not worse than {versus}" if not_worse else f"is worse than {versus} (change {improvement:+.4g})")
    else:
        parts.append("has no champion value to compare with")
    if floor is not None:
        bound = f"floor {floor:g}" + ("" if higher else " (at most)")
        parts.append(f"clears {bound}" if clears else ("is below " if higher else "is above ") + bound)
    return GateResult(not_worse and clears, improvement, f"{name} " + " and ".join(parts))


def decide_with_recent(holdout: GateResult, recent: GateResult, *, rows: int) -> GateResult:
    """The gate when a quality breach handed over its newest labelled rows: the recent rows decide (``recent``: the full
    gate on them, :func:`decide`) and the split holdout guards against forgetting (``holdout``: :func:`holds`). Both
    must pass; the improvement reported is the recent rows'."""
    verdict = "passes" if recent.passed and holdout.passed else "fails"
    reason = f"{verdict}: on the {rows} newest labelled rows {recent.reason}; on the split holdout {holdout.reason}"
    return GateResult(recent.passed and holdout.passed, recent.improvement, reason)
