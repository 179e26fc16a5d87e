"""The cost estimate: every line equals a hand computation for a fixed price table; the schedule, duration and price
table readers; the committed table carries a date and a source for each price."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import yaml

from serverless_mlops.cost.estimate import alternatives, billed_ms, break_even_requests, estimate, summarize
from serverless_mlops.cost.prices import PRICES, REQUIRED, PriceTable, PriceTableError, load_prices
from serverless_mlops.cost.usage import CostError, Usage, handler_ms, lambda_duration_ms, runs_a_month

# A fixed table: the test's own prices, so a change to the committed one does not move the hand computation
FIXED = {
    "lambda_requests": (0.20, 1e6),
    "lambda_gb_second_x86_64": (0.00002, 1),
    "lambda_gb_second_arm64": (0.00001, 1),
    "lambda_provisioned_gb_second_x86_64": (0.000004, 1),
    "lambda_provisioned_gb_second_arm64": (0.000003, 1),
    "lambda_provisioned_duration_gb_second_x86_64": (0.00001, 1),
    "lambda_provisioned_duration_gb_second_arm64": (0.000008, 1),
    "lambda_snapstart_cache_gb_second": (0.000001, 1),
    "lambda_snapstart_restore_gb": (0.0001, 1),
    "http_api_requests": (1.00, 1e6),
    "stepfunctions_standard_transitions": (0.025, 1000),
    "cloudwatch_custom_metric_month": (0.30, 1),
    "cloudwatch_alarm_month": (0.10, 1),
    "cloudwatch_dashboard_month": (3.00, 1),
    "cloudwatch_logs_ingestion_gb": (0.50, 1),
    "cloudwatch_logs_storage_gb_month": (0.03, 1),
    "s3_standard_gb_month": (0.023, 1),
    "s3_put_requests": (0.005, 1000),
    "s3_get_requests": (0.0004, 1000),
    "kms_key_month": (1.00, 1),
    "kms_requests": (0.03, 10000),
    "dynamodb_read_request_units": (0.125, 1e6),
    "dynamodb_write_request_units": (0.625, 1e6),
    "dynamodb_storage_gb_month": (0.25, 1),
    "sagemaker_serverless_gb_second": (0.00002, 1),
    "sagemaker_data_processed_gb": (0.016, 1),
    "sagemaker_realtime_ml_t2_medium_hour": (0.056, 1),
    "sagemaker_realtime_ml_m5_large_hour": (0.115, 1),
}


def table_document(prices: dict[str, tuple[float, float]] = FIXED) -> dict[str, object]:
    return {
        "region": "us-east-1",
        "prices": {
            name: {"usd": usd, "per": per, "unit": "unit", "as_of": "2025-01-01", "source": "https://aws.amazon.com/pricing/"}
            for name, (usd, per) in prices.items()
        },
    }


@pytest.fixture
def fixed(tmp_path: Path) -> PriceTable:
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(table_document()), encoding="utf-8")
    return load_prices(path)


USAGE = Usage(
    requests=2_000_000,
    estimator="sklearn.ensemble.RandomForestClassifier",
    features=13,
    memory_mb=2048,
    architecture="arm64",
    duration_ms=2.3,  # billed 3 ms
    drift_checks=30,
    drift_window_hours=24,
    drift_duration_ms=1000,
    retrainings=4,
    training_seconds=3,
    training_memory_mb=3072,
    batch_rows=2_500_000,  # 3 shards of 1,000,000
    capture_sample=0.5,
)


def test_each_line_equals_the_hand_computation(fixed: PriceTable) -> None:
    lines = {line.item: line for line in estimate(USAGE, fixed).lines}
    by_hand = {
        "inference requests": 2e6 * 0.20 / 1e6,  # 0.40
        "inference compute (arm64, 2048 MB)": 2e6 * 0.003 * 2 * 0.00001,  # 12,000 GB-s: 0.12
        "HTTP API requests": 2e6 * 1.00 / 1e6,  # 2.00
        "drift checks": 30 * 0.20 / 1e6,
        "drift check compute": 30 * 1.0 * 1 * 0.00001,  # 30 GB-s
        "quality checks": 30 * 0.20 / 1e6,  # the default: the drift check's schedule
        "quality check compute": 30 * 2.0 * 2 * 0.00001,  # 2,000 ms at 2,048 MB: 120 GB-s
        "retraining transitions": 4 * 12 * 0.025 / 1000,
        "training compute": 4 * 3 * 3 * 0.00001,  # 36 GB-s
        "batch scoring transitions": 3 * 4 * 0.025 / 1000,
        "batch scoring compute": 25 * 2 * 0.00001,  # 2,500,000 rows at 100,000 rows/s, 2 GB (over a full vCPU)
        # Rows, ModelVersion, Latency + 3 error codes all month; 3 drift metrics + 13 feature scores in 30 of 730 hours;
        # 7 step counts in 4 of 730 hours; 20 quality series in 30 of 730 hours
        "custom metrics": (3 + 3 + 16 * 30 / 730 + 7 * 4 / 730 + 20 * 30 / 730) * 0.30,
        "logs ingested": 2e6 * 800 / 1e9 * 0.50,  # 1.6 GB
        "logs stored": 1.6 * 30 / 30 * 0.03,
        "alarms": (16 + 1) * 0.10,  # the stack's 16 and the model's drift alarm
        "dashboards": 1 * 3.00,
        # one warm environment (2e6 requests of 2.3 ms in 2,628,000 s): its buffer flushes every 60 s (43,800 times),
        # more often than every 1,000 of its 1,000,000 captured rows
        "capture writes": 2 * 43_800 * 0.005 / 1000,  # the capture object and its predictions object
        "drift check reads": 43_800 * 0.0004 / 1000,  # a 24 h window every 24.3 h reads each object once
        "quality check reads": 43_800 * (168 / (730 / 30)) * 0.0004 / 1000,  # a 7-day window: each object 6.9 times
        "captured data stored": 1e6 * (400 + 70) / 1e9 * 90 / 30 * 0.023,  # 1.41 GB-months: rows and their predictions
        "requests": (2 * 43_800 + 43_800 + 43_800 * 168 / (730 / 30)) * 0.03 / 10000,
        "keys": 3 * 1.00,
        "alias reads": 2_628_000 / 30 * 0.125 / 1e6,  # 87,600 GetItems
    }
    assert sorted(lines) == sorted(by_hand)
    for item, usd in by_hand.items():
        assert lines[item].usd == pytest.approx(usd, rel=1e-9), item
    assert estimate(USAGE, fixed).total == pytest.approx(sum(by_hand.values()), rel=1e-9)


def test_provisioned_concurrency_and_snapstart_lines(fixed: PriceTable) -> None:
    usage = replace(USAGE, architecture="x86_64", memory_mb=1024, provisioned=2, snap_start=True, cold_starts=500)
    lines = {line.item: line for line in estimate(usage, fixed).lines}
    # requests run on provisioned environments at that price; the environments cost all month (730 h)
    assert lines["inference compute (x86_64, 1024 MB)"].usd == pytest.approx(2e6 * 0.003 * 1 * 0.00001)
    assert lines["provisioned concurrency"].usd == pytest.approx(2 * 1 * 730 * 3600 * 0.000004)
    assert lines["SnapStart cache"].usd == pytest.approx(1 * 730 * 3600 * 0.000001)
    assert lines["SnapStart restores"].usd == pytest.approx(500 * 1 * 0.0001)


def test_summary_at_rest_is_the_month_without_requests(fixed: PriceTable) -> None:
    summary = summarize(USAGE, fixed)
    assert summary.total == pytest.approx(estimate(USAGE, fixed).total)
    assert summary.at_rest == pytest.approx(estimate(replace(USAGE, requests=0), fixed).total)
    # a million more requests: Lambda requests and compute, the HTTP API, logs (ingested and kept), captured rows kept;
    # the flush timer, the drift reads and the alias reads stay what one environment does
    per_million = 0.20 + 1e6 * 0.003 * 2 * 0.00001 + 1.00 + 0.8 * 0.50 + 0.8 * 0.03 + 0.5e6 * 470 / 1e9 * 3 * 0.023
    assert summary.per_million == pytest.approx(per_million, rel=1e-9)
    assert 3.0 + 3.0 + 1.2 < summary.at_rest < summary.total


def test_sagemaker_alternatives_and_break_even(fixed: PriceTable) -> None:
    lines = {line.item: line.usd for line in alternatives(USAGE, fixed)}
    assert lines["Serverless Inference compute (2 GB)"] == pytest.approx(2e6 * 0.003 * 2 * 0.00002)
    assert lines["Serverless Inference data"] == pytest.approx(2e6 * 2000 / 1e9 * 0.016)
    assert lines["real-time endpoint, 1 x ml.m5.large"] == pytest.approx(730 * 0.115)
    assert break_even_requests(per_million=2.0, at_rest=10.0, fixed_month=84.0) == pytest.approx(37e6)
    assert break_even_requests(per_million=2.0, at_rest=90.0, fixed_month=84.0) is None
    assert break_even_requests(per_million=0.0, at_rest=1.0, fixed_month=84.0) is None


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        ("rate(6 hours)", 730 / 6),
        ("rate(1 day)", 730 / 24),
        ("rate(30 minutes)", 730 * 2),
        ("cron(0 6 * * ? *)", 730 / 24),
        ("cron(0/15 * * * ? *)", 730 * 4),
        ("cron(0 3 ? * MON *)", 730 / 24 / 7),
        ("cron(0 8 ? * MON-FRI *)", 5 * 730 / 24 / 7),
        ("cron(0 0 1,15 * ? *)", 2 * 730 / 24 / 30.4),
        ("cron(0 0 1 1 ? *)", 730 / 24 / 30.4 / 12),
    ],
)
def test_runs_a_month(schedule: str, runs: float) -> None:
    assert runs_a_month(schedule) == pytest.approx(runs)


def test_a_schedule_that_is_neither_rate_nor_cron() -> None:
    with pytest.raises(CostError, match=r"schedule 'at\(2026-01-01\)': expected rate"):
        runs_a_month("at(2026-01-01)")


def test_handler_time_interpolates_the_benchmark() -> None:
    linear, trees = "sklearn.linear_model.LogisticRegression", "sklearn.ensemble.RandomForestClassifier"
    assert handler_ms(linear, 1) == pytest.approx(0.16)
    assert handler_ms(trees, 1) == pytest.approx(0.17)
    assert handler_ms(linear, 32) == pytest.approx(0.28)
    assert handler_ms(linear, 516) == pytest.approx(0.28 + (15.49 - 0.28) * 484 / 968)
    assert handler_ms(trees, 2000) == pytest.approx(0.47 + (21.15 - 0.47) * 1968 / 968)  # beyond: the last slope
    with pytest.raises(CostError, match="--rows-per-request: 0"):
        handler_ms(linear, 0)
    # below 1,769 MB Lambda gives a share of a vCPU: the same work takes longer
    assert lambda_duration_ms(1.0, 1769) == 1.0
    assert lambda_duration_ms(1.0, 3008) == 1.0
    assert lambda_duration_ms(1.0, 512) == pytest.approx(1769 / 512)
    assert [billed_ms(x) for x in (0.01, 1.0, 1.0001, 2.3)] == [1, 1, 2, 3]


def test_usage_refuses_what_cannot_be(fixed: PriceTable) -> None:
    with pytest.raises(CostError, match=r"--requests: -1; must not be negative; --memory: 64 MB; Lambda allows 128 to 10,240"):
        estimate(replace(USAGE, requests=-1, memory_mb=64), fixed)
    with pytest.raises(CostError, match=r"--rows-per-request: 0; at least 1; duration: -1.0 ms"):
        estimate(replace(USAGE, rows_per_request=0, duration_ms=-1.0), fixed)


def test_the_committed_table_has_every_price_with_a_date_and_a_source() -> None:
    table = load_prices()
    assert set(table.prices) >= REQUIRED
    for name, price in table.prices.items():
        assert price.as_of >= date(2024, 1, 1), name
        assert price.source.startswith("https://aws.amazon.com/"), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["prices"].pop("http_api_requests"), "the estimate needs these prices, which the table lacks: http_api_requests"),
        (lambda d: d["prices"]["kms_key_month"].update(usd=0), "prices.kms_key_month.usd: Input should be greater than 0"),
        (lambda d: d["prices"]["kms_key_month"].update(source="aws pricing"), "prices.kms_key_month.source: String should match"),
        (lambda d: d["prices"]["kms_key_month"].update(as_of="January"), "prices.kms_key_month.as_of: Input should be a valid date"),
        (lambda d: d.pop("region"), "region: Field required"),
    ],
)
def test_a_bad_price_table_names_the_entry(tmp_path: Path, change: object, message: str) -> None:
    document = table_document()
    change(document)  # type: ignore[operator]
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(PriceTableError, match=f"^{path}: .*{message}"):
        load_prices(path)


def test_an_unreadable_price_table(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="price table not found"):
        load_prices(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("prices: [", encoding="utf-8")
    with pytest.raises(PriceTableError, match="cannot read the price table"):
        load_prices(tmp_path / "bad.yaml")
    assert PRICES.is_file()


class _Pages:
    """A CloudWatch client whose GetMetricData answers in two pages, and a Lambda client that knows one function."""

    def __init__(self) -> None:
        self.tokens: list[str | None] = []

    def get_metric_data(self, **request: object) -> dict[str, object]:
        self.tokens.append(request.get("NextToken"))  # type: ignore[arg-type]
        if "NextToken" not in request:
            values = {"invocations": [10.0], "duration": [50.0], "samples": [10.0]}
            return {"MetricDataResults": [{"Id": k, "Values": v} for k, v in values.items()], "NextToken": "page-2"}
        values = {"invocations": [30.0], "duration": [100.0], "samples": [30.0]}
        return {"MetricDataResults": [{"Id": k, "Values": v} for k, v in values.items()]}

    def get_function_configuration(self, FunctionName: str) -> dict[str, object]:
        return {"FunctionName": FunctionName}  # no MemorySize, no Architectures: Lambda's defaults


def test_observe_reads_every_page_and_lambdas_defaults() -> None:
    from datetime import UTC, datetime

    from serverless_mlops.cost.cloudwatch import observe

    pages = _Pages()
    seen = observe("f", cloudwatch=pages, lambda_=pages, days=10, now=datetime(2026, 12, 7, 10, 30, tzinfo=UTC))
    assert pages.tokens == [None, "page-2"]
    assert (seen.invocations, seen.duration_ms, seen.memory_mb, seen.architecture) == (40.0, 150 / 40, 128, "x86_64")
    assert seen.requests_a_month == pytest.approx(40 / 10 * 730 / 24)
