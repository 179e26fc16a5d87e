"""One drift check end to end: resolve the version, read its baseline and the window's captures, check, report, alert.

The drift-check Lambda and ``mlops drift check`` both call :func:`run_check`; the Lambda passes SNS and Step
Functions clients, the CLI passes none (it prints instead of alerting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from serverless_mlops.drift.alerts import AlertOutcome, send_alert_once
from serverless_mlops.drift.capture_reader import CurrentData, read_file, read_window
from serverless_mlops.drift.check import check_drift
from serverless_mlops.drift.report import write_report
from serverless_mlops.drift.result import DriftResult, Window
from serverless_mlops.errors import DataError
from serverless_mlops.model.profile import load_profile
from serverless_mlops.model.spec import Drift
from serverless_mlops.store.capture_format import timestamp
from serverless_mlops.store.lifecycle import Backends, resolve_version
from serverless_mlops.store.registry import ModelVersion


@dataclass(frozen=True)
class Notifier:
    """Where drift goes beyond the report: an SNS topic and, optionally, a start of the retraining workflow
    (``retrain(result, report_uri) -> execution ARN``; the drift-check function passes
    :func:`serverless_mlops.retraining.control.start_for_drift`, so drift never imports the layer above it)."""

    sns: Any = None
    topic_arn: str | None = None
    retrain: Callable[[DriftResult, str], str] | None = None


@dataclass(frozen=True)
class DriftOutcome:
    result: DriftResult
    report: dict[str, str] | None
    alert: AlertOutcome | None
    retraining_execution: str | None

    def summary(self) -> dict[str, Any]:
        r = self.result
        return {
            "model": r.model,
            "version": r.version,
            "window": r.window.model_dump() if r.window else None,
            "status": r.status,
            "dataset_drift": r.dataset_drift,
            "drifted_share": r.drifted_share,
            "drifted_features": [f.name for f in r.drifted()],
            "rows": r.rows,
            "report": self.report,
            "alerted": bool(self.alert and self.alert.sent),
            "alert_note": self.alert.reason if self.alert else "",
            "retraining_execution": self.retraining_execution,
            "skipped_sources": r.skipped_sources,
        }


def make_window(start: datetime, end: datetime) -> Window:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise DataError(f"window must end after it starts ({timestamp(start)} .. {timestamp(end)})")
    return Window(start=timestamp(start), end=timestamp(end), label=f"{start:%Y%m%dT%H%MZ}-{end:%Y%m%dT%H%MZ}")


def window_ending(end: datetime, hours: int) -> tuple[datetime, datetime]:
    """[end - hours, end) with ``end`` cut to the minute, so a retried schedule event names the same window."""
    end = end.astimezone(UTC).replace(second=0, microsecond=0)
    return end - timedelta(hours=hours), end


def drift_config(entry: ModelVersion) -> Drift:
    """The drift section of the spec the version was trained from (defaults if it predates specs on versions)."""
    return Drift.model_validate(entry.spec.get("drift", {}))


def run_check(
    model: str,
    backends: Backends,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    window_hours: int | None = None,
    current_file: str | Path | None = None,
    current: CurrentData | None = None,
    version: int | None = None,
    notifier: Notifier | None = None,
    write: bool = True,
    now: datetime | None = None,
) -> DriftOutcome:
    """Check ``model``'s production version (or ``version``) against the captures of one window or a local file.

    The window is [start, end) if given, else the ``window_hours`` (default: the spec's) ending at ``end`` or now.
    ``current``: columns already read (the CLI's CSV or JSON rows, :mod:`serverless_mlops.drift.instances`), checked
    as they are; ``current_file`` then only names them.
    """
    entry = resolve_version(backends, model, version=version)
    config = drift_config(entry)
    profile = load_profile(backends.store.get(entry.profile, model=model, version=entry.version))
    kinds = {name: summary["kind"] for name, summary in profile["features"].items()}
    prediction_kind = profile["prediction"]["kind"]
    clock = now or datetime.now(UTC)
    window: Window | None = None
    if current is None and current_file is not None:
        current = read_file(current_file, kinds, prediction_kind)
    elif current is None:
        if start is None or end is None:
            start, end = window_ending(end or clock, window_hours or config.window_hours)
        window = make_window(start, end)
        current = read_window(backends.store.s3, backends.store.bucket, model, start, end, kinds, prediction_kind)
    result = check_drift(profile, config, current, model=model, version=entry.version, window=window, generated_at=timestamp(clock))
    report = write_report(backends.store.s3, backends.store.bucket, result, kms_key_id=backends.store.kms_key_id) if write else None
    alert = None
    execution = None
    if result.dataset_drift and window is not None and report is not None and notifier is not None:
        if notifier.sns is not None and notifier.topic_arn:
            alert = send_alert_once(
                backends.store.s3,
                backends.store.bucket,
                notifier.sns,
                notifier.topic_arn,
                result,
                report["json"],
                kms_key_id=backends.store.kms_key_id,
            )
        if config.retrain_on_drift and notifier.retrain is not None:
            execution = notifier.retrain(result, report["json"])
    return DriftOutcome(result=result, report=report, alert=alert, retraining_execution=execution)
