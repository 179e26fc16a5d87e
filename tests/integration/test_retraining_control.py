"""control.py against moto's Step Functions interpreter: start_retraining names executions, approve/reject send the
task token back to a waiting execution (a tiny hand-written waitForTaskToken machine stands in for WaitForApproval;
the real machine's tests belong to tests/workflow/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_mlops.errors import ConflictError, MlopsError, NotFoundError
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.retraining import control
from serverless_mlops.retraining.approvals import get_approval, put_pending
from serverless_mlops.retraining.control import ApprovalExpiredError, approve, execution_name, reject, start_retraining
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends
from tests.helpers.task_token import finished, task_token, waiting_machine

MODEL = "wine"


@pytest.fixture
def aws(settings: Settings) -> Iterator[tuple[Backends, Any, Any]]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        ensure_resources(settings)
        yield (
            Backends.from_settings(settings),
            boto3.client("stepfunctions", region_name="us-east-1"),
            boto3.client("sqs", region_name="us-east-1"),
        )


def _pending(aws: tuple[Backends, Any, Any], version: int = 3, timeout: int = 60) -> tuple[str, str]:
    backends, sfn, sqs = aws
    machine, queue = waiting_machine(sfn, sqs, timeout)
    execution = start_retraining(sfn, machine, MODEL)
    put_pending(backends.workflow, MODEL, version, token=task_token(sqs, queue), execution_arn=execution)
    return machine, execution


def test_execution_name_is_model_trigger_and_time_within_80_characters() -> None:
    when = datetime(2026, 11, 25, 23, 5, 9, tzinfo=UTC)
    assert execution_name("wine", "manual", when) == "wine-manual-20261125T230509"
    long = execution_name("m" * 63, "schedule", when)
    assert len(long) == 80
    assert long.endswith("-schedule-20261125T230509")


def test_start_retraining_starts_once_per_name_with_the_input_the_workflow_reads(aws: tuple[Backends, Any, Any]) -> None:
    _, sfn, sqs = aws
    machine, _ = waiting_machine(sfn, sqs)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    arn = start_retraining(sfn, machine, MODEL, reason="new labels", requested_by="ann", now=when)
    assert arn.endswith(":wine-manual-20260102T030405")
    execution = sfn.describe_execution(executionArn=arn)
    assert json.loads(execution["input"]) == {"model": MODEL, "trigger": "manual", "reason": "new labels", "requested_by": "ann"}
    assert start_retraining(sfn, machine, MODEL, reason="again", now=when) == arn
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    scheduled = start_retraining(sfn, machine, MODEL, trigger="schedule", now=when)
    assert json.loads(sfn.describe_execution(executionArn=scheduled)["input"]) == {"model": MODEL, "trigger": "schedule"}


def test_start_retraining_refuses_bad_input_by_name(aws: tuple[Backends, Any, Any]) -> None:
    _, sfn, sqs = aws
    machine, _ = waiting_machine(sfn, sqs)
    with pytest.raises(MlopsError, match="invalid model name 'Wine!'"):
        start_retraining(sfn, machine, "Wine!")
    with pytest.raises(MlopsError, match="invalid trigger 'cron': expected one of schedule, drift, quality, manual"):
        start_retraining(sfn, machine, MODEL, trigger="cron")
    missing = machine.replace(":approval", ":nope")
    with pytest.raises(MlopsError, match=f"retraining state machine {missing} does not exist"):
        start_retraining(sfn, missing, MODEL)


def test_approve_sends_the_token_and_the_execution_continues(aws: tuple[Backends, Any, Any]) -> None:
    backends, sfn, _ = aws
    _, execution = _pending(aws)
    decided = approve(backends, sfn, MODEL, 3, by="ann", reason="looks good")
    assert (decided.state, decided.decided_by, decided.reason) == ("approved", "ann", "looks good")
    assert decided.approved
    result = finished(sfn, execution)
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"])["approval"] == {"approved": True, "by": "ann", "reason": "looks good"}
    assert get_approval(backends.workflow, MODEL, 3).state == "approved"


def test_reject_sends_approved_false_with_the_reason(aws: tuple[Backends, Any, Any]) -> None:
    backends, sfn, _ = aws
    _, execution = _pending(aws)
    decided = reject(backends, sfn, MODEL, 3, by="bob", reason="drops recall on class 2")
    assert decided.state == "rejected"
    assert not decided.approved
    output = json.loads(finished(sfn, execution)["output"])
    assert output["approval"] == {"approved": False, "by": "bob", "reason": "drops recall on class 2"}


def test_a_second_decision_is_a_clear_error(aws: tuple[Backends, Any, Any]) -> None:
    backends, sfn, _ = aws
    _pending(aws)
    approve(backends, sfn, MODEL, 3, by="ann")
    with pytest.raises(ConflictError, match=r"model 'wine' version 3 was already approved by ann at "):
        reject(backends, sfn, MODEL, 3, by="bob", reason="too late")
    with pytest.raises(ConflictError, match="already approved"):
        approve(backends, sfn, MODEL, 3, by="bob")


def test_nothing_pending_is_not_found_naming_model_and_version(aws: tuple[Backends, Any, Any]) -> None:
    backends, sfn, _ = aws
    with pytest.raises(NotFoundError, match="model 'wine' version 9 has no approval request"):
        approve(backends, sfn, MODEL, 9, by="ann")


def test_reject_needs_a_reason_and_a_decision_needs_a_name(aws: tuple[Backends, Any, Any]) -> None:
    backends, sfn, _ = aws
    _pending(aws)
    with pytest.raises(MlopsError, match="a rejection needs a reason"):
        reject(backends, sfn, MODEL, 3, by="bob", reason=" ")
    with pytest.raises(MlopsError, match="say who decides"):
        approve(backends, sfn, MODEL, 3, by="")
    assert get_approval(backends.workflow, MODEL, 3).state == "pending"


def test_an_expired_token_is_a_clear_error_and_marks_the_request_expired(aws: tuple[Backends, Any, Any]) -> None:
    backends, sfn, _ = aws
    _, execution = _pending(aws, timeout=1)
    assert finished(sfn, execution)["status"] == "FAILED"  # States.Timeout: nobody answered in time
    with pytest.raises(ApprovalExpiredError, match=r"model 'wine' version 3: the approval request expired"):
        approve(backends, sfn, MODEL, 3, by="ann")
    assert get_approval(backends.workflow, MODEL, 3).state == "expired"
    with pytest.raises(ConflictError, match="the approval request expired"):
        approve(backends, sfn, MODEL, 3, by="ann")


def test_an_unexpected_failure_to_send_leaves_the_request_pending(aws: tuple[Backends, Any, Any]) -> None:
    backends, sfn, _ = aws
    _pending(aws)

    class Broken:
        exceptions = sfn.exceptions

        def send_task_success(self, **_: Any) -> None:
            raise ConnectionError("network down")

    with pytest.raises(ConnectionError):
        control.approve(backends, Broken(), MODEL, 3, by="ann")
    assert get_approval(backends.workflow, MODEL, 3).state == "pending"
    approve(backends, sfn, MODEL, 3, by="ann")
