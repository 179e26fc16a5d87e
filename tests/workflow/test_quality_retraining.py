"""Retraining on quality, end to end on the synthesized stack: the quality-check function (invoked through moto's Lambda
API, its environment and grants from the template) finds a breach, writes the window's newest labelled rows to
holdout-recent/ (not feedback/: never trained on) and starts the state machine with them in its input; Evaluate scores
candidate and champion on the split holdout and on those rows, and the rows decide.

The constructed case: a weak champion (trained on 40 rows) that the full retraining beats on the split holdout, so
without the recent rows the candidate would be promoted (tests/workflow/test_triggers.py). The newest labels agree with
the champion wherever the two models disagree, and both are wrong on a few rows where they agree (so the champion's
accuracy breaches a floor of 0.99): on those rows the champion's roc_auc is higher, so the candidate is not promoted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from serverless_mlops.aws import client
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.quality.labels import Label, write_labels
from serverless_mlops.retraining import contract as c
from serverless_mlops.serving.onnx_model import OnnxModel
from serverless_mlops.store.capture_format import capture_key, encode_records
from tests.helpers.drift_data import fresh_sample, records_for
from tests.helpers.specs import example_spec
from tests.helpers.workflow import MODEL, Workflow

QUALITY_HANDLER = "functions.quality_check.app.lambda_handler"
END = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MADE = END - timedelta(days=2)
QUALITY = {"window": "7d", "label_delay": "3d", "min_labels": 50, "floors": {"accuracy": 0.99}, "retrain_on_quality": True}


def _scores(trained: TrainedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """(predicted labels, probability of class 1) of ``trained`` on ``frame``."""
    signature = trained.record.signature
    rows = [{f.name: float(row[f.name]) for f in signature.features} for row in frame.to_dict("records")]
    found = OnnxModel(signature, trained.onnx_bytes).predict_records(rows)
    return np.asarray(found.predictions, dtype=np.int64), np.asarray(found.probabilities, dtype=np.float64)[:, 1]


def test_a_quality_breach_hands_its_newest_labelled_rows_to_evaluate_which_decides(
    workflow: Workflow, weak_champion: TrainedModel, trained_models: dict[str, TrainedModel]
) -> None:
    spec = example_spec(MODEL).model_dump(mode="json", by_alias=True) | {"quality": QUALITY}
    champion = TrainedModel(
        record=weak_champion.record.model_copy(update={"spec": spec}),
        onnx_bytes=weak_champion.onnx_bytes,
        profile_bytes=weak_champion.profile_bytes,
    )
    version = workflow.register_champion(champion)

    frame = fresh_sample(MODEL, 300, seed=11)
    records = records_for(champion, frame, when=MADE, version=version)
    for i, record in enumerate(records):
        record["id"] = f"q{i}"
    bucket = workflow.settings.bucket
    workflow.s3.put_object(Bucket=bucket, Key=capture_key(MODEL, MADE, "q"), Body=encode_records(records))
    ours, ours_p = _scores(champion, frame)
    theirs, theirs_p = _scores(trained_models[MODEL], frame)  # what the retraining will train (the same spec and data)
    disagree = np.flatnonzero(ours != theirs)
    agree = np.flatnonzero(ours == theirs)
    assert len(disagree) >= 3  # the weak champion and the full model do differ on this traffic
    truth = ours.copy()
    truth[agree[::15]] = 1 - truth[agree[::15]]  # both wrong on every 15th row they agree on: accuracy below 0.99
    assert roc_auc_score(truth, ours_p) > roc_auc_score(truth, theirs_p)  # the premise: the champion is better here
    labels = [Label(f"q{i}", int(t), MADE + timedelta(hours=1)) for i, t in enumerate(truth)]
    write_labels(workflow.s3, bucket, MODEL, labels, now=MADE + timedelta(hours=2))

    response = client("lambda", workflow.settings).invoke(
        FunctionName=workflow.stack.function_name(QUALITY_HANDLER), Payload=json.dumps({"model": MODEL, "end": END.isoformat()})
    )
    summary = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, summary
    assert summary["status"] == "breach"
    recent = summary["recent_rows"]
    assert (recent["rows"], recent["labelled"]) == (300, 300)
    assert recent["uri"].startswith(f"s3://{bucket}/{c.HOLDOUT_RECENT_PREFIX}/{MODEL}/20261130T1200Z-20261207T1200Z/")

    # the file: the captured features in the model's order and the label as the target, under its own prefix
    body = workflow.s3.get_object(Bucket=bucket, Key=recent["uri"].removeprefix(f"s3://{bucket}/"))["Body"].read()
    assert hashlib.sha256(body).hexdigest() == recent["sha256"]
    table = list(csv.DictReader(io.StringIO(body.decode())))
    assert list(table[0]) == [f.name for f in champion.record.signature.features] + ["target"]
    assert [int(row["target"]) for row in table] == truth.tolist()  # captured in id order, one ms apart
    assert float(table[7]["mean radius"]) == pytest.approx(frame["mean radius"][7])
    assert not workflow.s3.list_objects_v2(Bucket=bucket, Prefix=f"{c.FEEDBACK_PREFIX}/").get("KeyCount")

    [execution] = workflow.sfn.list_executions(stateMachineArn=workflow.arn)["executions"]
    assert execution["name"] == f"{MODEL}-quality-20261207T1200"
    started = json.loads(workflow.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["trigger"] == "quality"
    assert started["recent"] == {k: recent[k] for k in ("uri", "sha256", "rows", "window")}

    outcome = workflow.wait(execution["executionArn"], timeout=120)
    assert outcome.terminal == c.STATE_NOT_PROMOTED
    assert workflow.production() == version
    assert outcome.output["data"]["feedback_rows"] == 0  # the recent rows were not trained on
    evaluation = outcome.output["evaluation"]
    assert evaluation["champion"]["value"] < evaluation["candidate"]  # on the split holdout the candidate is better...
    found = evaluation["recent"]
    assert (found["uri"], found["sha256"], found["rows"]) == (recent["uri"], recent["sha256"], 300)
    assert found["champion"] == pytest.approx(roc_auc_score(truth, ours_p), abs=1e-6)  # ...on the newest rows, worse
    assert found["candidate"] == pytest.approx(roc_auc_score(truth, theirs_p), abs=1e-6)
    assert found["passed"] is False
    assert evaluation["passed"] is False
    assert evaluation["reason"].startswith("fails: on the 300 newest labelled rows roc_auc")

    entry = workflow.backends.registry.describe(MODEL, outcome.output["version"]["number"])
    assert entry.status == "rejected"
    assert entry.lineage.trigger == "quality"
    assert entry.lineage.recent_rows is not None
    assert entry.lineage.recent_rows["uri"] == recent["uri"]
    assert entry.lineage.recent_rows["candidate"] == found["candidate"]
    rejected = [m for m in workflow.messages() if m.get("type") == "retraining"]
    assert [m["outcome"] for m in rejected] == ["rejected"]
    assert "newest labelled rows" in rejected[0]["reason"]
