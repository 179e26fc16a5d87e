"""``mlops cost estimate``: the table and JSON from the benchmark's handler time, and ``--from-cloudwatch`` reading a
function's Invocations and Duration from moto's CloudWatch (what PutMetricData stored, GetMetricData returns)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_mlops.cli import main
from serverless_mlops.cost.cloudwatch import observe
from serverless_mlops.cost.usage import CostError
from tests.helpers.specs import ROOT

WINE = str(ROOT / "models" / "wine.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def deploy_function(name: str, memory: int, architecture: str) -> None:
    iam = boto3.client("iam")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    boto3.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": package.getvalue()},
        MemorySize=memory,
        Architectures=[architecture],
    )


def put_days(function: str, now: datetime, days: list[tuple[int, float, list[float]]]) -> None:
    """For each (days ago, invocations, durations): the Invocations sum and each Duration sample of that day."""
    cloudwatch = boto3.client("cloudwatch")
    for ago, invocations, durations in days:
        when = now - timedelta(days=ago, hours=1)
        dimensions = [{"Name": "FunctionName", "Value": function}]
        data: list[dict[str, Any]] = [
            {"MetricName": "Invocations", "Dimensions": dimensions, "Timestamp": when, "Value": invocations, "Unit": "Count"}
        ]
        data += [
            {"MetricName": "Duration", "Dimensions": dimensions, "Timestamp": when, "Value": d, "Unit": "Milliseconds"} for d in durations
        ]
        cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)
    # another function's metrics must not count
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [{"Name": "FunctionName", "Value": "other"}],
                "Timestamp": now - timedelta(days=1),
                "Value": 1e9,
            }
        ],
    )


def test_estimate_prints_the_bill_and_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from serverless_mlops.cli.common import console

    # one table row a line: the CLI's console is made at import, so COLUMNS set now would come too late in a worker
    # that imported the CLI for an earlier test
    monkeypatch.setattr(console, "width", 250)
    code, out, err = run(capsys, "cost", "estimate", WINE, "--requests", "1M/month", "--memory", "512", "--arch", "arm64")
    assert code == 0, err
    assert "wine: 1,000,000 requests a month of 1 row(s), 512 MB arm64" in out
    for item in ("inference requests", "HTTP API", "custom metrics", "capture writes", "alias reads", "ml.m5.large"):
        assert item in out
    assert "each further million requests" in out

    monkeypatch.chdir(ROOT)  # MODEL by name: models/wine.yaml
    code, out, err = run(
        capsys, "--json", "cost", "estimate", "wine", "--requests", "30/s", "--rows-per-request", "32", "--retrainings", "4"
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["usage"]["requests"] == pytest.approx(30 * 730 * 3600)
    # a 100-tree forest: 0.47 ms for 32 rows on a core, at 1,024 MB (0.58 of a vCPU) 0.81 ms, billed 1 ms
    assert document["usage"]["duration_ms"] == pytest.approx(0.47 * 1769 / 1024)
    lines = {line["item"]: line for line in document["lines"]}
    assert lines["inference compute (x86_64, 1024 MB)"]["quantity"] == pytest.approx(30 * 730 * 3600 * 0.001)
    assert lines["retraining transitions"]["quantity"] == 4 * 12
    assert lines["drift checks"]["quantity"] == pytest.approx(730 / 6)  # wine's drift schedule: rate(6 hours)
    # every deployed model's quality check: wine sets no quality.schedule, so the drift check's, over a 7-day window
    assert lines["quality checks"]["quantity"] == pytest.approx(730 / 6)
    assert lines["quality check compute"]["quantity"] == pytest.approx(730 / 6 * 2.0 * 2)  # 2,000 ms at 2,048 MB
    flushes = lines["capture writes"]["quantity"] / 2
    assert lines["quality check reads"]["quantity"] == pytest.approx(flushes * 7 * 24 / 6)  # 28 checks cover an object
    assert document["total_usd"] == pytest.approx(sum(line["usd"] for line in document["lines"]))
    assert 0 < document["at_rest_usd"] < document["total_usd"]


def test_from_cloudwatch_uses_the_functions_invocations_and_duration(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    deploy_function("mlops-inference", 2048, "arm64")
    # 10 days with traffic in the last 30: 3,000,000 invocations; Duration samples 2, 4 and 6 ms (mean 4)
    put_days("mlops-inference", now, [(day, 300_000, [2.0, 4.0, 6.0]) for day in range(10)])
    put_days("mlops-inference", now, [(45, 9e9, [900.0])])  # older than the window: not counted

    seen = observe("mlops-inference", cloudwatch=boto3.client("cloudwatch"), lambda_=boto3.client("lambda"), days=30, now=now)
    assert (seen.invocations, seen.duration_ms, seen.memory_mb, seen.architecture) == (3_000_000, 4.0, 2048, "arm64")
    assert seen.requests_a_month == pytest.approx(3_000_000 / 30 * 730 / 24)

    code, out, err = run(capsys, "--json", "cost", "estimate", WINE, "--from-cloudwatch", "--function", "mlops-inference")
    assert code == 0, err
    document = json.loads(out)
    assert document["usage"] == {
        "requests": pytest.approx(3_000_000 / 30 * 730 / 24),
        "memory_mb": 2048,
        "architecture": "arm64",
        "duration_ms": 4.0,
    }
    lines = {line["item"]: line for line in document["lines"]}
    assert lines["inference compute (arm64, 2048 MB)"]["quantity"] == pytest.approx(3_000_000 / 30 * 730 / 24 * 0.004 * 2)
    assert document["duration_from"].startswith("CloudWatch: 3,000,000 invocations and a mean Duration of 4.00 ms over 30 days")

    # --memory and --arch still override what the function has
    code, out, err = run(
        capsys,
        "--json",
        "cost",
        "estimate",
        WINE,
        "--from-cloudwatch",
        "--function",
        "mlops-inference",
        "--memory",
        "1024",
        "--arch",
        "x86_64",
    )
    assert code == 0, err
    assert json.loads(out)["usage"]["memory_mb"] == 1024


def test_from_cloudwatch_errors_are_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cost", "estimate", WINE, "--from-cloudwatch")
    assert (code, err.strip()) == (
        1,
        "error: --from-cloudwatch needs --function NAME: the deployed inference function (the stack's Inference…Function)",
    )
    code, _, err = run(capsys, "cost", "estimate", WINE, "--from-cloudwatch", "--function", "missing")
    assert code == 1
    assert err.startswith("error: --function missing: ")
    assert "Traceback" not in err
    deploy_function("idle", 1024, "x86_64")
    code, _, err = run(capsys, "cost", "estimate", WINE, "--from-cloudwatch", "--function", "idle", "--days", "7")
    assert (code, err.strip()) == (1, "error: --from-cloudwatch: function idle has no Duration data points in the last 7 days")
    with pytest.raises(CostError, match="--days: 0; at least 1"):
        observe("idle", cloudwatch=boto3.client("cloudwatch"), lambda_=boto3.client("lambda"), days=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: model 'nope': no spec file nope and no models/nope.yaml; pass a spec file"),
        ([WINE, "--requests", "lots"], "error: --requests 'lots': expected a count and a period such as 1M/month"),
        ([WINE, "--requests", "5/fortnight"], "error: --requests '5/fortnight': expected a count"),
        ([WINE, "--memory", "64"], "error: --memory: 64 MB; Lambda allows 128 to 10,240"),
        ([WINE, "--rows-per-request", "0"], "error: --rows-per-request: 0; at least 1"),
        ([WINE, "--provisioned", "-1"], "error: --provisioned: -1; must not be negative"),
        ([WINE, "--retrainings", "-2"], "error: --retrainings: -2.0; must not be negative"),
        ([WINE, "--prices", "/nonexistent/prices.yaml"], "error: /nonexistent/prices.yaml: price table not found"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run(capsys, "cost", "estimate", *args)
    assert code == 1
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1
