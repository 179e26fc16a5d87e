"""What starts the workflow, end to end on the synthesized stack: the drift-check function (invoked through moto's
Lambda API, its environment from the template) finds drift and starts the state machine, whose candidate beats the
weak champion; a scheduled start (the input the template's EventBridge rules send) runs the same way."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd

from serverless_mlops.aws import client
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.retraining import contract as c
from serverless_mlops.store.capture_format import capture_key, encode_records
from tests.helpers.drift_data import fresh_sample, records_for, training_frame
from tests.helpers.specs import example_spec
from tests.helpers.workflow import MODEL, Workflow

DRIFT_HANDLER = "functions.drift_check.app.lambda_handler"
START = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def _drifted(rows: int, seed: int) -> pd.DataFrame:
    frame = fresh_sample(MODEL, rows, seed=seed)
    reference = training_frame(MODEL)
    for column in frame.columns:
        if column != "target":
            frame[column] += reference[column].std()  # every feature a standard deviation off
    return frame


def test_drift_starts_the_workflow_and_the_better_candidate_is_promoted(workflow: Workflow, weak_champion: TrainedModel) -> None:
    # the champion's own spec (stored with its version) says to retrain on drift
    spec = example_spec(MODEL)
    watched = spec.model_copy(update={"drift": spec.drift.model_copy(update={"retrain_on_drift": True, "min_rows": 50})})
    champion = TrainedModel(
        record=weak_champion.record.model_copy(update={"spec": watched.model_dump(mode="json", by_alias=True)}),
        onnx_bytes=weak_champion.onnx_bytes,
        profile_bytes=weak_champion.profile_bytes,
    )
    version = workflow.register_champion(champion)
    body = encode_records(records_for(champion, _drifted(200, seed=1), when=START + timedelta(minutes=5), version=version))
    workflow.s3.put_object(Bucket=workflow.settings.bucket, Key=capture_key(MODEL, START + timedelta(minutes=5), "a"), Body=body)

    response = client("lambda", workflow.settings).invoke(
        FunctionName=workflow.stack.function_name(DRIFT_HANDLER),
        Payload=json.dumps({"model": MODEL, "window": {"start": START.isoformat(), "end": END.isoformat()}}),
    )
    summary = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, summary
    assert summary["status"] == "drift"

    [execution] = workflow.sfn.list_executions(stateMachineArn=workflow.arn)["executions"]
    assert execution["name"] == f"{MODEL}-drift-20261125T1200"
    outcome = workflow.wait(execution["executionArn"])
    assert outcome.terminal == c.STATE_PROMOTED
    new = outcome.output["version"]["number"]
    assert workflow.production() == new == version + 1
    entry = workflow.backends.registry.describe(MODEL, new)
    assert entry.lineage.trigger == "drift"
    assert entry.lineage.execution_arn == execution["executionArn"]
    assert "dataset drift" in entry.description
    messages = workflow.messages()
    drift_alert = [m for m in messages if m.get("type") != "retraining"]
    [promoted] = [m for m in messages if m.get("type") == "retraining"]
    assert drift_alert  # the drift alert itself went to the same topic
    assert (promoted["outcome"], promoted["trigger"]) == ("promoted", "drift")
    assert promoted["trigger_reason"].startswith("dataset drift:")
    assert outcome.output["report"].endswith("report.json")


def test_a_scheduled_start_runs_with_the_rules_input(workflow: Workflow) -> None:
    # the EventBridge rule's input for a spec with retraining.schedule (tests/infra/test_retraining.py pins it)
    # EventBridge names the execution with a UUID (moto would name it "None" if we gave no name)
    started = workflow.sfn.start_execution(
        stateMachineArn=workflow.arn, name=str(uuid.uuid4()), input=json.dumps({"model": MODEL, "trigger": "schedule"})
    )
    outcome = workflow.wait(started["executionArn"])
    assert outcome.terminal == c.STATE_PROMOTED
    entry = workflow.backends.registry.describe(MODEL, outcome.output["version"]["number"])
    assert entry.lineage.trigger == "schedule"
    assert entry.description.startswith("retraining (schedule): ")
