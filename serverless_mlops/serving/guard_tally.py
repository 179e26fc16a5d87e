"""The shadow's guard metrics, summed in-process and published as one EMF record per shadow version and interval,
instead of one record per shadowed request.

A shadow at sample 1.0 would otherwise print a second EMF record on every request (building and encoding it, and a
write to stdout, about 6 us of a 28 us shadow on one row here, more on Lambda, whose stdout is a pipe to its log
service), and double the log lines the function's CloudWatch Logs ingests. :class:`GuardTally` adds up what each
shadowed request reports (the :data:`serverless_mlops.serving.rollout.Report` signature) per (model, version, role)
and publishes the sums through ``publish`` (the endpoint's ``Telemetry.guard``):

- **when**: once the oldest pending request is ``seconds`` old (``MLOPS_SHADOW_METRICS_SECONDS``, default 10 s;
  checked by the endpoint after every answer, :meth:`GuardTally.maybe_flush`), or as soon as a version has
  :data:`MAX_VALUES` latencies pending (EMF takes at most 100 values in one metric's array), and whenever the capture
  buffer is flushed on demand (``Endpoint.flush``: a local server stopping). ``seconds`` 0 publishes each request's
  record at once, as before.
- **what stays equal**: every count is a sum (``GuardRequests``, ``GuardRows``, ``GuardErrors``,
  ``GuardInvalidOutputs``, ``ShadowComparedRows``, ``ShadowAgreedRows``, ``ShadowProbabilityDelta``), so its ``Sum``
  over any window holding the records is what the per-request records gave; ``GuardLatency`` is published as the
  array of each request's value, so its ``Average``, percentiles and ``SampleCount`` are unchanged. What changes is
  the ``SampleCount`` of the counts (one per record, not per request) and the minute a request is counted in: the
  record carries its first request's time, so a request is counted up to ``seconds`` early, never late.
- **what can be lost**: Lambda freezes an execution environment between requests and shuts it down without a word
  to the function, so what an environment summed since its last record (at most ``seconds`` of its shadowed
  requests) is lost when it is shut down; set 0 where every shadowed request must be counted.

Only the shadow's metrics go through here: the production and canary records that the release workflow's CheckGuards
reads are published per request (:mod:`serverless_mlops.serving.rollout`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from serverless_mlops.serving import guard_metrics as gm

MAX_VALUES = 100  # CloudWatch EMF: at most 100 values in one metric's array


class Publish(Protocol):
    def __call__(self, model: str, version: int, role: gm.Role, values: dict[str, float | list[float]], *, at: float | None = None) -> None:
        """One EMF record of ``values`` for ``model``'s ``version`` in ``role``, timestamped ``at`` (epoch seconds)."""


class _Sums:
    """What one (model, version, role) reported since its last record."""

    __slots__ = ("at", "counts", "latencies")

    def __init__(self, at: float) -> None:
        self.at = at
        self.counts: dict[str, float] = {}
        self.latencies: list[float] = []

    def values(self) -> dict[str, float | list[float]]:
        values: dict[str, float | list[float]] = dict(self.counts)
        if self.latencies:
            values[gm.LATENCY] = self.latencies
        return values


class GuardTally:
    """Guard metrics summed per (model, version, role) and published every ``seconds`` (see the module docstring).
    Thread-safe; ``clock`` gives epoch seconds."""

    def __init__(self, publish: Publish, *, seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._publish = publish
        self.seconds = seconds
        self._clock = clock
        self._pending: dict[tuple[str, int, gm.Role], _Sums] = {}
        self._oldest = math.inf  # when the oldest pending request was added
        self._lock = threading.Lock()

    def add(self, model: str, version: int, role: gm.Role, values: Mapping[str, float]) -> None:
        """One request's guard metrics (a :data:`serverless_mlops.serving.rollout.Report`)."""
        now = self._clock()
        if self.seconds <= 0:
            self._publish(model, version, role, dict(values), at=now)
            return
        key = (model, version, role)
        full: _Sums | None = None
        with self._lock:
            sums = self._pending.get(key)
            if sums is None:
                sums = self._pending[key] = _Sums(now)
                self._oldest = min(self._oldest, now)
            counts = sums.counts
            for name, value in values.items():
                if name == gm.LATENCY:
                    sums.latencies.append(value)
                else:
                    counts[name] = counts.get(name, 0) + value
            if len(sums.latencies) >= MAX_VALUES:
                full = self._pending.pop(key)
                self._oldest = min((s.at for s in self._pending.values()), default=math.inf)
        if full is not None:
            self._publish(model, version, role, full.values(), at=full.at)

    def maybe_flush(self) -> int:
        """Publish everything pending if the oldest is ``seconds`` old; the records published."""
        if self._oldest == math.inf or self._clock() - self._oldest < self.seconds:
            return 0
        return self.flush()

    def flush(self) -> int:
        """Publish everything pending now; the records published."""
        with self._lock:
            pending, self._pending, self._oldest = self._pending, {}, math.inf
        for (model, version, role), sums in pending.items():
            self._publish(model, version, role, sums.values(), at=sums.at)
        return len(pending)
