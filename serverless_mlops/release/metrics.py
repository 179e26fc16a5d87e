"""What CheckGuards reads: a version's guard metrics over a window (``GetMetricData``, the names, namespace and
dimensions of serverless_mlops/serving/guard_metrics.py) and which of the named alarms are in ALARM
(``DescribeAlarms``).

One query per metric covers the whole window with a single period (whole minutes, from the minute the step began to
the minute after now), so a sum is one number and the mean latency one average. CloudWatch publishes EMF metrics
within about a minute of the request; a bake shorter than that judges fewer requests than were served (and low
traffic is not counted as healthy, so it waits another bake rather than pass).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from serverless_mlops.release.guards import VersionCounts
from serverless_mlops.serving import guard_metrics as gm

MAX_ALARM_NAMES = 100  # DescribeAlarms takes at most 100 names a call


class GuardMetricsReader:
    """Guard metrics and alarms (``cloudwatch`` is a boto3 CloudWatch client)."""

    def __init__(self, cloudwatch: Any, namespace: str = gm.NAMESPACE) -> None:
        self.cloudwatch = cloudwatch
        self.namespace = namespace

    def counts(self, model: str, version: int, role: gm.Role, *, start: float, end: float) -> VersionCounts:
        """``version``'s requests, rows, errors, invalid outputs and mean latency in ``role`` from ``start`` to ``end``."""
        first = math.floor(start / 60) * 60
        last = max(first + 60, math.ceil(end / 60) * 60 + 60)  # the minute now is in, whole
        period = int(last - first)
        dims = [{"Name": name, "Value": value} for name, value in gm.dimensions(model, version, role).items()]
        stats = {"requests": (gm.REQUESTS, "Sum"), "rows": (gm.ROWS, "Sum"), "errors": (gm.ERRORS, "Sum")}
        stats |= {"invalid": (gm.INVALID_OUTPUTS, "Sum"), "latency": (gm.LATENCY, "Average")}
        queries = [
            {
                "Id": key,
                "MetricStat": {
                    "Metric": {"Namespace": self.namespace, "MetricName": name, "Dimensions": dims},
                    "Period": period,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            for key, (name, stat) in stats.items()
        ]
        values: dict[str, list[float]] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "MetricDataQueries": queries,
                "StartTime": datetime.fromtimestamp(first, UTC),
                "EndTime": datetime.fromtimestamp(last, UTC),
            }
            if token:
                kwargs["NextToken"] = token
            response = self.cloudwatch.get_metric_data(**kwargs)
            for result in response.get("MetricDataResults", []):
                values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
            token = response.get("NextToken")
            if not token:
                break

        def total(key: str) -> int:
            return round(math.fsum(values.get(key, [])))

        latencies = values.get("latency", [])
        return VersionCounts(
            requests=total("requests"),
            rows=total("rows"),
            errors=total("errors"),
            invalid=total("invalid"),
            latency_ms=(math.fsum(latencies) / len(latencies)) if latencies else None,
        )

    def alarm_states(self, names: list[str]) -> dict[str, str]:
        """The state (OK, ALARM, INSUFFICIENT_DATA) of each of ``names`` that exists (a missing name is absent)."""
        states: dict[str, str] = {}
        paginator = self.cloudwatch.get_paginator("describe_alarms")
        for start in range(0, len(names), MAX_ALARM_NAMES):
            for page in paginator.paginate(AlarmNames=names[start : start + MAX_ALARM_NAMES], AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    states[str(alarm["AlarmName"])] = str(alarm.get("StateValue", ""))
        return states
