"""Serving an alias during a release: canary routing, the shadow, and the guard metrics of every version that scores.

:func:`answer` is the request path when a request names an alias (not a version): given what the alias serves
(:class:`serverless_mlops.serving.model_cache.Served`) and a routing key, it picks the version that answers
(:mod:`serverless_mlops.serving.routing`), scores the rows with it, lets the shadow score the same rows, and reports
each version's guard metrics (:mod:`serverless_mlops.serving.guard_metrics`) through ``report``.

- **Canary.** A request whose key falls under the canary's weight is scored by the canary. If the canary is not loaded
  (its load failed), raises while scoring, or gives an invalid output for any row, the request is answered by the
  champion instead and counted (``CanaryFallbacks`` and ``GuardErrors`` or ``GuardInvalidOutputs`` of the canary): a
  broken candidate shows in its guard metrics, never in an answer. A client's invalid input is the client's answer
  (4xx) whichever version it reached.
- **Shadow.** A request answered by the champion whose key is sampled is scored again by the shadow, after the answer
  is built, from the same parsed rows; the shadow's result is never returned and anything it raises is swallowed and
  counted (``GuardErrors`` of the shadow). Its agreement with the answer (``ShadowComparedRows``,
  ``ShadowAgreedRows``, ``ShadowProbabilityDelta``) and its other guard metrics go to ``shadow_report`` (the endpoint
  sums them, :mod:`serverless_mlops.serving.guard_tally`) and its predictions are handed back for the data capture.
  Requests answered by the canary are not shadowed (the comparison is shadow vs production).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serverless_mlops.errors import InvalidInputError
from serverless_mlops.serving import guard_metrics as gm
from serverless_mlops.serving.onnx_model import InvalidOutputError
from serverless_mlops.serving.routing import shadowed, to_canary

if TYPE_CHECKING:
    from serverless_mlops.serving.model_cache import LoadedModel, Served
    from serverless_mlops.serving.onnx_model import Feeds, OnnxModel, Prediction

log = logging.getLogger(__name__)

Report = Callable[[str, int, gm.Role, dict[str, float]], None]  # (model, version, role, metric → value)
Run = Callable[["OnnxModel"], "Prediction"]


class Rows:
    """One request's rows (``records``, ``rows`` or ``columns``), as a :data:`Run`: validated into ONNX inputs once per
    distinct input signature, so a shadow (or a canary) with the champion's features reuses the champion's inputs."""

    def __init__(self, kind: str, data: Sequence[Any]) -> None:
        self.kind = kind
        self.data = data
        self._key: str | None = None
        self._feeds: Feeds | None = None

    def __call__(self, model: OnnxModel) -> Prediction:
        if self._feeds is None or model.inputs_key != self._key:
            self._feeds = model.feeds_for(self.kind, self.data)
            self._key = model.inputs_key
        return model.predict_feeds(self._feeds)


@dataclass(frozen=True)
class ShadowScore:
    """What the shadow predicted for the request's rows (for the data capture)."""

    version: int
    predictions: list[Any]


@dataclass(frozen=True)
class Answer:
    loaded: LoadedModel
    result: Prediction
    shadow: ShadowScore | None = None


def _invalid(loaded: LoadedModel, result: Prediction) -> int:
    return gm.invalid_rows(result.predictions, result.probabilities, loaded.entry.signature.classes)


def _timed(loaded: LoadedModel, run: Run) -> tuple[Prediction, float]:
    started = time.perf_counter()
    result = run(loaded.model)
    return result, (time.perf_counter() - started) * 1000


