"""Who decides is who AWS says is calling: ``mlops approve|reject|promote|rollback`` record the caller's STS identity
(GetCallerIdentity's ARN), not ``MLOPS_USER`` or the login name, which the caller chooses.

Each person here has their own credentials from moto's STS (an assumed role with a session name), while
``MLOPS_USER`` claims to be someone else; the approval, the execution's decision and the alias history must name the
credentials' owner. WaitForApproval is a tiny waitForTaskToken machine (as in test_retraining_control.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

import serverless_mlops.aws
from serverless_mlops.cli import main
from serverless_mlops.local.moto import ensure_resources
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.retraining.approvals import get_approval, put_pending
from serverless_mlops.retraining.control import start_retraining
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.task_token import finished, task_token, waiting_machine

MODEL = "wine"
ACCOUNT = "123456789012"
FORGED = "the-boss"  # what a caller could claim with MLOPS_USER


@pytest.fixture
def aws(settings: Settings, monkeypatch: pytest.MonkeyPatch, trained_models: dict[str, TrainedModel]) -> Iterator[Backends]:
    monkeypatch.setenv("MLOPS_USER", FORGED)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        ensure_resources(settings)
        backends = Backends.from_settings(settings)
        trained = trained_models[MODEL]
        for run in ("run-1", "run-2"):  # versions 1 and 2, so production can move and roll back
            register_run(replace(trained, record=trained.record.model_copy(update={"run_id": run})), backends, by="setup")
        yield backends


def _as(monkeypatch: pytest.MonkeyPatch, role: str, person: str) -> str:
    """Use ``person``'s credentials (``role`` assumed with their session name); returns the ARN AWS will report."""
    iam = boto3.client("iam", region_name="us-east-1")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]}
    try:
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_role(RoleName=role)["Role"]["Arn"]
    credentials = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=arn, RoleSessionName=person)["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    # the CLI's clients come from one boto3 session per thread, which resolved its credentials when made: a new one
    # reads these (monkeypatch puts the old one back after the test)
    monkeypatch.setattr(serverless_mlops.aws._sessions, "session", boto3.session.Session(), raising=False)
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{person}"


def _waiting(backends: Backends, version: int) -> str:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    machine, queue = waiting_machine(sfn, sqs)
    execution = start_retraining(sfn, machine, MODEL, now=None)
    put_pending(backends.workflow, MODEL, version, token=task_token(sqs, queue), execution_arn=execution)
    return execution


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["--json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def test_approve_records_the_callers_sts_arn(aws: Backends, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    execution = _waiting(aws, 2)
    ann = _as(monkeypatch, "approver", "ann")
    decided = _cli(capsys, "approve", MODEL, "2", "--reason", "better recall")
    assert decided["decided_by"] == ann
    assert get_approval(aws.workflow, MODEL, 2).decided_by == ann
    # what the waiting execution receives (and Promote writes into production's history) names her too
    output = json.loads(finished(boto3.client("stepfunctions", region_name="us-east-1"), execution)["output"])
    assert output["approval"] == {"approved": True, "by": ann, "reason": "better recall"}


def test_reject_records_the_callers_sts_arn(aws: Backends, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    execution = _waiting(aws, 2)
    bob = _as(monkeypatch, "approver", "bob")
    decided = _cli(capsys, "reject", MODEL, "2", "--reason", "drops class 2")
    assert (decided["state"], decided["decided_by"]) == ("rejected", bob)
    output = json.loads(finished(boto3.client("stepfunctions", region_name="us-east-1"), execution)["output"])
    assert output["approval"]["by"] == bob


def test_promote_and_rollback_record_the_callers_sts_arn(
    aws: Backends, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    carol = _as(monkeypatch, "releaser", "carol")
    _cli(capsys, "promote", MODEL, "1")
    _cli(capsys, "promote", MODEL, "2", "--reason", "new data")
    dave = _as(monkeypatch, "releaser", "dave")
    _cli(capsys, "rollback", MODEL, "--reason", "regression")
    history = aws.registry.get_alias(MODEL, "production").history
    assert [(change.action, change.by) for change in history] == [("promote", carol), ("promote", carol), ("rollback", dave)]
    assert FORGED not in {change.by for change in history}


def test_without_credentials_a_decision_is_refused_in_one_line(
    aws: Backends, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serverless_mlops.cli.common import caller_identity
    from serverless_mlops.errors import MlopsError

    class NoCredentials:
        def get_caller_identity(self) -> dict[str, Any]:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError

    monkeypatch.setattr("serverless_mlops.aws.client", lambda service, settings: NoCredentials())
    with pytest.raises(MlopsError, match=r"cannot tell who you are: STS GetCallerIdentity failed \(Unable to locate credentials\)"):
        caller_identity(Settings())
