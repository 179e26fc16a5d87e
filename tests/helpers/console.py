"""A registry, bucket and retraining state machine seeded for the console's tests (and ``make screenshots``), the way
``make demo`` leaves the local stack but cheaper: the example models registered and promoted (wine twice, the second
in staging, its production alias moved and rolled back), a day of wine's predictions captured with their labels, one
drift check and one quality check written as reports, and retraining executions named as the workflow names them."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.quality_check.app import onnx_scorer
from serverless_mlops.aws import client
from serverless_mlops.drift.service import run_check
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.quality.labels import Label, write_labels
from serverless_mlops.quality.service import run_quality_check
from serverless_mlops.settings import Settings
from serverless_mlops.store.capture_format import capture_key, encode_records
from serverless_mlops.store.lifecycle import Backends, lineage_of, register_record, register_run
from serverless_mlops.store.registry import STAGING
from tests.helpers.drift_data import fresh_sample, records_for

MADE = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
QUALITY_END = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ROWS = 250
# the retraining workflow's shape in miniature (moto runs it: the mock is started with execute_state_machine)
MACHINE = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Train"},
        "Train": {"Type": "Pass", "Next": "Gate"},
        "Gate": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.outcome", "StringEquals": "rejected", "Next": "Rejected"}],
            "Default": "Promote",
        },
        "Promote": {"Type": "Pass", "End": True},
        "Rejected": {"Type": "Fail", "Error": "GateFailed", "Cause": "the candidate did not beat production"},
    },
}
RUNS = {"wine-drift-20261205T1000Z": "promoted", "wine-manual-20261206T0800Z": "rejected", "diabetes-manual-20261206T0900Z": "promoted"}
MOTO_CONFIG: dict[str, Any] = {"stepfunctions": {"execute_state_machine": True}}


@dataclass(frozen=True)
class Seeded:
    backends: Backends
    state_machine_arn: str
    drift_report: dict[str, str]
    quality_report: dict[str, str]
    executions: list[str]


def seed(backends: Backends, trained_models: dict[str, TrainedModel], settings: Settings, *, description: str | None = None) -> Seeded:
    registry = backends.registry
    for name, trained in trained_models.items():
        record = trained.record
        if name == "wine" and description is not None:
            record = record.model_copy(update={"spec": record.spec | {"description": description}})
            trained_models = trained_models | {"wine": dataclasses.replace(trained, record=record)}
        version = register_run(dataclasses.replace(trained, record=record), backends, by="seed")
        registry.promote(name, version.version, by="seed", reason="first version")
    wine = trained_models["wine"]
    artifact = backends.store.put("wine", wine.onnx_bytes, "model.onnx")
    profile = backends.store.put("wine", wine.profile_bytes, "profile.json.gz")
    second = register_record(
        backends, wine.record, artifact, profile, by="seed", lineage=lineage_of(wine.record, run_id="second-run", trigger="drift")
    )
    registry.promote("wine", second.version, by="seed", reason="retrained")
    registry.rollback("wine", by="seed", reason="back to the previous version")
    registry.set_alias("wine", STAGING, second.version, by="seed", reason="waits for approval")

    frame = fresh_sample("wine", ROWS, seed=7)
    records = records_for(wine, frame, when=MADE)
    for i, row in enumerate(records):
        row["id"] = f"w-{i}"
    store = backends.store
    store.s3.put_object(Bucket=store.bucket, Key=capture_key("wine", MADE, "seed"), Body=encode_records(records))
    write_labels(
        store.s3,
        store.bucket,
        "wine",
        [Label(f"w-{i}", int(t), None) for i, t in enumerate(frame["target"])],
        now=MADE + timedelta(hours=3),
    )
    drift = run_check("wine", backends, start=MADE - timedelta(hours=1), end=MADE + timedelta(hours=1), write=True)
    # two more daily windows for the charts: one like training, one with every feature a standard deviation high
    for day, shift in ((1, 0.0), (2, 1.0)):
        when = MADE + timedelta(days=day)
        later = fresh_sample("wine", ROWS, seed=7 + day)
        features = [c for c in later.columns if c != "target"]
        later[features] = later[features] + shift * later[features].std()
        body = encode_records(records_for(wine, later, when=when))
        store.s3.put_object(Bucket=store.bucket, Key=capture_key("wine", when, "seed"), Body=body)
        run_check("wine", backends, start=when - timedelta(hours=1), end=when + timedelta(hours=1), write=True)
    quality = run_quality_check(
        "wine", backends, end=QUALITY_END, window=timedelta(days=7), scorer=lambda b: onnx_scorer(b, "wine"), write=True
    )
    assert drift.report is not None
    assert quality.report is not None

    sfn = client("stepfunctions", settings)
    role = "arn:aws:iam::123456789012:role/retraining"
    arn = sfn.create_state_machine(name="retraining", definition=json.dumps(MACHINE), roleArn=role)["stateMachineArn"]
    executions = [
        sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"outcome": outcome}))["executionArn"]
        for name, outcome in RUNS.items()
    ]
    deadline = time.monotonic() + 10
    while any(sfn.describe_execution(executionArn=e)["status"] == "RUNNING" for e in executions) and time.monotonic() < deadline:
        time.sleep(0.05)
    return Seeded(backends, arn, drift.report, quality.report, executions)
