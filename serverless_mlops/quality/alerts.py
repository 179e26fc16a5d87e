"""One SNS alert per model and window when realized quality breaches the spec's thresholds (attribute ``kind=quality``).

Deduplicated the way drift alerts are (:mod:`serverless_mlops.drift.alerts`): the alert is first recorded at
``alerts/{model}/quality-{window}.json`` with a conditional write (``IfNoneMatch="*"``), so a retried invocation for
the same window finds the record and does not publish again; if publishing fails, the record is removed so the retry
can. Subscribers filter on the ``kind`` attribute (``quality`` here; drift alerts carry none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from serverless_mlops.drift.alerts import ALERTS_PREFIX
from serverless_mlops.quality.result import QualityResult
from serverless_mlops.store.artifacts import encryption_args

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


@dataclass(frozen=True)
class QualityAlert:
    sent: bool
    message_id: str | None = None
    reason: str = ""


def send_quality_alert_once(
    s3: Any, bucket: str, sns: Any, topic_arn: str, result: QualityResult, report_uri: str, *, kms_key_id: str | None = None
) -> QualityAlert:
    """Publish the alert unless this model and window were already alerted."""
    key = quality_alert_key(result.model, result.window.label)
    subject, body = quality_alert_message(result, report_uri)
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(body, allow_nan=False).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
            **encryption_args(kms_key_id),
        )
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return QualityAlert(sent=False, reason=f"already alerted for this window (s3://{bucket}/{key})")
        raise
    try:
        response = sns.publish(
            TopicArn=topic_arn,
            Subject=subject,
            Message=json.dumps(body, allow_nan=False),
            MessageAttributes={
                "model": {"DataType": "String", "StringValue": result.model},
                "severity": {"DataType": "String", "StringValue": severity(result)},
                "kind": {"DataType": "String", "StringValue": KIND},
            },
        )
    except BaseException:
        s3.delete_object(Bucket=bucket, Key=key)  # let a retry alert
        raise
    return QualityAlert(sent=True, message_id=response.get("MessageId"))
