"""A monthly bill, line by line, for one deployed model: usage (:class:`Usage`) times the price table
(:mod:`serverless_mlops.cost.prices`).

What each line counts, and what it assumes, is in its ``basis``; the assumptions are the
:class:`~serverless_mlops.cost.usage.Usage` defaults (:mod:`serverless_mlops.cost.usage`), each with its reason, and
the measured ones come from ``docs/benchmarks.md``. Nothing here calls AWS:
``--from-cloudwatch`` (:mod:`serverless_mlops.cost.cloudwatch`) only replaces the request count and the duration with
a deployed function's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from serverless_mlops.cost.prices import PriceTable
from serverless_mlops.cost.usage import FULL_VCPU_MB, HOURS_A_MONTH, SECONDS_A_MONTH, Usage


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    unit: str
    usd: float
    basis: str


@dataclass(frozen=True)
class Estimate:
    usage: Usage
    lines: list[Line]

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)


@dataclass(frozen=True)
class Summary:
    """A month's total, what it costs with no request at all (keys, alarms, the dashboard, scheduled drift and quality
    checks and their metrics, provisioned environments), and what one more million requests add to it."""

    total: float
    at_rest: float
    per_million: float


def summarize(usage: Usage, prices: PriceTable) -> Summary:
    """:class:`Summary` of ``usage``: the estimate, the same month with no requests, and with a million more."""
    total = estimate(usage, prices).total
    idle = estimate(replace(usage, requests=0), prices).total
    more = estimate(replace(usage, requests=usage.requests + 1e6), prices).total
    return Summary(total, idle, more - total)


def billed_ms(duration_ms: float) -> int:
    """Lambda bills duration rounded up to the next millisecond."""
    return max(1, math.ceil(duration_ms - 1e-9))


def estimate(usage: Usage, prices: PriceTable) -> Estimate:
    """The month of ``usage`` at ``prices``, line by line."""
    u = usage.checked()
    arch = u.architecture
    gb = u.memory_mb / 1024
    lines: list[Line] = []

    def add(service: str, item: str, quantity: float, unit: str, price: str, basis: str) -> None:
        lines.append(Line(service, item, quantity, unit, prices[price].of(quantity), basis))

    # -- the request path -------------------------------------------------------------------------------------------
    add("Lambda", "inference requests", u.requests, "requests", "lambda_requests", "one invocation a request")
    billed = billed_ms(u.request_ms)
    gb_seconds = u.requests * billed / 1000 * gb
    compute_price = f"lambda_provisioned_duration_gb_second_{arch}" if u.provisioned else f"lambda_gb_second_{arch}"
    add(
        "Lambda",
        f"inference compute ({arch}, {u.memory_mb} MB)",
        gb_seconds,
        "GB-s",
        compute_price,
        f"{u.request_ms:.3f} ms a request, billed {billed} ms, x {gb:g} GB",
    )
    if u.provisioned:
        provisioned = u.provisioned * gb * SECONDS_A_MONTH
        add(
            "Lambda",
            "provisioned concurrency",
            provisioned,
            "GB-s",
            f"lambda_provisioned_gb_second_{arch}",
            f"{u.provisioned} environments all month",
        )
    if u.snap_start:
        # one published version cached all month; each restore is billed by the memory it restores
        add(
            "Lambda",
            "SnapStart cache",
            gb * SECONDS_A_MONTH,
            "GB-s",
            "lambda_snapstart_cache_gb_second",
            "the live version's snapshot, all month",
        )
        add(
            "Lambda",
            "SnapStart restores",
            u.cold_starts * gb,
            "GB",
            "lambda_snapstart_restore_gb",
            f"{u.cold_starts:g} restores x {gb:g} GB",
        )
    add("API Gateway", "HTTP API requests", u.requests, "requests", "http_api_requests", "one API call a request (under 512 KB)")

    # -- drift checks, retraining and batch scoring ------------------------------------------------------------------
    drift_gb_s = u.drift_checks * u.models * billed_ms(u.drift_duration_ms) / 1000 * u.drift_memory_mb / 1024
    add(
        "Lambda",
        "drift checks",
        u.drift_checks * u.models,
        "requests",
        "lambda_requests",
        f"{u.drift_checks:g} checks a model (its schedule)",
    )
    add(
        "Lambda",
        "drift check compute",
        drift_gb_s,
        "GB-s",
        f"lambda_gb_second_{arch}",
        f"{u.drift_duration_ms:g} ms at {u.drift_memory_mb} MB each",
    )
    quality_gb_s = u.quality_checks * u.models * billed_ms(u.quality_duration_ms) / 1000 * u.quality_memory_mb / 1024
    add(
        "Lambda",
        "quality checks",
        u.quality_checks * u.models,
        "requests",
        "lambda_requests",
        f"{u.quality_checks:g} checks a model (quality.schedule, else the drift check's)",
    )
    add(
        "Lambda",
        "quality check compute",
        quality_gb_s,
        "GB-s",
        f"lambda_gb_second_{arch}",
        f"{u.quality_duration_ms:g} ms at {u.quality_memory_mb} MB each",
    )
    transitions = u.retrainings * u.retraining_transitions
    add(
        "Step Functions",
        "retraining transitions",
        transitions,
        "transitions",
        "stepfunctions_standard_transitions",
        f"{u.retrainings:g} runs x {u.retraining_transitions}",
    )
    train_gb_s = u.retrainings * u.training_seconds * u.training_memory_mb / 1024
    add(
        "Lambda",
        "training compute",
        train_gb_s,
        "GB-s",
        f"lambda_gb_second_{arch}",
        f"{u.training_seconds:g} s at {u.training_memory_mb} MB a run",
    )
    shards = math.ceil(u.batch_rows / u.batch_shard_rows) if u.batch_rows else 0
    add(
        "Step Functions",
        "batch scoring transitions",
        shards * u.batch_transitions_per_shard,
        "transitions",
        "stepfunctions_standard_transitions",
        f"{shards} shards of {u.batch_shard_rows:,} rows x {u.batch_transitions_per_shard}",
    )
    batch_gb_s = u.batch_rows / u.batch_rows_per_second * u.memory_mb / 1024 * max(1.0, FULL_VCPU_MB / u.memory_mb)
    add("Lambda", "batch scoring compute", batch_gb_s, "GB-s", f"lambda_gb_second_{arch}", f"{u.batch_rows_per_second:,.0f} rows/s a core")

    # -- CloudWatch -------------------------------------------------------------------------------------------------
    served = min(1.0, u.requests / HOURS_A_MONTH)  # a metric costs the hours it is published in
    checked = min(1.0, u.drift_checks / HOURS_A_MONTH)
    quality_checked = min(1.0, u.quality_checks / HOURS_A_MONTH)
    retrained = min(1.0, u.retrainings / HOURS_A_MONTH)
    metrics = (
        u.models * 3 * served  # Rows, ModelVersion, Latency by model
        + u.error_codes * served  # Errors by code
        + u.models * (3 + u.features) * checked  # RowsChecked, DatasetDrift, DriftedShare, DriftScore by feature
        + u.models * u.quality_metrics * quality_checked  # RealizedMetric, EstimatedMetric, LabelCoverage, LabelledRows
        + u.models * u.retraining_steps * retrained  # RetrainingStepsCompleted by model and step
    )
    add(
        "CloudWatch",
        "custom metrics",
        metrics,
        "metric-months",
        "cloudwatch_custom_metric_month",
        "prorated by the hours each is published in",
    )
    log_gb = u.requests * (u.log_bytes_per_request + u.system_log_bytes_per_request) / 1e9
    add(
        "CloudWatch",
        "logs ingested",
        log_gb,
        "GB",
        "cloudwatch_logs_ingestion_gb",
        f"{u.log_bytes_per_request + u.system_log_bytes_per_request} B a request",
    )
    stored_logs = log_gb * u.log_retention_days / 30
    add(
        "CloudWatch",
        "logs stored",
        stored_logs,
        "GB-months",
        "cloudwatch_logs_storage_gb_month",
        f"{u.log_retention_days} days kept, uncompressed (an upper bound)",
    )
    alarms = u.stack_alarms + u.alarms_per_model * u.models + u.quality_alarms
    add(
        "CloudWatch",
        "alarms",
        alarms,
        "alarms",
        "cloudwatch_alarm_month",
        f"the stack's {u.stack_alarms}, {u.alarms_per_model} a model and {u.quality_alarms} on quality floors",
    )
    add(
        "CloudWatch",
        "dashboards",
        u.dashboards,
        "dashboards",
        "cloudwatch_dashboard_month",
        "the stack's dashboard (free within an account's first 3)",
    )

    # -- S3, KMS and DynamoDB -----------------------------------------------------------------------------------------
    captured = u.requests * u.rows_per_request * u.capture_sample
    environments = max(1.0, u.requests / SECONDS_A_MONTH * u.request_ms / 1000) if u.requests else 0.0
    flushes = max(captured / u.capture_flush_rows, min(u.requests, environments * SECONDS_A_MONTH / u.capture_flush_seconds))
    writes = 2 * flushes  # a flush writes the capture object, then its predictions object (the quality check's input)
    add(
        "S3",
        "capture writes",
        writes,
        "PUTs",
        "s3_put_requests",
        f"2 objects (rows, predictions) a buffer of {u.capture_flush_rows} rows or {u.capture_flush_seconds:g} s",
    )
    interval_hours = HOURS_A_MONTH / u.drift_checks if u.drift_checks else math.inf
    reads = flushes * max(1.0, u.drift_window_hours / interval_hours) if u.drift_checks else 0.0
    add("S3", "drift check reads", reads, "GETs", "s3_get_requests", "each captured object once per window that covers it")
    quality_interval_hours = HOURS_A_MONTH / u.quality_checks if u.quality_checks else math.inf
    quality_reads = flushes * max(1.0, u.quality_window_hours / quality_interval_hours) if u.quality_checks else 0.0
    add(
        "S3",
        "quality check reads",
        quality_reads,
        "GETs",
        "s3_get_requests",
        "each predictions object once per window that covers it (labels files not counted: a few a day)",
    )
    stored = captured * (u.capture_bytes_per_row + u.prediction_bytes_per_row) / 1e9 * u.capture_retention_days / 30
    add(
        "S3",
        "captured data stored",
        stored,
        "GB-months",
        "s3_standard_gb_month",
        f"{u.capture_bytes_per_row} + {u.prediction_bytes_per_row} B (its predictions object) a row, kept {u.capture_retention_days} days",
    )
    add(
        "KMS",
        "requests",
        writes + reads + quality_reads,
        "requests",
        "kms_requests",
        "a data key a PUT, a decrypt a GET (no S3 Bucket Key)",
    )
    add("KMS", "keys", u.kms_keys, "keys", "kms_key_month", "the stack's customer-managed keys")
    alias_reads = min(u.requests, environments * SECONDS_A_MONTH / u.refresh_seconds)
    add(
        "DynamoDB",
        "alias reads",
        alias_reads,
        "read units",
        "dynamodb_read_request_units",
        f"a GetItem each {u.refresh_seconds:g} s a warm environment",
    )
    return Estimate(u, lines)


def with_overrides(usage: Usage, **changes: object) -> Usage:
    """``usage`` with some fields changed (None leaves a field as it is)."""
    return replace(usage, **{name: value for name, value in changes.items() if value is not None})  # type: ignore[arg-type]


def alternatives(usage: Usage, prices: PriceTable, *, payload_bytes: int = 1000) -> list[Line]:
    """The same month on SageMaker: Serverless Inference (memory in 1 GB steps from 1 GB, the same handler time,
    ``payload_bytes`` in and out a request) and an always-on real-time endpoint of one instance (two for
    availability across zones double it)."""
    u = usage.checked()
    gb = min(6, max(1, math.ceil(u.memory_mb / 1024)))
    serverless_gb_s = u.requests * billed_ms(u.request_ms) / 1000 * gb
    processed = u.requests * 2 * payload_bytes / 1e9
    return [
        Line(
            "SageMaker",
            f"Serverless Inference compute ({gb} GB)",
            serverless_gb_s,
            "GB-s",
            prices["sagemaker_serverless_gb_second"].of(serverless_gb_s),
            "the same handler time, no request fee",
        ),
        Line(
            "SageMaker",
            "Serverless Inference data",
            processed,
            "GB",
            prices["sagemaker_data_processed_gb"].of(processed),
            f"{payload_bytes} B in and out a request",
        ),
        Line(
            "SageMaker",
            "real-time endpoint, 1 x ml.t2.medium",
            HOURS_A_MONTH,
            "instance-hours",
            prices["sagemaker_realtime_ml_t2_medium_hour"].of(HOURS_A_MONTH),
            "always on",
        ),
        Line(
            "SageMaker",
            "real-time endpoint, 1 x ml.m5.large",
            HOURS_A_MONTH,
            "instance-hours",
            prices["sagemaker_realtime_ml_m5_large_hour"].of(HOURS_A_MONTH),
            "always on",
        ),
    ]


def break_even_requests(per_million: float, at_rest: float, fixed_month: float) -> float | None:
    """Requests a month at which a deployment billed ``per_million`` a million requests plus ``at_rest`` costs as much
    as ``fixed_month`` (an always-on endpoint); None if it never does."""
    if per_million <= 0 or fixed_month <= at_rest:
        return None
    return (fixed_month - at_rest) / per_million * 1e6
