"""What follows a drift verdict: one SNS alert per model and window, and the retraining workflow when configured.

Dedupe: before publishing, the alert is recorded at ``alerts/{model}/{window}.json`` in the artifact bucket with a
conditional write (``IfNoneMatch="*"``): S3 refuses it with 412 if the object exists, so a retried invocation for
the same window finds the record and does not alert again. If publishing fails the record is removed, so the retry
can alert. Retraining is idempotent by its execution name, derived from the model and the window's end
(``serverless_mlops.retraining.control``'s naming and start, imported only when drift starts one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from serverless_mlops.drift.result import DriftResult
from serverless_mlops.store.artifacts import encryption_args

ALERTS_PREFIX = "alerts"


def alert_key(model: str, window_label: str) -> str:
    return f"{ALERTS_PREFIX}/{model}/{window_label}.json"


def severity(result: DriftResult) -> str:
    """``critical`` when at least three quarters of the checked features drifted, else ``warning``."""
    return "critical" if result.drifted_share >= 0.75 else "warning"


def alert_message(result: DriftResult, report_uri: str) -> tuple[str, dict[str, Any]]:
    """The subject (at most 100 characters, as SNS requires) and the JSON body of the alert."""
    subject = f"Drift: {result.model} v{result.version}, {result.drifted_features}/{result.checked_features} features"[:100]
    body = {
        "model": result.model,
        "version": result.version,
        "window": result.window.model_dump() if result.window else None,
        "status": result.status,
        "severity": severity(result),
        "rows": result.rows,
        "drifted_share": round(result.drifted_share, 4),
        "drift_share_threshold": result.drift_share,
        "method": result.method,
        "drifted_features": [
            {
                "feature": f.name,
                "test": f.test,
                "statistic": f.statistic,
                "threshold": f.threshold,
                "effect_size": f.effect_size,
                "psi": f.psi,
            }
            for f in result.drifted()
        ],
        "prediction": None
        if result.prediction is None
        else {"verdict": result.prediction.verdict, "test": result.prediction.test, "statistic": result.prediction.statistic},
        "data_quality": [finding.model_dump() for finding in result.data_quality],
        "report": report_uri,
    }
    return subject, body


@dataclass(frozen=True)
class AlertOutcome:
    sent: bool
    message_id: str | None = None
    reason: str = ""


def send_alert_once(
    s3: Any, bucket: str, sns: Any, topic_arn: str, result: DriftResult, report_uri: str, *, kms_key_id: str | None = None
) -> AlertOutcome:
    """Publish the alert unless this model and window were already alerted (conditional write under alerts/; the
    marker holds the alert, so it is encrypted like everything else in the bucket)."""
    if result.window is None:
        raise ValueError("an alert needs a window")
    subject, body = alert_message(result, report_uri)
    attributes = {"model": result.model, "severity": severity(result)}
    return publish_once(s3, bucket, sns, topic_arn, alert_key(result.model, result.window.label), subject, body, attributes, kms_key_id)


def publish_once(
    s3: Any,
    bucket: str,
    sns: Any,
    topic_arn: str,
    key: str,
    subject: str,
    body: dict[str, Any],
    attributes: dict[str, str],
    kms_key_id: str | None = None,
) -> AlertOutcome:
    """Publish ``body`` once per marker ``key``: the marker is written first (``IfNoneMatch``), so a second check of
    the same window finds it and sends nothing; a failed publish deletes it again, so a retry alerts. Shared by the
    drift and quality alerts (``attributes``: the SNS message attributes subscribers filter on)."""
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
            return AlertOutcome(sent=False, reason=f"already alerted for this window (s3://{bucket}/{key})")
        raise
    try:
        response = sns.publish(
            TopicArn=topic_arn,
            Subject=subject,
            Message=json.dumps(body, allow_nan=False),
            MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
        )
    except BaseException:
        s3.delete_object(Bucket=bucket, Key=key)  # let a retry alert
        raise
    return AlertOutcome(sent=True, message_id=response.get("MessageId"))
