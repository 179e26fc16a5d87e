"""The retraining workflow the CDK app synthesizes, run end to end on moto's Step Functions interpreter.

Every test asserts the terminal state each of its executions ended in; the ``workflow`` fixture also checks, when a
test ends, that no execution is left running.
"""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from serverless_mlops.cli import app
from serverless_mlops.errors import DataError
from serverless_mlops.model.fit import TrainedModel, train
from serverless_mlops.retraining import contract as c
from tests.helpers.specs import example_spec
from tests.helpers.workflow import HAPPY_PATH, MODEL, Workflow, WorkflowSynth, provisioned


@pytest.fixture(scope="module")
def full_champion() -> TrainedModel:
    """breast-cancer trained on exactly the data the workflow trains on: a retraining cannot beat it."""
    return train(example_spec(MODEL))


def test_a_better_candidate_is_promoted_with_its_lineage(workflow: Workflow, weak_champion: TrainedModel) -> None:
    champion = workflow.register_champion(weak_champion)
    outcome = workflow.wait(workflow.start(reason="monthly refresh"))

    assert (outcome.status, outcome.terminal) == ("SUCCEEDED", c.STATE_PROMOTED)
    assert outcome.states == HAPPY_PATH
    evaluation = outcome.output["evaluation"]
    assert evaluation["passed"]
    assert evaluation["champion"]["version"] == champion
    assert evaluation["candidate"] - evaluation["champion"]["value"] >= evaluation["min_improvement"]
    new = outcome.output["version"]["number"]
    assert workflow.production() == new == champion + 1
    entry = workflow.backends.registry.describe(MODEL, new)
    assert entry.status == "registered"
    assert entry.lineage.trigger == "manual"
    assert entry.lineage.execution_arn == outcome.arn
    assert entry.lineage.data_sha256 == outcome.output["data"]["sha256"]
    (message,) = workflow.messages()
    assert (message["outcome"], message["version"], message["model"]) == ("promoted", new, MODEL)


def test_a_candidate_no_better_than_the_champion_is_registered_as_rejected(workflow: Workflow, full_champion: TrainedModel) -> None:
    champion = workflow.register_champion(full_champion)
    outcome = workflow.wait(workflow.start())

    assert (outcome.status, outcome.terminal) == ("SUCCEEDED", c.STATE_NOT_PROMOTED)
    assert outcome.states[-3:] == [c.STATE_REGISTER_REJECTED, c.STATE_NOTIFY_REJECTED, c.STATE_NOT_PROMOTED]
    evaluation = outcome.output["evaluation"]
    assert not evaluation["passed"]
    assert evaluation["improvement"] == pytest.approx(0.0)
    rejected = outcome.output["version"]["number"]
    assert workflow.backends.registry.describe(MODEL, rejected).status == "rejected"
    assert workflow.production() == champion
    (message,) = workflow.messages()
    assert message["outcome"] == "rejected"
    assert message["reason"] == evaluation["reason"]


def test_a_failing_train_ends_in_the_failure_notification_with_nothing_promoted(workflow: Workflow, weak_champion: TrainedModel) -> None:
    champion = workflow.register_champion(weak_champion)
    workflow.invoker.fail(workflow.training_function, error=DataError("the trainer ran out of patience"), match={"step": c.TRAIN})
    outcome = workflow.wait(workflow.start())

    assert (outcome.status, outcome.terminal, outcome.error) == ("FAILED", c.STATE_FAILED, c.FAILED_ERROR)
    assert outcome.states == [c.STATE_PREPARE, c.STATE_TRAIN, c.STATE_NOTIFY_FAILURE, c.STATE_FAILED]
    assert workflow.production() == champion
    assert [v.version for v in workflow.backends.registry.list_versions(MODEL).items] == [champion]
    (message,) = workflow.messages()
    assert message["outcome"] == "failed"
    assert c.STATE_TRAIN in message["reason"]
    assert "ran out of patience" in message["reason"]
    # the failure released the model's lock: the next execution runs (and promotes)
    assert workflow.wait(workflow.start(name="after-the-failure")).terminal == c.STATE_PROMOTED


