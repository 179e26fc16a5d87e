"""EventBridge schedule expressions as a validated spec field type (the drift, retraining and quality sections)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator


def _schedule_expression(value: str) -> str:
    """An EventBridge schedule expression as EventBridge accepts it: rate(1 day), rate(6 hours), cron(0 6 * * ? *)."""
    value = value.strip()
    expected = "expected an EventBridge expression such as 'rate(1 day)', 'rate(6 hours)' or 'cron(0 6 * * ? *)'"
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", value)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2)
        if amount < 1:
            raise ValueError(f"{expected}; the rate must be at least 1, got {value!r}")
        if (amount == 1) == unit.endswith("s"):
            right = unit.rstrip("s") if amount == 1 else unit + "s"
            raise ValueError(f"{expected}; EventBridge wants {amount} {right}, got {value!r}")
        return value
    cron = re.fullmatch(r"cron\(([^()]+)\)", value)
    if cron:
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise ValueError(f"{expected}; cron takes 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}")
        if "?" not in (fields[2], fields[4]):
            raise ValueError(f"{expected}; cron needs '?' in day-of-month or day-of-week, got {value!r}")
        return value
    raise ValueError(f"{expected}, got {value!r}")


ScheduleExpression = Annotated[str, AfterValidator(_schedule_expression)]
