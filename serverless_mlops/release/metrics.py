"""What CheckGuards reads: a version's guard metrics over a window (``GetMetricData``, the names, namespace and
dimensions of serverless_mlops/serving/guard_metrics.py) and which of the named alarms are in ALARM
(``DescribeAlarms``); for a release's shadow phase, the shadow's counts and how its rows agreed with production's.

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
from serverless_mlops.release.shadow_guards import AgreementCounts
from serverless_mlops.serving import guard_metrics as gm

MAX_ALARM_NAMES = 100  # DescribeAlarms takes at most 100 names a call
# query id → (metric, statistic)
GUARD_STATS: dict[str, tuple[str, str]] = {
    "requests": (gm.REQUESTS, "Sum"),
    "rows": (gm.ROWS, "Sum"),
    "errors": (gm.ERRORS, "Sum"),
    "invalid": (gm.INVALID_OUTPUTS, "Sum"),
    "latency": (gm.LATENCY, "Average"),
}
AGREEMENT_STATS: dict[str, tuple[str, str]] = {
    "compared": (gm.SHADOW_COMPARED, "Sum"),
    "agreed": (gm.SHADOW_AGREED, "Sum"),
    "delta": (gm.SHADOW_PROBABILITY_DELTA, "Sum"),
}


def _total(values: dict[str, list[float]], key: str) -> int:
    return round(math.fsum(values.get(key, [])))


def _version_counts(values: dict[str, list[float]]) -> VersionCounts:
    latencies = values.get("latency", [])
    return VersionCounts(
        requests=_total(values, "requests"),
        rows=_total(values, "rows"),
        errors=_total(values, "errors"),
        invalid=_total(values, "invalid"),
        latency_ms=(math.fsum(latencies) / len(latencies)) if latencies else None,
    )


class GuardMetricsReader:
    """Guard metrics and alarms (``cloudwatch`` is a boto3 CloudWatch client)."""

    def __init__(self, cloudwatch: Any, namespace: str = gm.NAMESPACE) -> None:
        self.cloudwatch = cloudwatch
        self.namespace = namespace

    def counts(self, model: str, version: int, role: gm.Role, *, start: float, end: float) -> VersionCounts:
        """``version``'s requests, rows, errors, invalid outputs and mean latency in ``role`` from ``start`` to ``end``."""
        return _version_counts(self._query(model, version, role, GUARD_STATS, start=start, end=end))

    def shadow_counts(self, model: str, version: int, *, start: float, end: float) -> tuple[VersionCounts, AgreementCounts]:
        """``version``'s guard counts as a shadow (role ``shadow``) and how its rows agreed with production's, from
        ``start`` to ``end`` (one GetMetricData call)."""
        values = self._query(model, version, gm.SHADOW, GUARD_STATS | AGREEMENT_STATS, start=start, end=end)
        agreement = AgreementCounts(
            compared=_total(values, "compared"), agreed=_total(values, "agreed"), probability_delta=math.fsum(values.get("delta", []))
        )
        return _version_counts(values), agreement

    def _query(
        self, model: str, version: int, role: gm.Role, stats: dict[str, tuple[str, str]], *, start: float, end: float
    ) -> dict[str, list[float]]:
        """The values of ``stats`` (query id → (metric, statistic)) over the window, one period covering all of it."""
        first = math.floor(start / 60) * 60
        last = max(first + 60, math.ceil(end / 60) * 60 + 60)  # the minute now is in, whole
        period = int(last - first)
        dims = [{"Name": name, "Value": value} for name, value in gm.dimensions(model, version, role).items()]
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
                return values

    def alarm_states(self, names: list[str]) -> dict[str, str]:
        """The state (OK, ALARM, INSUFFICIENT_DATA) of each of ``names`` that exists (a missing name is absent)."""
        states: dict[str, str] = {}
        paginator = self.cloudwatch.get_paginator("describe_alarms")
        for start in range(0, len(names), MAX_ALARM_NAMES):
            for page in paginator.paginate(AlarmNames=names[start : start + MAX_ALARM_NAMES], AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    states[str(alarm["AlarmName"])] = str(alarm.get("StateValue", ""))
        return states

    def alarm_findings(self, names: list[str]) -> tuple[list[str], list[str]]:
        """Of the alarms a release names: (those in ALARM, sorted; those that do not exist, in the given order)."""
        states = self.alarm_states(names) if names else {}
        return sorted(name for name, value in states.items() if value == "ALARM"), [name for name in names if name not in states]