def test_a_feedback_file_without_the_target_fails_prepare_naming_the_file(workflow: Workflow) -> None:
    workflow.s3.put_object(Bucket=workflow.settings.bucket, Key=f"feedback/{MODEL}/2026-11.csv", Body=b"mean radius,mean texture\n1,2\n")
    outcome = workflow.wait(workflow.start())

    assert (outcome.terminal, outcome.states[:2]) == (c.STATE_FAILED, [c.STATE_PREPARE, c.STATE_NOTIFY_FAILURE])
    (message,) = workflow.messages()
    assert message["outcome"] == "failed"
    assert f"feedback/{MODEL}/2026-11.csv" in message["reason"]
    assert workflow.production() is None


def test_a_throttled_task_is_retried_and_the_execution_succeeds(workflow: Workflow) -> None:
    workflow.invoker.throttle(workflow.training_function, times=2, match={"step": c.TRAIN})
    outcome = workflow.wait(workflow.start())

    assert outcome.terminal == c.STATE_PROMOTED
    assert outcome.states == HAPPY_PATH
    trains = [call for call in workflow.invoker.calls_of(workflow.training_function) if call.event["step"] == c.TRAIN]
    assert [call.throttled for call in trains] == [True, True, False]
    history = workflow.sfn.get_execution_history(executionArn=outcome.arn, maxResults=1000)["events"]
    failures = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert failures == ["Lambda.TooManyRequestsException"] * 2


def _approval_spec(workflow: Workflow) -> int:
    spec = example_spec(MODEL)
    workflow.publish_spec(spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"require_approval": True})}))
    return 1  # no champion: the first candidate becomes version 1


def _waiting(workflow: Workflow) -> tuple[str, int]:
    version = _approval_spec(workflow)
    arn = workflow.start()
    outcome = workflow.wait(arn, until=c.STATE_WAIT_FOR_APPROVAL)
    assert (outcome.status, outcome.terminal) == ("RUNNING", c.STATE_WAIT_FOR_APPROVAL)
    (request,) = workflow.wait_for_messages(1)  # published last, after the staging alias and the pending approval
    assert workflow.backends.registry.get_alias(MODEL, "staging").version == version
    assert f"mlops approve {MODEL} {version}" in str(request)
    assert f"mlops reject {MODEL} {version}" in str(request)
    return arn, version


def _options(workflow: Workflow) -> list[str]:
    """The stack's bucket and tables, as a person passes them (the outputs ArtifactBucketName, RegistryTableName and
    RetrainingTableName)."""
    settings = workflow.settings
    return ["--bucket", settings.bucket, "--table", settings.table, "--retraining-table", settings.retraining_table]


