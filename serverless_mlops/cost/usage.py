"""What a model's month is made of, before any price: :class:`Usage` (requests, their measured handler time, the
schedules of the checks, what the stack creates), with every default an assumption ``mlops cost estimate`` makes and
its reason beside it; the handler times measured by ``docs/benchmarks.md`` (:data:`HANDLER_MS`); how often an
EventBridge schedule fires in a month (:func:`runs_a_month`). :mod:`serverless_mlops.cost.estimate` prices it."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Literal

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
    # the quality check (infra/quality.py: every deployed model, on quality.schedule, else the drift check's)
    quality_checks: float = 30.0  # a month (runs_a_month of that schedule)
    quality_window_hours: float = 168.0  # quality.window (7d): each predictions object is read by every check it falls in
    # a check of a week's window: the predictions objects and labels read, joined, realized metrics and CBPE (the local
    # benchmark: 1.4 s of one core for 1,000,000 predictions and 100,000 labels, docs/benchmarks.md; not measured on Lambda)
    quality_duration_ms: float = 2000.0
    quality_memory_mb: int = 2048  # infra/deployment.yaml quality.memory_mb
    # series one check publishes for a model with one version (functions/quality_check): a classifier's 5 realized and 3
    # estimated metrics and a regressor's 4 realized, each by (model, version, metric) and (model, metric), and
    # LabelCoverage and LabelledRows by (model, version) and (model)
    quality_metrics: int = 20
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
