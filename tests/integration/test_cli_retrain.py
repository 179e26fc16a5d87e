"""``mlops retrain|approve|reject``: what goes wrong is one line and exit 1, and each outcome reads as a sentence.

The workflow itself (and these commands driving it) is exercised end to end in tests/workflow/.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from serverless_mlops.cli import main
from serverless_mlops.cli.retrain import Followed, Step, outcome_line
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.retraining import contract as c
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, register_run

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:retraining"


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, list[str]]:
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


def test_retrain_without_a_state_machine_says_where_to_find_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, ["retrain", "wine"])
    assert code == 1
    assert len(err) == 1
    assert "--state-machine" in err[0]
    assert "MLOPS_RETRAIN_STATE_MACHINE_ARN" in err[0]


def test_retrain_of_a_model_that_is_not_deployed_names_it(capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    with mock_aws():
        ensure_resources(settings)
        code, err = _run(capsys, ["retrain", "wine", "--state-machine", ARN])
    assert code == 1
    assert len(err) == 1
    assert "model 'wine' has no published spec" in err[0]


def test_retrain_with_a_bucket_that_does_not_exist_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        code, err = _run(capsys, ["--bucket", "no-such-bucket", "retrain", "wine", "--state-machine", ARN])
    assert code == 1
    assert err == [
        "error: artifact bucket 'no-such-bucket' does not exist: pass --bucket (or set MLOPS_BUCKET): the ArtifactBucketName output"
    ]


def test_retrain_against_a_state_machine_that_does_not_exist(capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    from serverless_mlops.aws import client
    from serverless_mlops.retraining.specs import publish_specs
    from tests.helpers.specs import example_spec

    with mock_aws():
        ensure_resources(settings)
        publish_specs([example_spec("wine")], client("s3", settings), settings.bucket)
        code, err = _run(capsys, ["retrain", "wine", "--state-machine", ARN])
    assert code == 1
    assert len(err) == 1
    assert "does not exist" in err[0]


def test_approve_and_reject_name_the_unknown_model_or_version(
    capsys: pytest.CaptureFixture[str], backends: Backends, trained_models: dict[str, TrainedModel]
) -> None:
    code, err = _run(capsys, ["approve", "nope", "1"])
    assert (code, err) == (1, ["error: model 'nope' is not registered"])
    register_run(trained_models["wine"], backends, by="test")
    code, err = _run(capsys, ["reject", "wine", "7", "--reason", "no"])
    assert code == 1
    assert err == ["error: model 'wine' version 7 has no approval request: nothing is waiting for a decision on it"]
    code, _ = _run(capsys, ["reject", "wine", "1"])
    assert code == 2  # --reason is required: a usage mistake


def _followed(terminal: str, output: dict[str, Any], status: str = "SUCCEEDED", **extra: Any) -> Followed:
    now = datetime.now(UTC)
    return Followed(arn="arn:x", status=status, steps=[Step(terminal, now, None)], output=output, **extra)


BASE = {"model": "wine", "trigger": "manual"}
REGISTERED = {"number": 3, "status": "registered"}
HELD = '{"errorMessage": "held by x"}'
EVALUATION = {
    "metric": "f1",
    "higher_is_better": True,
    "candidate": 0.9,
    "min_improvement": 0.0,
    "holdout_rows": 45,
    "parity": {},
    "passed": False,
    "reason": "f1 0.9 does not beat champion v1 (0.95)",
    "require_approval": True,
}


@pytest.mark.parametrize(
    ("followed", "expected", "outcome"),
    [
        (
            _followed(c.STATE_PROMOTED, {**BASE, "promotion": {"alias": "production", "to_version": 1, "revision": 1}}),
            "promoted: wine v1 in production; ",
            "promoted",
        ),
        (
            _followed(c.STATE_NOT_PROMOTED, {**BASE, "evaluation": EVALUATION, "version": {"number": 2, "status": "rejected"}}),
            "not promoted: v2 registered as rejected: f1 0.9 does not beat champion v1 (0.95)",
            "not_promoted",
        ),
        (
            _followed(c.STATE_NOT_PROMOTED, {**BASE, "approval": {"approved": False, "by": "ann", "reason": "too soon"}}),
            "not promoted: rejected by ann: too soon",
            "not_promoted",
        ),
        (
            _followed(c.STATE_NOT_PROMOTED, {**BASE, "version": REGISTERED, "error": {"Error": "States.Timeout"}}),
            "not promoted: v3 rejected: States.Timeout",
            "not_promoted",
        ),
        (
            _followed(c.STATE_ALREADY_RUNNING, {**BASE, "error": {"Error": c.ALREADY_RUNNING_ERROR, "Cause": HELD}}),
            "not started: another execution is retraining this model (held by x)",
            "already_running",
        ),
        (
            _followed(c.STATE_WAIT_FOR_APPROVAL, {**BASE, "version": {"number": 4, "status": "registered"}}, status="RUNNING"),
            "waiting for approval: mlops approve wine 4 / mlops reject wine 4 --reason ...",
            "waiting_for_approval",
        ),
        (_followed(c.STATE_TRAIN, BASE, status="RUNNING"), "still running", "running"),
        (
            _followed(c.STATE_FAILED, {}, status="FAILED", error="RetrainingFailed", cause="Train: DataError"),
            "failed (FAILED): RetrainingFailed Train: DataError",
            "failed",
        ),
    ],
)
def test_each_outcome_is_one_sentence(followed: Followed, expected: str, outcome: str) -> None:
    from rich.text import Text

    assert followed.outcome == outcome
    assert Text.from_markup(outcome_line(followed)).plain.startswith(expected)
    assert followed.document()["state"] == followed.terminal


def test_a_step_records_its_duration() -> None:
    start = datetime.now(UTC)
    step = Step("Train", start, (start + timedelta(seconds=2) - start).total_seconds())
    assert step.seconds == 2.0


def test_retrain_local_with_a_template_that_lacks_the_stacks_outputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    template = tmp_path / "serverless-mlops-dev.template.json"
    template.write_text('{"Resources": {}}')
    from moto.core.config import default_user_config

    before = dict(default_user_config["stepfunctions"])
    code, err = _run(capsys, ["retrain", "wine", "--local", "--template", str(template)])
    assert default_user_config["stepfunctions"] == before  # the server's process-wide setting is put back
    assert code == 1
    assert err == [
        "error: serverless-mlops-dev: output ArtifactBucketName has no local value: the template has no output 'ArtifactBucketName'"
    ]


def test_an_aws_error_other_than_a_missing_bucket_is_reported_as_such(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from serverless_mlops.retraining import specs

    def denied(*args: object, **kwargs: object) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")

    monkeypatch.setattr(specs, "load_published_spec", denied)
    code, err = _run(capsys, ["retrain", "wine", "--state-machine", ARN])
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("error: AWS: ")
    assert "AccessDenied" in err[0]


class PagedHistory:
    """A Step Functions client whose history comes in pages of two events."""

    def __init__(self) -> None:
        at = datetime(2026, 11, 25, tzinfo=UTC)
        entered = {"stateEnteredEventDetails": {"name": c.STATE_PREPARE, "input": '{"model": "wine"}'}}
        self.events = [
            {"id": 1, "type": "ExecutionStarted", "timestamp": at},
            {"id": 2, "type": "TaskStateEntered", "timestamp": at, **entered},
            {
                "id": 3,
                "type": "TaskFailed",
                "timestamp": at,
                "taskFailedEventDetails": {"error": "Lambda.TooManyRequestsException", "cause": "slow down"},
            },
            {
                "id": 4,
                "type": "TaskStateExited",
                "timestamp": at + timedelta(seconds=3),
                "stateExitedEventDetails": {"name": c.STATE_PREPARE},
            },
            {"id": 5, "type": "TaskStateExited", "timestamp": at, "stateExitedEventDetails": {"name": "NeverEntered"}},
        ]

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return {"status": "SUCCEEDED", "output": '{"model": "wine"}'}

    def get_execution_history(self, executionArn: str, maxResults: int, nextToken: str = "0") -> dict[str, Any]:
        start = int(nextToken)
        page: dict[str, Any] = {"events": self.events[start : start + 2]}
        if start + 2 < len(self.events):
            page["nextToken"] = str(start + 2)
        return page


def test_follow_reads_every_page_of_the_history() -> None:
    from serverless_mlops.cli.retrain import follow

    lines: list[str] = []
    followed = follow(PagedHistory(), "arn:x", show=lines.append)
    assert [(s.name, s.seconds) for s in followed.steps] == [(c.STATE_PREPARE, 3.0)]
    assert lines[0] == f"→ {c.STATE_PREPARE}"
    assert "Lambda.TooManyRequestsException: slow down" in lines[1]
    assert len(lines) == 3