def _cli(workflow: Workflow, *args: str) -> str:
    result = CliRunner().invoke(app, [*_options(workflow), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_approval_path_waits_then_promotes_on_approve(workflow: Workflow) -> None:
    arn, version = _waiting(workflow)
    assert workflow.production() is None  # nothing moves while it waits

    decided = json.loads(_cli(workflow, "approve", MODEL, str(version), "--reason", "looks right", "--json"))
    assert (decided["state"], decided["version"], decided["reason"]) == ("approved", version, "looks right")
    assert "token" not in decided
    outcome = workflow.wait(arn)

    assert outcome.terminal == c.STATE_PROMOTED
    assert outcome.states[-6:] == [
        c.STATE_NEEDS_APPROVAL,
        c.STATE_WAIT_FOR_APPROVAL,
        c.STATE_APPROVED,
        c.STATE_PROMOTE,
        c.STATE_NOTIFY_PROMOTED,
        c.STATE_PROMOTED,
    ]
    assert outcome.output["approval"]["approved"] is True
    assert workflow.production() == version
    assert [m["outcome"] for m in workflow.messages()] == ["promoted"]


def test_the_approval_path_stops_on_reject(workflow: Workflow) -> None:
    arn, version = _waiting(workflow)

    rejected = _cli(workflow, "reject", MODEL, str(version), "--reason", "holdout too small")
    assert f"rejected {MODEL} v{version}: production stays" in rejected
    outcome = workflow.wait(arn)

    assert outcome.terminal == c.STATE_NOT_PROMOTED
    assert outcome.states[-4:] == [c.STATE_APPROVED, c.STATE_REJECT, c.STATE_NOTIFY_REJECTED, c.STATE_NOT_PROMOTED]
    assert workflow.backends.registry.describe(MODEL, version).status == "rejected"
    assert workflow.production() is None
    (message,) = workflow.messages()
    assert message["outcome"] == "rejected"
    assert "holdout too small" in message["reason"]
    # the decision is recorded once: a second answer is refused with one line
    second = CliRunner().invoke(app, [*_options(workflow), "approve", MODEL, "1"])
    assert second.exit_code == 1


def test_two_concurrent_executions_for_one_model_promote_at_most_once(workflow: Workflow, weak_champion: TrainedModel) -> None:
    champion = workflow.register_champion(weak_champion)
    arns: list[str] = []
    barrier = threading.Barrier(2)

    def start(name: str) -> None:
        barrier.wait()
        arns.append(workflow.start(name=name))

    threads = [threading.Thread(target=start, args=(name,)) for name in ("first-trigger", "second-trigger")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = [workflow.wait(arn) for arn in arns]

    assert sorted(o.terminal for o in outcomes) == sorted([c.STATE_PROMOTED, c.STATE_ALREADY_RUNNING])
    (blocked,) = [o for o in outcomes if o.terminal == c.STATE_ALREADY_RUNNING]
    assert blocked.states == [c.STATE_PREPARE, c.STATE_ALREADY_RUNNING]
    assert c.ALREADY_RUNNING_ERROR in blocked.output["error"]["Error"]
    history = workflow.backends.registry.get_alias(MODEL, "production").history
    assert [change.to_version for change in history] == [champion, champion + 1]


def test_an_approval_nobody_gives_times_out_into_rejection(workflow_synth: WorkflowSynth) -> None:
    # the synthesized definition with WaitForApproval's timeout (the config's 1 h, the least it accepts) cut to 2 s
    template = json.loads(json.dumps(workflow_synth.template))
    (machine,) = [
        r
        for n, r in template["Resources"].items()
        if n.startswith("RetrainingStateMachine") and r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    waiting = '"TimeoutSeconds":3600,"ResultPath":"$.approval"'
    assert sum(isinstance(p, str) and waiting in p for p in parts) == 1
    machine["Properties"]["DefinitionString"]["Fn::Join"][1] = [
        p.replace(waiting, '"TimeoutSeconds":2,"ResultPath":"$.approval"') if isinstance(p, str) else p for p in parts
    ]
    with provisioned(template, workflow_synth.assembly_dir) as workflow:
        version = _approval_spec(workflow)
        outcome = workflow.wait(workflow.start())

        assert outcome.terminal == c.STATE_NOT_PROMOTED
        assert outcome.states[-4:] == [c.STATE_WAIT_FOR_APPROVAL, c.STATE_REJECT, c.STATE_NOTIFY_REJECTED, c.STATE_NOT_PROMOTED]
        assert (outcome.output["approval"]["approved"], outcome.output["approval"]["by"]) == (False, "timeout")
        assert workflow.backends.registry.describe(MODEL, version).status == "rejected"
        assert workflow.production() is None
        request, ended = workflow.wait_for_messages(2)
        assert f"mlops approve {MODEL} {version}" in str(request)
        assert ended["outcome"] == "rejected"
        assert "timed out" in ended["reason"]
