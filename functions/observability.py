"""The one place that builds powertools' Logger, Metrics and Tracer for every handler.

Every handler uses them in the same decorator order: logger (with correlation id) → metrics → tracer. Nothing is
read from the environment beyond what powertools reads itself (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``, ``POWERTOOLS_TRACE_DISABLED``).

The Tracer is built on first use: constructing it imports the X-Ray SDK (about 0.25 s of a cold start here) even
where tracing is off. :meth:`Observability.trace_handler` applies the tracer's handler decorator only where tracing
is on (in Lambda, unless disabled), so elsewhere, as in ``mlops serve`` and the tests, the SDK is never imported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "ServerlessMlops"

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


class Observability:
    """A handler's Logger, Metrics and (lazily) Tracer, plus the service name and metric namespace they share."""

    def __init__(self, service: str, namespace: str, logger: Logger, metrics: Metrics) -> None:
        self.service = service
        self.namespace = namespace
        self.logger = logger
        self.metrics = metrics

    @functools.cached_property
    def tracer(self) -> Tracer:
        return Tracer(service=self.service)

    @property
    def tracing(self) -> bool:
        """Whether X-Ray tracing is on, decided as powertools decides it, without importing the X-Ray SDK."""
        return not Tracer._is_tracer_disabled()

    def trace_handler(self, handler: HandlerT) -> HandlerT:
        """The tracer's Lambda-handler segment where tracing is on; the handler unchanged elsewhere.

        Responses are not recorded in the trace (they can hold predictions about people).
        """
        if not self.tracing:
            return handler
        return self.tracer.capture_lambda_handler(capture_response=False)(handler)  # type: ignore[no-any-return]

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        """Publish one count at once, as its own EMF record with the ``service`` dimension plus ``dimensions``.

        For events outside the invocation's metric record (a failure in a background step), so their dimensions do
        not mix with the request's.
        """
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=value,
            namespace=self.namespace,
            default_dimensions={"service": self.service, **dimensions},
        ):
            pass


def retraining_step_handler(
    obs: Observability,
    handle: Callable[[Any], dict[str, Any]],
    *,
    more_metrics: Callable[[dict[str, Any], str], None] | None = None,
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The ``lambda_handler`` of a retraining workflow function (training, release): log the step, run
    ``handle(event)``, count ``RetrainingStepsCompleted`` (dimensions ``model``, ``step``) and whatever
    ``more_metrics(document, step)`` adds, and answer the workflow document."""

    @obs.logger.inject_lambda_context(log_event=False)
    @obs.metrics.log_metrics
    @obs.trace_handler
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        obs.logger.info("retraining step", extra={"step": event.get("step"), "execution": event.get("execution")})
        document = handle(event)
        step = str(event["step"])
        obs.metrics.add_dimension(name="model", value=str(document["model"]))
        obs.metrics.add_dimension(name="step", value=step)
        obs.metrics.add_metric(name="RetrainingStepsCompleted", unit=MetricUnit.Count, value=1)
        if more_metrics is not None:
            more_metrics(document, step)
        return document

    return lambda_handler


def observability(service: str) -> Observability:
    """Logger, Metrics (EMF, namespace ``ServerlessMlops`` unless the environment names another) and Tracer."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE
    return Observability(
        service=service,
        namespace=namespace,
        logger=Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service),
        metrics=Metrics(namespace=namespace, service=service),
    )
