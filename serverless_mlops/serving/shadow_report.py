"""The shadow's agreement with production over a window, from the captured rows (``mlops shadow report``).

Captured rows the alias's shadow also scored carry ``shadow: {version, prediction}``
(:mod:`serverless_mlops.store.capture_format`). :func:`shadow_agreement` reads a window's capture objects and, per
(answering version, shadow version), counts the rows and those on which the two agree, as the live metrics do
(:func:`serverless_mlops.serving.guard_metrics.agreement`: classifiers the same label; regressors within
:data:`~serverless_mlops.serving.guard_metrics.REGRESSION_TOLERANCE`). For regressors it also gives the mean
absolute difference. Probabilities are not captured, so |Δ probability| is a live metric only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from serverless_mlops.serving.guard_metrics import REGRESSION_TOLERANCE, agreement
from serverless_mlops.store.capture_format import SHADOW_FIELD, decode_records, parse_timestamp, window_prefixes


@dataclass
class Comparison:
    """Production ``version`` against ``shadow_version`` over the window's shadowed rows."""

    version: int
    shadow_version: int
    rows: int = 0
    agreed: int = 0
    abs_diff_sum: float = 0.0
    classification: bool = True

    @property
    def agreement(self) -> float:
        return self.agreed / self.rows if self.rows else 0.0

    @property
    def mean_abs_diff(self) -> float | None:
        return None if self.classification or not self.rows else self.abs_diff_sum / self.rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "shadow_version": self.shadow_version,
            "rows": self.rows,
            "agreed": self.agreed,
            "agreement": round(self.agreement, 6),
            "mean_abs_diff": self.mean_abs_diff,
        }


def captured_rows(s3: Any, bucket: str, model: str, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """Every captured row of ``model`` with ``start <= ts < end`` (a malformed object raises, naming it and its line)."""
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in window_prefixes(model, start, end):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                for row in decode_records(body, f"s3://{bucket}/{item['Key']}"):
                    if start <= parse_timestamp(row["ts"]) < end:
                        yield row


def shadow_agreement(
    rows: Iterator[dict[str, Any]], is_classification: Callable[[int], bool], *, tolerance: float = REGRESSION_TOLERANCE
) -> list[Comparison]:
    """Agreement per (version, shadow version) over ``rows`` (rows without a shadow are skipped);
    ``is_classification(version)`` tells how to compare (asked once per version)."""
    found: dict[tuple[int, int], Comparison] = {}
    for row in rows:
        shadow = row.get(SHADOW_FIELD)
        if shadow is None:
            continue
        key = (int(row["version"]), int(shadow["version"]))
        comparison = found.get(key)
        if comparison is None:
            comparison = found[key] = Comparison(*key, classification=is_classification(key[0]))
        production, shadowed = row["prediction"], shadow["prediction"]
        comparison.rows += 1
        comparison.agreed += agreement([production], [shadowed], classification=comparison.classification, tolerance=tolerance)[0]
        if not comparison.classification:
            comparison.abs_diff_sum += abs(float(shadowed) - float(production))
    return [found[key] for key in sorted(found)]
