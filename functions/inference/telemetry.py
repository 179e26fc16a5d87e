"""The inference function's logger, metrics and tracer (service ``inference``), and what it counts.

``ModelLoadFailures`` and the capture failures come from the endpoint (:class:`PowertoolsTelemetry`); ``Rows``,
``ModelVersion`` and ``Latency`` from the routes that served a model (:func:`record_served`); ``LabelsReceived`` from the
labels route (:func:`record_labels`); ``Errors`` by code from
the error map (:func:`count_error`). Health, metadata and OpenAPI requests publish no metric, on purpose.

The guard metrics (per model version and role, :mod:`serverless_mlops.serving.guard_metrics`) are one EMF record per
version that scored a request (the shadow's: one per version and interval, summed by
:mod:`serverless_mlops.serving.guard_tally`), printed as the endpoint reports them (:meth:`PowertoolsTelemetry.guard`):
their dimensions (``service``, ``model``, ``version``, ``role``) differ from the invocation's record, so they cannot
join it.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping

import msgspec
from aws_lambda_powertools.metrics import MetricUnit

from functions.observability import observability
from serverless_mlops.serving import guard_metrics

obs = observability("inference")
logger, metrics = obs.logger, obs.metrics
# Health, metadata and OpenAPI requests publish no metric on purpose; powertools would warn about each of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

_served = threading.local()
_encoder = msgspec.json.Encoder()


class PowertoolsTelemetry:
    """The endpoint's failure reports as log lines and EMF counts (``ModelLoadFailures``: service dimension only)."""

    def model_load_failed(self, model: str, reason: str) -> None:
        logger.warning("model failed to load; serving the last good version if one is loaded", extra={"model": model, "reason": reason})
        obs.count("ModelLoadFailures")

    def capture_failed(self, what: str, rows: int, reason: str) -> None:
        logger.warning(f"data capture {what}", extra={"rows": rows, "reason": reason})
        obs.count("CaptureFlushFailures" if what == "flush" else "CaptureRowsDropped", rows if what == "dropped" else 1)

    def guard(
        self, model: str, version: int, role: guard_metrics.Role, values: Mapping[str, float | list[float]], *, at: float | None = None
    ) -> None:
        when = time.time() if at is None else at
        record = guard_metrics.emf_record(
            values, model=model, version=version, role=role, namespace=obs.namespace, timestamp_ms=int(when * 1000)
        )
        print(_encoder.encode(record).decode())  # as powertools prints its records: one JSON line on stdout


def count_error(code: str) -> None:
    """Errors by code: the invocation's metric record gets the ``code`` dimension (an error has no ``model``)."""
    metrics.add_dimension(name="code", value=code)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)


def record_served(model: str, version: int, rows: int) -> None:
    """A route served ``rows`` predictions of ``model`` at ``version``: counted, and the request's latency recorded."""
    metrics.add_dimension(name="model", value=model)
    metrics.add_metric(name="Rows", unit=MetricUnit.Count, value=rows)
    metrics.add_metric(name="ModelVersion", unit=MetricUnit.NoUnit, value=version)
    _served.model = model
    _served.version = version


def record_labels(model: str, labels: int) -> None:
    """A labels request stored ``labels`` labels for ``model`` (``LabelsReceived``, ``model`` dimension; no latency)."""
    metrics.add_dimension(name="model", value=model)
    metrics.add_metric(name="LabelsReceived", unit=MetricUnit.Count, value=labels)


def start_request() -> None:
    """Forget the previous request's model (a thread serves one request at a time)."""
    _served.model = None
    _served.version = None


def served_version() -> int | None:
    """The version that answered this request, if a model did (the handler puts it in ``x-model-version``)."""
    return getattr(_served, "version", None)


def record_latency(milliseconds: float) -> None:
    """The request's latency, published only when a route served a model (errors and health checks have none)."""
    if getattr(_served, "model", None) is not None:
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=milliseconds)
