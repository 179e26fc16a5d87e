"""A deployed function's month as CloudWatch saw it: ``AWS/Lambda`` ``Invocations`` and ``Duration`` over the last days,
and its memory and architecture from its configuration, for ``mlops cost estimate --from-cloudwatch``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from serverless_mlops.cost.usage import HOURS_A_MONTH, CostError

DAY = 86400


@dataclass(frozen=True)
class Observed:
    function: str
    days: int
    invocations: float
    duration_ms: float | None  # the mean Duration (None without invocations)
    memory_mb: int
    architecture: str

    @property
    def requests_a_month(self) -> float:
        return self.invocations / self.days * HOURS_A_MONTH / 24


def observe(function: str, *, cloudwatch: Any, lambda_: Any, days: int = 30, now: datetime | None = None) -> Observed:
    """``function``'s invocations and mean duration over the ``days`` before ``now`` (whole days, UTC), with its memory
    and architecture. Raises :class:`CostError` naming the function when Lambda does not know it."""
    from botocore.exceptions import ClientError

    if days < 1:
        raise CostError(f"--days: {days}; at least 1")
    try:
        configuration = lambda_.get_function_configuration(FunctionName=function)
    except ClientError as exc:
        raise CostError(f"--function {function}: {exc.response.get('Error', {}).get('Message') or exc}") from exc
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)

    def query(key: str, metric: str, stat: str) -> dict[str, Any]:
        return {
            "Id": key,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": [{"Name": "FunctionName", "Value": function}]},
                "Period": DAY,
                "Stat": stat,
            },
        }

    sums: dict[str, float] = {"invocations": 0.0, "duration": 0.0, "samples": 0.0}
    queries = [
        query("invocations", "Invocations", "Sum"),
        query("duration", "Duration", "Sum"),
        query("samples", "Duration", "SampleCount"),
    ]
    token: str | None = None
    while True:
        page = cloudwatch.get_metric_data(
            MetricDataQueries=queries, StartTime=start, EndTime=end, **({"NextToken": token} if token else {})
        )
        for result in page["MetricDataResults"]:
            sums[result["Id"]] += sum(result.get("Values", []))
        token = page.get("NextToken")
        if not token:
            break
    duration = sums["duration"] / sums["samples"] if sums["samples"] else None
    architectures = configuration.get("Architectures") or ["x86_64"]
    return Observed(function, days, sums["invocations"], duration, int(configuration.get("MemorySize", 128)), architectures[0])
