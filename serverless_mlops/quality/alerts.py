"""One SNS alert per model and window when realized quality breaches the spec's thresholds (attribute ``kind=quality``).

Deduplicated the way drift alerts are (:mod:`serverless_mlops.drift.alerts`): the alert is first recorded at
``alerts/{model}/quality-{window}.json`` with a conditional write (``IfNoneMatch="*"``), so a retried invocation for
the same window finds the record and does not publish again; if publishing fails, the record is removed so the retry
can. Subscribers filter on the ``kind`` attribute (``quality`` here; drift alerts carry none).
"""

from __future__ import annotations

from typing import Any

from serverless_mlops.drift.alerts import ALERTS_PREFIX, AlertOutcome, publish_once
from serverless_mlops.quality.result import QualityResult

KIND = "quality"


def quality_alert_key(model: str, window_label: str) -> str:
    return f"{ALERTS_PREFIX}/{model}/{KIND}-{window_label}.json"


def severity(result: QualityResult) -> str:
    """``critical`` when an absolute floor is crossed, else ``warning`` (a drop against the training holdout)."""
    return "critical" if any(b.rule == "floor" for _, b in result.breaches()) else "warning"


def quality_alert_message(result: QualityResult, report_uri: str) -> tuple[str, dict[str, Any]]:
    """The subject (at most 100 characters, as SNS requires) and the JSON body of the alert."""
    breaches = result.breaches()
    first = breaches[0][1] if breaches else None
    worst = f": {first.metric} {first.value:.3f} vs {first.threshold:.3f}" if first else ""
    versions = sorted({v for v, _ in breaches})
    subject = f"Quality: {result.model} v{', v'.join(map(str, versions))}{worst}"[:100]
    body = {
        "kind": KIND,
        "model": result.model,
        "window": result.window.model_dump(),
        "status": result.status,
        "severity": severity(result),
        "breaches": [{"version": v} | b.model_dump() for v, b in breaches],
        "versions": [
            {"version": v.version, "labelled": v.labelled, "coverage": v.coverage, "realized": v.realized, "estimated": v.estimated}
            for v in result.versions
        ],
        "report": report_uri,
    }
    return subject, body


QualityAlert = AlertOutcome  # sent, message_id, reason: the drift alert's outcome


def send_quality_alert_once(
    s3: Any, bucket: str, sns: Any, topic_arn: str, result: QualityResult, report_uri: str, *, kms_key_id: str | None = None
) -> QualityAlert:
    """Publish the alert unless this model and window were already alerted (the drift alerts' marker, under its own key)."""
    subject, body = quality_alert_message(result, report_uri)
    attributes = {"model": result.model, "severity": severity(result), "kind": KIND}
    return publish_once(
        s3, bucket, sns, topic_arn, quality_alert_key(result.model, result.window.label), subject, body, attributes, kms_key_id
    )
