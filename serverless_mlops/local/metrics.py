"""CloudWatch Logs' EMF extraction, for the local stack: on AWS, the metric records a function prints (embedded
metric format, one JSON line each) become CloudWatch metrics; moto has no such pipeline, so :class:`EmfForwarder` reads
a function's captured output and puts its records into moto's CloudWatch with ``PutMetricData``
(:func:`serverless_mlops.serving.guard_metrics.metric_data`).

The local HTTP API runs it after each inference call (serverless_mlops/local/environment.py), so the release
workflow's CheckGuards reads the guard metrics of the local traffic with ``GetMetricData``, as it does on AWS.
"""

from __future__ import annotations

import json
from typing import Any

from serverless_mlops.aws import SERVICE_ERRORS
from serverless_mlops.serving.guard_metrics import metric_data

MAX_DATUMS = 1000  # PutMetricData's limit per call


def emf_records(logs: str) -> list[dict[str, Any]]:
    """The EMF records among a function's output lines (other lines, and broken JSON, are skipped as CloudWatch does)."""
    records = []
    for line in logs.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("_aws"), dict) and record["_aws"].get("CloudWatchMetrics"):
            records.append(record)
    return records


class EmfForwarder:
    """Puts the EMF records of a function's output into CloudWatch (``cloudwatch`` is a boto3 client)."""

    def __init__(self, cloudwatch: Any) -> None:
        self.cloudwatch = cloudwatch
        self.failures = 0

    def forward(self, logs: str) -> int:
        """Put every metric of ``logs``' EMF records; returns how many datums went out. A record CloudWatch refuses is
        counted in :attr:`failures` and dropped, as a malformed record is on AWS: the function's answer stands."""
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for record in emf_records(logs):
            try:
                namespace, data = metric_data(record)
            except (KeyError, TypeError, ValueError):
                self.failures += 1
                continue
            by_namespace.setdefault(namespace, []).extend(data)
        sent = 0
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), MAX_DATUMS):
                try:
                    self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + MAX_DATUMS])
                except SERVICE_ERRORS:
                    self.failures += 1
                    continue
                sent += len(data[start : start + MAX_DATUMS])
        return sent
