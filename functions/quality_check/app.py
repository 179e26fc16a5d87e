"""The quality-check Lambda: parse the event → ``serverless_mlops.quality.service.run_quality_check`` → metrics, summary.

Settings come from the environment on the first invocation (never at import time), validated by
:class:`QualitySettings`: MLOPS_BUCKET and MLOPS_TABLE (required in Lambda), MLOPS_KMS_KEY_ID,
MLOPS_ALERT_TOPIC_ARN and MLOPS_RETRAIN_STATE_MACHINE_ARN (optional) and, locally, MLOPS_ENDPOINT_URL.

Metrics (EMF, namespace ServerlessMlops), one record per version and metric with two dimension sets,
``(model, version, metric)`` and ``(model, metric)`` (the alarm's: it holds whatever version serves):
``RealizedMetric`` (when the version had labelled rows) and ``EstimatedMetric`` (CBPE); per version ``LabelCoverage``
and ``LabelledRows`` with ``(model, version)`` and ``(model)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
from aws_lambda_powertools.utilities.typing import LambdaContext
from numpy.typing import NDArray
from pydantic import Field

from functions.observability import NAMESPACE, observability
from functions.quality_check.events import parse_event
from serverless_mlops.aws import client
from serverless_mlops.model.quality_spec import parse_duration
from serverless_mlops.quality.join import Scorer
from serverless_mlops.quality.recent_rows import RecentRowsFile
from serverless_mlops.quality.result import QualityResult
from serverless_mlops.quality.service import QualityNotifier, QualityOutcome, run_quality_check
from serverless_mlops.retraining.control import fit_execution_name, start_named
from serverless_mlops.retraining.state import RecentRows, WorkflowState
from serverless_mlops.serving.onnx_model import OnnxModel, load_model
from serverless_mlops.settings import FunctionSettings
from serverless_mlops.store.capture_format import parse_timestamp
from serverless_mlops.store.lifecycle import Backends

obs = observability("quality_check")


class QualitySettings(FunctionSettings):
    """The quality-check function's environment (validated on its first invocation)."""

    NAME = "quality-check"

    alert_topic_arn: str | None = Field(default=None, alias="MLOPS_ALERT_TOPIC_ARN", description="where quality alerts go")
    retrain_state_machine_arn: str | None = Field(
        default=None, alias="MLOPS_RETRAIN_STATE_MACHINE_ARN", description="the retraining workflow a breach starts (optional)"
    )


def onnx_scorer(backends: Backends, model: str) -> Scorer:
    """Recompute a version's probabilities from captured features with its own ONNX graph (loaded once per version,
    sha256-checked like the endpoint's)."""
    models: dict[int, OnnxModel] = {}

    def score(version: int, records: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
        if version not in models:
            models[version] = load_model(backends, backends.registry.describe(model, version))
        found = models[version].predict_records(records)
        return np.asarray(found.probabilities, dtype=np.float64)

    return score


def start_for_quality(
    sfn: Any, state_machine_arn: str, result: QualityResult, report_uri: str, recent: RecentRowsFile | None = None
) -> str:
    """Start the retraining workflow once per model and window (idempotent by its execution name); ``recent``, the
    window's newest labelled rows, goes in the input as ``recent`` (validated as the workflow reads it), for Evaluate."""
    end = parse_timestamp(result.window.end)
    breaches = result.breaches()
    shown = "; ".join(f"v{v} {b.metric} {b.value:.3f} vs {b.rule.replace('_', ' ')} {b.threshold:.3f}" for v, b in breaches[:3])
    state = WorkflowState(
        model=result.model,
        trigger="quality",
        reason=f"quality breach: {shown}",
        report=report_uri,
        recent=RecentRows(uri=recent.uri, sha256=recent.sha256, rows=recent.rows, window=recent.window) if recent else None,
    )
    name = fit_execution_name(result.model, f"quality-{end:%Y%m%dT%H%M}")
    return start_named(sfn, state_machine_arn, name, state.document())


@dataclass(frozen=True)
class Dependencies:
    backends: Backends
    notifier: QualityNotifier


@lru_cache(maxsize=1)
def default_dependencies() -> Dependencies:
    """Clients built once per cold start from the environment."""
    settings = QualitySettings.from_env()
    machine = settings.retrain_state_machine_arn
    return Dependencies(
        backends=Backends.from_settings(settings.aws),
        notifier=QualityNotifier(
            sns=client("sns", settings.aws) if settings.alert_topic_arn else None,
            topic_arn=settings.alert_topic_arn,
            retrain=partial(start_for_quality, client("stepfunctions", settings.aws), machine) if machine else None,
        ),
    )


def handle(event: Any, deps: Dependencies | None = None) -> QualityOutcome:
    """Parse ``event`` and run one quality check (``deps`` defaults to clients from the environment)."""
    request = parse_event(event)
    deps = deps or default_dependencies()
    return run_quality_check(
        request.model,
        deps.backends,
        end=request.time or request.end,
        window=parse_duration(request.window) if request.window else None,
        notifier=deps.notifier,
        scorer=partial(onnx_scorer, model=request.model),
    )


def emf_records(result: QualityResult, service: str = "quality_check") -> list[dict[str, Any]]:
    """The EMF records of one result (see the module docstring)."""
    records: list[dict[str, Any]] = []

    def record(names: dict[str, float], dimensions: dict[str, str], sets: list[list[str]]) -> None:
        units = {"LabelCoverage": "None", "LabelledRows": "Count"}
        records.append(
            {
                "_aws": {
                    "Timestamp": int(parse_timestamp(result.generated_at).timestamp() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            "Dimensions": [[*s, "service"] for s in sets],
                            "Metrics": [{"Name": n, "Unit": units.get(n, "None")} for n in names],
                        }
                    ],
                },
                **dimensions,
                "service": service,
                **names,
            }
        )

    for v in result.versions:
        version = {"model": result.model, "version": str(v.version)}
        record({"LabelCoverage": v.coverage, "LabelledRows": float(v.labelled)}, version, [["model", "version"], ["model"]])
        for metric in sorted(set(v.realized) | set(v.estimated)):
            values = {
                name: float(value)
                for name, value in (("RealizedMetric", v.realized.get(metric)), ("EstimatedMetric", v.estimated.get(metric)))
                if value is not None
            }
            if values:
                record(values, version | {"metric": metric}, [["model", "version", "metric"], ["model", "metric"]])
    return records


def emit_metrics(result: QualityResult) -> None:
    for found in emf_records(result, str(obs.metrics.service or "quality_check")):
        sys.stdout.write(json.dumps(found, separators=(",", ":")) + "\n")


@obs.logger.inject_lambda_context(log_event=True)
@obs.trace_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = handle(event)
    emit_metrics(outcome.result)
    summary = outcome.summary()
    obs.logger.info("quality check done", extra={k: summary[k] for k in ("model", "status", "alerted")})
    return summary
