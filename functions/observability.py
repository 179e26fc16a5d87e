"""The one place that builds powertools' Logger, Metrics and Tracer for every handler.

Every handler uses them in the same decorator order: logger (with correlation id) → metrics → tracer. Nothing is
read from the environment beyond what powertools reads itself (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``); outside Lambda the tracer switches itself off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aws_lambda_powertools import Logger, Metrics, Tracer

NAMESPACE = "ServerlessMlops"


@dataclass(frozen=True)
class Observability:
    logger: Logger
    metrics: Metrics
    tracer: Tracer


def observability(service: str) -> Observability:
    """Logger, Metrics (EMF, namespace ``ServerlessMlops`` unless the environment names another) and Tracer."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE
    return Observability(
        logger=Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service),
        metrics=Metrics(namespace=namespace, service=service),
        tracer=Tracer(service=service),
    )
