"""Batch scoring's pure parts: the job request, the matrix fast path's validation (the request path's rules),
starting and following a job (fake clients), the job function's step check."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from serverless_mlops.batch import contract as c
from serverless_mlops.batch.control import new_job_id, start_job, wait_job
from serverless_mlops.errors import InvalidInputError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.serving.onnx_model import OnnxModel
from tests.helpers.inference import records


def test_a_request_names_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="give version or alias, not both"):
        c.BatchRequest(model="m", input="s3://bucket/in/", output="s3://bucket/out/", version=1, alias="production")
    with pytest.raises(ValidationError, match="output: expected s3://BUCKET/PREFIX, got 'out/'"):
        c.BatchRequest(model="m", input="s3://bucket/in/", output="out/")
    with pytest.raises(ValidationError, match="job_id"):
        c.BatchRequest(model="m", input="s3://bucket/in/", output="s3://bucket/out", job_id="no spaces")
    request = c.BatchRequest(model="m", input="s3://bucket/in/", output="s3://bucket/out")
    assert request.output_prefix == "s3://bucket/out/"
    assert c.parse_s3_uri("s3://bucket/a/b.csv", "input") == ("bucket", "a/b.csv")


def test_predict_matrix_checks_what_predict_rows_checks_and_gives_the_same_answer(trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["breast-cancer"]
    model = OnnxModel(trained.record.signature, trained.onnx_bytes)
    rows = [[record[name] for name in model.signature.feature_names] for record in records("breast-cancer", rows=6)]
    labels, probabilities = model.predict_matrix(np.array(rows, dtype=np.float64).T)
    expected = model.predict_rows(rows)
    assert labels.tolist() == expected.predictions
    assert probabilities is not None
    assert probabilities.tolist() == expected.probabilities
    bad = np.array(rows, dtype=np.float64).T.copy()
    bad[1, 4] = np.inf
    with pytest.raises(InvalidInputError) as caught:
        model.predict_matrix(bad)
    assert caught.value.details == [
        {"row": 4, "field": model.signature.feature_names[1], "problem": "expected a finite number (NaN and infinity are refused)"}
    ]
    with pytest.raises(InvalidInputError, match="no inputs"):
        model.predict_matrix(np.zeros((len(rows[0]), 0)))
    with pytest.raises(ValueError, match="x rows float64 matrix"):
        model.predict_matrix(np.zeros((3, 2)))


class FakeSfn:
    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"executionArn": f"arn:aws:states:us-east-1:1:execution:batch:{kwargs['name']}"}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"status": status, **({"error": "BatchJobFailed", "cause": "shard 3 failed"} if status == "FAILED" else {})}


class FakeS3:
    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(json.dumps({"bucket": Bucket, "key": Key}).encode())}


def test_start_makes_a_job_id_and_a_new_execution_name_each_time() -> None:
    sfn = FakeSfn(["RUNNING"])
    request = c.BatchRequest(model="breast-cancer", input="s3://bkt/in/", output="s3://bkt/out")
    sent, arn = start_job(sfn, "arn:machine", request)
    assert sent.job_id is not None
    assert sent.job_id.startswith("breast-cancer-")
    again, second = start_job(sfn, "arn:machine", sent)
    assert again.job_id == sent.job_id
    assert arn != second
    assert json.loads(sfn.started[0]["input"])["job_id"] == sent.job_id
    assert "version" not in json.loads(sfn.started[0]["input"])
    assert len(new_job_id("a/b c" * 30)) <= 80


def test_wait_returns_success_with_the_manifest_failure_with_the_cause_and_gives_up_after_the_timeout() -> None:
    request = c.BatchRequest(model="m", input="s3://bkt/in/", output="s3://bkt/out", job_id="j")
    slept: list[float] = []
    done = wait_job(FakeSfn(["RUNNING", "SUCCEEDED"]), FakeS3(), "arn", request, poll_seconds=0.5, sleep=slept.append)
    assert done.summary == {"bucket": "bkt", "key": "out/_SUCCESS"}
    assert slept == [0.5]
    failed = wait_job(FakeSfn(["FAILED"]), FakeS3(), "arn", request)
    assert (failed.status, failed.summary, failed.cause) == ("FAILED", None, "shard 3 failed")
    assert failed.document()["error"] == "BatchJobFailed"
    with pytest.raises(c.BatchError, match="still running after 0 s"):
        wait_job(FakeSfn(["RUNNING"]), FakeS3(), "arn", request, timeout_seconds=0, sleep=lambda _: None)


def test_the_job_function_refuses_an_unknown_step() -> None:
    from functions.batch_job.app import handle

    with pytest.raises(c.BatchError, match="step: expected 'prepare' or 'finalize', got 'train'"):
        handle({"step": "train"})


def test_the_batch_functions_import_no_training_libraries() -> None:
    """Score and the job function run on the inference layer (numpy, onnxruntime, msgspec, pydantic): no pandas, no
    scikit-learn, in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys, functions.batch_score.app, functions.batch_job.app; "
        "print(','.join(sorted(m for m in ('sklearn', 'scipy', 'joblib', 'skl2onnx', 'pandas', 'onnx') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_csv_values_are_quoted_only_when_they_must_be() -> None:
    from serverless_mlops.batch.score import _csv_value

    assert [_csv_value(v) for v in ("yes", 'say "hi", then', 0.5, 3)] == ["yes", '"say ""hi"", then"', "0.5", "3"]