def _try_canary(served: Served, run: Run, report: Report) -> Answer | None:
    """The canary's answer, or None (reported) when the champion must answer in its place."""
    canary = served.canary
    assert canary is not None
    model, version = served.champion.entry.model, canary.spec.version
    fallback: dict[str, float] = {gm.REQUESTS: 1, gm.CANARY_FALLBACKS: 1}
    if canary.loaded is None:
        report(model, version, gm.CANARY, fallback | {gm.ERRORS: 1})
        return None
    try:
        result, ms = _timed(canary.loaded, run)
    except InvalidOutputError as exc:
        report(model, version, gm.CANARY, fallback | {gm.INVALID_OUTPUTS: exc.rows})
        return None
    except InvalidInputError:
        raise
    except Exception as exc:
        log.warning("canary version %d of %s failed (%s: %s); the champion answers", version, model, type(exc).__name__, exc)
        report(model, version, gm.CANARY, fallback | {gm.ERRORS: 1})
        return None
    rows = len(result.predictions)
    bad = _invalid(canary.loaded, result)
    if bad:
        report(model, version, gm.CANARY, fallback | {gm.ROWS: rows, gm.INVALID_OUTPUTS: bad, gm.LATENCY: ms})
        return None
    report(model, version, gm.CANARY, {gm.REQUESTS: 1, gm.ROWS: rows, gm.INVALID_OUTPUTS: 0, gm.LATENCY: ms})
    return Answer(canary.loaded, result)


def _champion(served: Served, run: Run, report: Report) -> Answer:
    loaded = served.champion
    model, version = loaded.entry.model, loaded.entry.version
    try:
        result, ms = _timed(loaded, run)
    except InvalidOutputError as exc:
        report(model, version, gm.PRODUCTION, {gm.REQUESTS: 1, gm.INVALID_OUTPUTS: exc.rows})
        raise
    except InvalidInputError:
        raise
    except Exception:
        report(model, version, gm.PRODUCTION, {gm.REQUESTS: 1, gm.ERRORS: 1})
        raise
    report(
        model,
        version,
        gm.PRODUCTION,
        {gm.REQUESTS: 1, gm.ROWS: len(result.predictions), gm.INVALID_OUTPUTS: _invalid(loaded, result), gm.LATENCY: ms},
    )
    return Answer(loaded, result)


def _shadow(served: Served, answer: Answer, run: Run, report: Report) -> ShadowScore | None:
    """Score the answered rows with the shadow; never raises (what it raises is counted)."""
    shadow = served.shadow
    assert shadow is not None
    model, version = answer.loaded.entry.model, shadow.spec.version
    if shadow.loaded is None:
        report(model, version, gm.SHADOW, {gm.REQUESTS: 1, gm.ERRORS: 1})
        return None
    try:
        result, ms = _timed(shadow.loaded, run)
        served_result = answer.result
        agreed, delta = gm.agreement(
            served_result.predictions,
            result.predictions,
            classification=answer.loaded.entry.signature.is_classification,
            production_probabilities=served_result.probabilities,
            shadow_probabilities=result.probabilities,
        )
        rows = len(result.predictions)
        report(
            model,
            version,
            gm.SHADOW,
            {
                gm.REQUESTS: 1,
                gm.ROWS: rows,
                gm.INVALID_OUTPUTS: _invalid(shadow.loaded, result),
                gm.LATENCY: ms,
                gm.SHADOW_COMPARED: rows,
                gm.SHADOW_AGREED: agreed,
                gm.SHADOW_PROBABILITY_DELTA: delta,
            },
        )
    except Exception as exc:  # the shadow never affects the answer: whatever it raises is counted and dropped
        log.warning("shadow version %d of %s failed (%s: %s); the answer is unaffected", version, model, type(exc).__name__, exc)
        report(model, version, gm.SHADOW, {gm.REQUESTS: 1, gm.ERRORS: 1})
        return None
    return ShadowScore(version, result.predictions)


def answer(served: Served, run: Run, key: str, report: Report, shadow_report: Report | None = None) -> Answer:
    """Score a request for an alias: the canary or the champion answers, then the shadow may score it too (its guard
    metrics go to ``shadow_report``, default ``report``)."""
    if served.canary is not None and to_canary(key, served.canary.spec.weight):
        from_canary = _try_canary(served, run, report)
        if from_canary is not None:
            return from_canary
    answered = _champion(served, run, report)
    shadow = served.shadow
    if shadow is None or shadow.spec.version == answered.loaded.entry.version or not shadowed(key, shadow.spec.sample):
        return answered
    return Answer(answered.loaded, answered.result, _shadow(served, answered, run, shadow_report or report))
