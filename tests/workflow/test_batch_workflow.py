"""Batch scoring end to end on moto: the batch state machine the CDK app synthesizes (Prepare → Distributed Map over the
S3 JSON manifest, STANDARD children → Finalize), its Lambdas run in-process, on three input objects of uneven sizes."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pandas as pd
import pytest

from serverless_mlops.batch import contract as c
from serverless_mlops.batch.score import ShardScorer
from serverless_mlops.model.fit import TrainedModel
from tests.helpers.inference import onnx_outputs
from tests.helpers.specs import ROOT
from tests.helpers.workflow import MODEL, Workflow

SCORE_HANDLER = "functions.batch_score.app.lambda_handler"
JOB_HANDLER = "functions.batch_job.app.lambda_handler"


def rows(count: int, start: int = 0) -> pd.DataFrame:
    data = pd.read_csv(ROOT / "models" / "data" / "breast_cancer.csv")
    return data.drop(columns=["target"]).iloc[start : start + count].reset_index(drop=True)


def with_bad_rows(frame: pd.DataFrame) -> tuple[str, list[int]]:
    """``frame`` as CSV with two bad rows (a text value, a missing one); returns the text and the bad rows' byte offsets."""
    lines = frame.to_csv(index=False).splitlines()
    header = next(csv.reader([lines[0]]))
    at = header.index("mean texture")
    for line_number, value in ((4, "n/a"), (9, "")):
        fields = next(csv.reader([lines[line_number]]))
        fields[at] = value
        lines[line_number] = ",".join(fields)
    text = "\n".join(lines) + "\n"
    offsets = [len("\n".join(lines[:n]).encode()) + 1 for n in (4, 9)]
    return text, offsets


class Batch:
    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.arn = workflow.stack.output("BatchStateMachineArn")
        self.bucket = workflow.settings.bucket
        self.s3 = workflow.s3
        self.score_function = workflow.stack.function_name(SCORE_HANDLER)

    def put_inputs(self) -> tuple[pd.DataFrame, list[int]]:
        small, medium, large = rows(12), rows(40, 12), rows(90, 52)
        bad_text, offsets = with_bad_rows(medium)
        self.s3.put_object(Bucket=self.bucket, Key="batch/in/a-small.csv", Body=small.to_csv(index=False).encode())
        self.s3.put_object(Bucket=self.bucket, Key="batch/in/b-bad.csv", Body=bad_text.encode())
        self.s3.put_object(Bucket=self.bucket, Key="batch/in/c-large.csv", Body=large.to_csv(index=False).encode())
        return pd.concat([small, medium, large], ignore_index=True), offsets

    def start(self, job_id: str, *, name: str | None = None, **request: Any) -> str:
        document = {
            "model": MODEL,
            "input": f"s3://{self.bucket}/batch/in/",
            "output": f"s3://{self.bucket}/batch/out/",
            "job_id": job_id,
            **request,
        }
        started = self.workflow.sfn.start_execution(
            stateMachineArn=self.arn, name=name or f"{job_id}-{time.monotonic_ns()}", input=json.dumps(document)
        )
        return str(started["executionArn"])

    def read(self, key: str) -> str:
        return str(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode())

    def outputs(self) -> pd.DataFrame:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="batch/out/part-")["Contents"]
        frames = [pd.read_csv(io.StringIO(self.read(item["Key"]))) for item in sorted(listed, key=lambda i: i["Key"])]
        return pd.concat([f for f in frames if len(f)], ignore_index=True)


@pytest.fixture
def batch(workflow: Workflow, weak_champion: TrainedModel) -> Batch:
    workflow.register_champion(weak_champion)
    return Batch(workflow)


