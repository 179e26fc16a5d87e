"""One quality check end to end: the window's captured predictions and ground truth → verdict → report → alert.

The quality-check Lambda, ``mlops quality check`` and local mode all call :func:`run_quality_check`. The window is
``[end - quality.window, end)`` (``end``: now or the schedule's time, cut to the minute so a retried event names the
same window); its labels are those that arrived from the window's start until ``end`` (a label may come up to
``quality.label_delay`` after its prediction, and the join enforces that per row). The spec's ``quality:`` section of
the production version (or ``version``) decides; every version that served in the window gets its own verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from serverless_mlops.drift.service import make_window
from serverless_mlops.errors import DataError, MlopsError
from serverless_mlops.model.profile import load_profile
from serverless_mlops.model.quality_spec import Quality
from serverless_mlops.quality.alerts import QualityAlert, send_quality_alert_once
from serverless_mlops.quality.check import check_quality
from serverless_mlops.quality.join import Scorer
from serverless_mlops.quality.labels import read_ground_truth
from serverless_mlops.quality.recent_rows import RecentRowsFile, write_recent_rows
from serverless_mlops.quality.report import write_quality_report
from serverless_mlops.quality.result import QualityResult
from serverless_mlops.quality.window import join_window
from serverless_mlops.store.capture_format import timestamp
from serverless_mlops.store.lifecycle import Backends, resolve_version
from serverless_mlops.store.registry import ModelVersion


@dataclass(frozen=True)
class QualityNotifier:
    """Where a breach goes beyond the report: an SNS topic and, optionally, a start of the retraining workflow
    (``retrain(result, report_uri, recent_rows) -> execution ARN``, passed by the quality-check function;
    ``recent_rows``: the window's newest labelled rows, :mod:`serverless_mlops.quality.recent_rows`)."""

    sns: Any = None
    topic_arn: str | None = None
    retrain: Callable[[QualityResult, str, RecentRowsFile | None], str] | None = None


@dataclass(frozen=True)
class QualityOutcome:
    result: QualityResult
    report: dict[str, str] | None
    alert: QualityAlert | None
    retraining_execution: str | None
    recent_rows: RecentRowsFile | None = None  # the holdout handed to that execution

    def summary(self) -> dict[str, Any]:
        return self.result.summary() | {
            "report": self.report,
            "alerted": bool(self.alert and self.alert.sent),
            "alert_note": self.alert.reason if self.alert else "",
            "retraining_execution": self.retraining_execution,
            "recent_rows": vars(self.recent_rows).copy() if self.recent_rows else None,
        }


def quality_config(entry: ModelVersion) -> Quality:
    """The quality section of the spec ``entry`` was trained from (defaults for a spec without one)."""
    try:
        return Quality.model_validate(entry.spec.get("quality", {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"quality.{'.'.join(str(part) for part in err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors()
        )
        raise DataError(f"model {entry.model!r} version {entry.version}: invalid quality section: {problems}") from exc


def _calibration(backends: Backends, entry: ModelVersion) -> dict[str, Any] | None:
    profile = load_profile(backends.store.get(entry.profile, model=entry.model, version=entry.version))
    calibration = profile.get("calibration")
    return calibration if isinstance(calibration, dict) else None


def run_quality_check(
    model: str,
    backends: Backends,
    *,
    end: datetime | None = None,
    window: timedelta | None = None,
    version: int | None = None,
    notifier: QualityNotifier | None = None,
    scorer: Callable[[Backends], Scorer] | None = None,
    write: bool = True,
    now: datetime | None = None,
) -> QualityOutcome:
    """Check ``model`` over the window ending at ``end`` (default now) of ``window`` (default the spec's).

    ``scorer(backends)`` makes the function that recomputes a version's probabilities from captured features (the
    ONNX model; the quality-check function and the CLI pass one) for captures that hold none."""
    entry = resolve_version(backends, model, version=version)
    config = quality_config(entry)
    clock = (now or datetime.now(UTC)).astimezone(UTC)
    stop = (end or clock).astimezone(UTC).replace(second=0, microsecond=0)
    start = stop - (window or config.window_delta)
    span = make_window(start, stop)
    signature = entry.signature
    classes = list(signature.classes) if signature.is_classification and signature.classes else None
    if signature.is_classification and classes is None:
        raise MlopsError(f"model {model!r} version {entry.version}: a classifier without classes in its signature")
    s3, bucket = backends.store.s3, backends.store.bucket
    truth = read_ground_truth(s3, bucket, model, start, stop + timedelta(minutes=1), task=signature.task, classes=signature.classes)
    joined = join_window(
        s3,
        bucket,
        model,
        truth.labels,
        start=start,
        end=stop,
        label_delay=config.label_delay_delta,
        classes=classes,
        scorer=scorer(backends) if scorer is not None and classes is not None else None,
    )
    entries = {number: entry if number == entry.version else backends.registry.describe(model, number) for number in joined.versions}
    result = check_quality(
        joined,
        model=model,
        task=signature.task,
        window=span,
        generated_at=timestamp(clock),
        config=config,
        classes=classes,
        calibrations={n: _calibration(backends, e) for n, e in entries.items()} if classes is not None else {},
        holdouts={n: dict(e.metrics) for n, e in entries.items()},
    )
    result = result.model_copy(
        update={
            "label_objects": len(truth.objects),
            "skipped_label_objects": [{"source": s.source, "error": s.reason} for s in truth.skipped],
        }
    )
    report = write_quality_report(s3, bucket, result, kms_key_id=backends.store.kms_key_id) if write else None
    alert = execution = None
    recent: RecentRowsFile | None = None
    if result.status == "breach" and report is not None and notifier is not None:
        if notifier.sns is not None and notifier.topic_arn:
            alert = send_quality_alert_once(
                s3, bucket, notifier.sns, notifier.topic_arn, result, report["json"], kms_key_id=backends.store.kms_key_id
            )
        if config.retrain_on_quality and notifier.retrain is not None:
            recent = write_recent_rows(
                s3,
                bucket,
                model,
                joined,
                window_label=span.label,
                start=start,
                end=stop,
                feature_names=signature.feature_names,
                target=signature.target,
                kms_key_id=backends.store.kms_key_id,
            )
            execution = notifier.retrain(result, report["json"], recent)
    return QualityOutcome(result=result, report=report, alert=alert, retraining_execution=execution, recent_rows=recent)
