"""A monthly bill, line by line, for one deployed model: usage (:class:`Usage`) times the price table
(:mod:`serverless_mlops.cost.prices`).

What each line counts, and what it assumes, is in its ``basis``; the assumptions are the :class:`Usage` defaults, each
with its reason, and the measured ones come from ``docs/benchmarks.md`` (:data:`HANDLER_MS`). Nothing here calls AWS:
``--from-cloudwatch`` (:mod:`serverless_mlops.cost.cloudwatch`) only replaces the request count and the duration with
a deployed function's own.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from typing import Literal

from serverless_mlops.cost.prices import PriceTable
from serverless_mlops.errors import MlopsError

Architecture = Literal["x86_64", "arm64"]
HOURS_A_MONTH = 730.0  # AWS's pricing pages' month
SECONDS_A_MONTH = HOURS_A_MONTH * 3600
# Lambda gives a function one full vCPU at 1,769 MB and CPU in proportion to memory below that
FULL_VCPU_MB = 1769
# The inference handler's warm time per request on one core (docs/benchmarks.md, "handler throughput": the median
# of a request through functions.inference.app.lambda_handler, powertools stack included), by rows per request:
# LogisticRegression for linear models, a 100-tree RandomForest (depth 10) for tree ensembles.
HANDLER_MS: dict[str, dict[int, float]] = {
    "linear": {1: 0.16, 32: 0.28, 1000: 15.49},
    "trees": {1: 0.17, 32: 0.47, 1000: 21.15},
}
TREE_ESTIMATORS = re.compile(r"(Forest|Tree|Boosting)")


class CostError(MlopsError):
    """An estimate cannot be made from what was given; the message names the option."""


def handler_ms(estimator: str, rows: int) -> float:
    """The measured handler time for ``rows`` rows a request of ``estimator`` (a scikit-learn class path), one core:
    linear between the measured row counts, and along the last segment beyond them."""
    if rows < 1:
        raise CostError(f"--rows-per-request: {rows}; at least 1")
    points = sorted(HANDLER_MS["trees" if TREE_ESTIMATORS.search(estimator) else "linear"].items())
    segments = list(itertools.pairwise(points))
    (rows_a, ms_a), (rows_b, ms_b) = next((pair for pair in segments if rows <= pair[1][0]), segments[-1])
    return ms_a + (ms_b - ms_a) * (rows - rows_a) / (rows_b - rows_a)


def lambda_duration_ms(one_core_ms: float, memory_mb: int) -> float:
    """What Lambda would measure for work that takes ``one_core_ms`` on a full core, at ``memory_mb``."""
    return one_core_ms * max(1.0, FULL_VCPU_MB / memory_mb)


def runs_a_month(schedule: str) -> float:
    """How often an EventBridge schedule (``rate(6 hours)``, ``cron(0 3 ? * MON *)``) fires in a 730-hour month."""
    text = schedule.strip()
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", text)
    if rate:
        unit_hours = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}[rate.group(2).rstrip("s")]
        return HOURS_A_MONTH / (int(rate.group(1)) * unit_hours)
    cron = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+)(?: (\S+))?\)", text)
    if not cron:
        raise CostError(f"schedule {schedule!r}: expected rate(N minutes|hours|days) or cron(...)")
    minutes, hours, day_of_month, month, day_of_week = (cron.group(i) for i in range(1, 6))
    a_day = _field_count(minutes, 60) * _field_count(hours, 24)
    days = HOURS_A_MONTH / 24
    if day_of_week not in ("*", "?"):
        days = _field_count(day_of_week, 7) * days / 7
    elif day_of_month not in ("*", "?"):
        days = _field_count(day_of_month, 31) * days / 30.4
    if month not in ("*", "?"):
        days *= _field_count(month, 12) / 12
    return a_day * days


def _field_count(text: str, size: int) -> int:
    """How many values one cron field takes: ``*``, ``5``, ``1,15``, ``MON-FRI``, ``0/6``, ``*/10``."""
    count = 0
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            span = size
        elif "-" in base:
            first, last = base.split("-", 1)
            span = (_value(last) - _value(first)) % size + 1 if not (first.isdigit() and last.isdigit()) else int(last) - int(first) + 1
        else:
            span = size - _value(base) if step else 1
        count += math.ceil(span / int(step)) if step else span
    return max(1, min(count, size))


_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def _value(text: str) -> int:
    return int(text) if text.isdigit() else _DAYS.get(text.upper(), 0)


@dataclass(frozen=True)
class Usage:
    """One model's month. Defaults are the assumptions ``mlops cost estimate`` makes; docs/cost.md gives each reason."""

    requests: float
    estimator: str  # the spec's scikit-learn class: picks the measured handler time
    features: int
    rows_per_request: int = 1
    memory_mb: int = 1024
    architecture: Architecture = "x86_64"
    # per request as Lambda measures it; None = the benchmark's handler time at this memory (lambda_duration_ms)
    duration_ms: float | None = None
    drift_checks: float = 30.0  # a month (the spec's schedule: runs_a_month)
    drift_window_hours: float = 24.0
    drift_duration_ms: float = 1500.0  # a drift check of a day's window: reads its objects and tests each feature
    drift_memory_mb: int = 1024
    retrainings: float = 0.0  # executions of the retraining workflow a month
    # a promoted run with approval: the start and 11 states (infra/retraining.py: Prepare, Train, Evaluate, Gate, Register,
    # NeedsApproval, WaitForApproval, Approved, Promote, NotifyPromoted, Promoted); 10 without approval, more with retries
    retraining_transitions: int = 12
    training_seconds: float = 3.0  # PrepareData + Train + Evaluate at the train function's memory
    training_memory_mb: int = 3008
    batch_rows: float = 0.0  # rows scored by batch jobs a month
    batch_shard_rows: int = 1_000_000  # rows a Distributed Map child scores
    batch_transitions_per_shard: int = 4  # the child execution's states, entered and left
    batch_rows_per_second: float = 100_000.0  # a Score child's rows a second on one core (issue 20's goal)
    capture_sample: float = 1.0
    capture_bytes_per_row: int = 400  # a captured row: its features, prediction, model version, request id, time (JSON)
    # the same row in the flush's predictions object (serverless_mlops/store/prediction_columns.py): its id (a request id
    # and the row's index, ~40 B), prediction and a binary classifier's two probabilities, as JSON columns
    prediction_bytes_per_row: int = 70
    capture_retention_days: int = 90
    capture_flush_rows: int = 1000  # MLOPS_CAPTURE_MAX_ROWS: a buffer is written once it holds this many rows …
    capture_flush_seconds: float = 60.0  # … or its oldest row is this old (MLOPS_CAPTURE_MAX_SECONDS)
    refresh_seconds: float = 30.0  # each warm environment re-reads its alias this often (one GetItem)
    # measured: the handler's EMF metric record for a one-row request (360 B) + the HTTP API's access-log line (423 B
    # with an IAM caller, infra/inference.py ACCESS_LOG_FORMAT); the handler logs nothing else per request at INFO
    log_bytes_per_request: int = 800
    system_log_bytes_per_request: int = 0  # START/END/REPORT (~300 B) when the system log level is INFO, 0 at WARN
    log_retention_days: int = 30
    # what the stack creates, counted in its synthesized template by tests/infra/test_tuning.py
    kms_keys: int = 3  # customer-managed keys: artifacts, alerts, logs
    stack_alarms: int = 16  # the API's 4, the retraining workflow's 3 and its functions' 4, the release workflow's 5
    alarms_per_model: int = 1  # the model's drift alarm
    quality_alarms: int = 0  # one per floor in the specs' quality.floors (infra/quality.py)
    dashboards: int = 1
    models: int = 1  # deployed models that share the at-rest lines
    provisioned: int = 0  # provisioned environments on the live alias, all month
    snap_start: bool = False
    cold_starts: float = 0.0  # restores a month, with snap_start
    error_codes: int = 3  # distinct error codes that reach the Errors metric in a month
    retraining_steps: int = 7  # distinct steps counted by RetrainingStepsCompleted

    def checked(self) -> Usage:
        problems = [
            f"--{name}: {value}; must not be negative"
            for name, value in (
                ("requests", self.requests),
                ("retrainings", self.retrainings),
                ("batch-rows", self.batch_rows),
                ("provisioned", self.provisioned),
            )
            if value < 0
        ]
        if not 128 <= self.memory_mb <= 10240:
            problems.append(f"--memory: {self.memory_mb} MB; Lambda allows 128 to 10,240")
        if self.rows_per_request < 1:
            problems.append(f"--rows-per-request: {self.rows_per_request}; at least 1")
        if self.duration_ms is not None and self.duration_ms < 0:
            problems.append(f"duration: {self.duration_ms} ms; must not be negative")
        if problems:
            raise CostError("; ".join(problems))
        return self

    @property
    def request_ms(self) -> float:
        if self.duration_ms is not None:
            return self.duration_ms
        return lambda_duration_ms(handler_ms(self.estimator, self.rows_per_request), self.memory_mb)


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
    """A month's total, what it costs with no request at all (keys, alarms, the dashboard, scheduled drift checks and
    their metrics, provisioned environments), and what one more million requests add to it."""

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
    retrained = min(1.0, u.retrainings / HOURS_A_MONTH)
    metrics = (
        u.models * 3 * served  # Rows, ModelVersion, Latency by model
        + u.error_codes * served  # Errors by code
        + u.models * (3 + u.features) * checked  # RowsChecked, DatasetDrift, DriftedShare, DriftScore by feature
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
    stored = captured * (u.capture_bytes_per_row + u.prediction_bytes_per_row) / 1e9 * u.capture_retention_days / 30
    add(
        "S3",
        "captured data stored",
        stored,
        "GB-months",
        "s3_standard_gb_month",
        f"{u.capture_bytes_per_row} + {u.prediction_bytes_per_row} B (its predictions object) a row, kept {u.capture_retention_days} days",
    )
    add("KMS", "requests", writes + reads, "requests", "kms_requests", "a data key a PUT, a decrypt a GET (no S3 Bucket Key)")
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