def test_three_uneven_objects_one_with_bad_rows_scored_by_the_pinned_version_while_the_alias_moves(
    batch: Batch, workflow: Workflow, weak_champion: TrainedModel, trained_models: dict[str, TrainedModel]
) -> None:
    pinned = workflow.production()
    expected_rows, offsets = batch.put_inputs()
    arn = batch.start("nightly-1")
    entered = workflow.wait(arn, until=c.STATE_SCORE_SHARDS, timeout=60)
    assert c.STATE_PREPARE in entered.states
    newer = workflow.register_champion(trained_models[MODEL])  # production moves while the shards are being scored
    assert newer != pinned
    outcome = workflow.wait(arn, timeout=120)
    assert outcome.status == "SUCCEEDED", outcome.error
    assert outcome.states[-2:] == [c.STATE_FINALIZE, c.STATE_SUCCEEDED]

    success = json.loads(batch.read("batch/out/_SUCCESS"))
    assert (success["rows_in"], success["rows_scored"], success["rows_refused"]) == (142, 140, 2)
    assert success["version"] == pinned
    assert success["shards"] > 3  # 2 KiB shards: several per object
    assert success["duration_seconds"] > 0

    scored = batch.outputs()
    assert len(scored) == 140
    assert set(scored["model_version"]) == {pinned}
    good = expected_rows.drop(index=[12 + 3, 12 + 8]).reset_index(drop=True)  # the medium object's bad rows (lines 4 and 9)
    labels, _ = onnx_outputs(weak_champion, good.to_dict("records"))
    expected = good.assign(expected=labels)[["mean radius", "mean area", "expected"]]
    merged = scored.merge(expected, on=["mean radius", "mean area"])
    assert len(merged) == 140
    assert (merged["prediction"] == merged["expected"]).all()  # the pinned (weak) model's labels, not the newer one's

    refused = [json.loads(line) for key in _keys(batch, "batch/out/refused/") for line in batch.read(key).splitlines()]
    assert sorted((r["offset"], r["field"]) for r in refused) == [(offsets[0], "mean texture"), (offsets[1], "mean texture")]
    assert {r["object"] for r in refused} == {f"s3://{batch.bucket}/batch/in/b-bad.csv"}


def _keys(batch: Batch, prefix: str) -> list[str]:
    return [item["Key"] for item in batch.s3.list_objects_v2(Bucket=batch.bucket, Prefix=prefix).get("Contents", [])]


def test_a_failing_shard_is_retried_then_the_job_fails_naming_it_and_a_rerun_resumes(
    batch: Batch, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch.put_inputs()
    # shard 0 fails while reading, on its first attempt and on its retry (batch.retry: one retry after 1 s)
    failures = []
    real_block = ShardScorer.block

    def flaky_block(self: ShardScorer, offset: int, data: bytes) -> Any:
        if self.shard.index == 0 and len(failures) < 2:
            failures.append(self.shard.index)
            raise OSError("S3 read reset")
        return real_block(self, offset, data)

    monkeypatch.setattr(ShardScorer, "block", flaky_block)
    first = batch.start("resumable")
    outcome = workflow.wait(first, timeout=120)
    assert outcome.status == "FAILED"
    assert outcome.terminal == c.STATE_FAILED
    described = workflow.sfn.describe_execution(executionArn=first)
    assert described["error"] == c.JOB_FAILED_ERROR
    assert "1 of" in described["cause"]
    assert "shard 0 (s3://" in described["cause"]
    assert "batch/in/a-small.csv bytes 0-" in described["cause"]
    assert "OSError: S3 read reset" in described["cause"]
    score_calls = workflow.invoker.calls_of(batch.score_function)
    attempts_of_first = [call for call in score_calls if call.event["shard"]["index"] == 0]
    assert len(attempts_of_first) == 2  # tried, retried, then caught
    assert all(call.errored for call in attempts_of_first)
    assert "_SUCCESS" not in {k.rsplit("/", 1)[-1] for k in _keys(batch, "batch/out/")}
    assert json.loads(batch.read("batch/out/_FAILED"))["shards_failed"] == 1
    done_before = len(score_calls) - 2

    second = batch.start("resumable")
    outcome = workflow.wait(second, timeout=120)
    assert outcome.status == "SUCCEEDED", outcome.error
    rerun = workflow.invoker.calls_of(batch.score_function)[len(score_calls) :]
    skipped = [call for call in rerun if call.result.get("skipped")]
    assert len(skipped) == done_before  # every shard done the first time is skipped, not scored again
    assert [call.event["shard"]["index"] for call in rerun if not call.result.get("skipped")] == [0]
    success = json.loads(batch.read("batch/out/_SUCCESS"))
    assert (success["rows_in"], success["rows_scored"], success["rows_refused"], success["shards_failed"]) == (142, 140, 2, 0)
    assert "_FAILED" not in {k.rsplit("/", 1)[-1] for k in _keys(batch, "batch/out/")}
    assert success["shards"] == json.loads(batch.read(f"{c.PREFIX}/resumable/job.json"))["shards"]


def _cli(workflow: Workflow, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from serverless_mlops.cli.entry_point import main

    capsys.readouterr()
    code = main(["--bucket", workflow.settings.bucket, "--table", workflow.settings.table, "batch", "score", MODEL, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_mlops_batch_score_waits_for_success_and_names_what_is_wrong_in_one_line(
    batch: Batch, workflow: Workflow, capsys: pytest.CaptureFixture[str]
) -> None:
    batch.put_inputs()
    where = ["--input", f"s3://{batch.bucket}/batch/in/", "--output", f"s3://{batch.bucket}/batch/cli/"]
    code, out, err = _cli(
        workflow, capsys, *where, "--state-machine", batch.arn, "--wait", "--json", "--poll-seconds", "0.1", "--alias", "production"
    )
    assert code == 0, err
    document = json.loads(out[out.rindex('{\n  "job_id"') :])  # the in-process Lambdas log to stdout before it
    assert document["status"] == "SUCCEEDED"
    assert (document["summary"]["rows_in"], document["summary"]["rows_scored"], document["summary"]["rows_refused"]) == (142, 140, 2)
    assert document["summary"]["version"] == workflow.production()

    code, out, err = _cli(workflow, capsys, *where, "--state-machine", batch.arn)
    assert code == 0
    assert "started batch job breast-cancer-" in out
    code, out, err = _cli(workflow, capsys, *where, "--state-machine", batch.arn, "--json", "--job-id", "named")
    assert code == 0
    started = json.loads(out[out.rindex('{\n  "job_id"') :])
    assert (started["job_id"], started["status"]) == ("named", "RUNNING")
    # the two jobs started without --wait run on moto's thread, whose in-process Lambdas swap os.environ: let them end
    # before the CLI reads its settings again (a real CLI is another process than the functions it starts)
    for execution in workflow.sfn.list_executions(stateMachineArn=batch.arn, statusFilter="RUNNING")["executions"]:
        workflow.wait(execution["executionArn"], timeout=60)

    code, out, err = _cli(workflow, capsys, *where, "--state-machine", batch.arn, "--version", "1", "--alias", "production")
    assert code == 1
    assert err.strip() == "error: invalid batch job: give version or alias, not both"
    code, out, err = _cli(workflow, capsys, "--input", "/local/file.csv", "--output", where[3], "--state-machine", batch.arn)
    assert code == 1
    assert "input: expected s3://BUCKET/PREFIX, got '/local/file.csv'" in err
    code, out, err = _cli(workflow, capsys, *where)
    assert code == 1
    assert "MLOPS_BATCH_STATE_MACHINE_ARN" in err

    # a job that cannot run (no such version): --wait exits 1 with the machine's cause, in one line
    code, out, err = _cli(workflow, capsys, *where, "--state-machine", batch.arn, "--version", "99", "--wait", "--poll-seconds", "0.1")
    assert code == 1
    assert err.count("\n") == 1
    assert "batch job breast-cancer-" in err
    assert "failed" in err
    assert "99" in err
