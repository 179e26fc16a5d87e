"""The release workflow the CDK app synthesizes, run on moto's Step Functions interpreter with its Lambdas in-process:
guard metrics are put as the inference function's EMF records would be (moto's GetMetricData returns them).

Every test ends with each release execution in a terminal state (the ``release`` fixture checks it)."""

from __future__ import annotations

import json

import pytest

from serverless_mlops.cli.entry_point import main
from serverless_mlops.errors import DataError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.release_spec import ReleaseSpec
from serverless_mlops.release import contract as r
from serverless_mlops.release.control import abort_release, release_status, wait_for_end
from serverless_mlops.retraining import contract as c
from serverless_mlops.serving.guard_metrics import CANARY, PRODUCTION
from tests.helpers.release import ReleaseHarness, release_cli
from tests.helpers.specs import example_spec
from tests.helpers.workflow import MODEL, Workflow

STEP_PATH = [r.STATE_SET_WEIGHT, r.STATE_BAKE, r.STATE_CHECK_GUARDS, r.STATE_DECIDE]
CANARY_PATH = [r.STATE_BEGIN, r.STATE_SHADOW_FIRST, *STEP_PATH]  # no --shadow-first: straight to the first weight


def test_a_healthy_canary_is_promoted(release: ReleaseHarness, versions: tuple[int, int]) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, strategy="canary10-10m", bake_seconds=2)
    release.wait(arn, until=r.STATE_BAKE)
    assert release.production(MODEL).canary is not None
    assert release.production(MODEL).canary.weight == 10  # type: ignore[union-attr]
    release.serve(MODEL, candidate, CANARY, requests=200)
    release.serve(MODEL, champion, PRODUCTION, requests=1800, errors=2)
    status, states, output = release.wait(arn)

    assert status == "SUCCEEDED"
    assert states == [*CANARY_PATH, r.STATE_PROMOTE, r.STATE_NOTIFY_PROMOTED, r.STATE_PROMOTED]
    alias = release.production(MODEL)
    assert (alias.version, alias.canary) == (candidate, None)
    assert alias.history[-1].action == "promote"
    assert alias.history[-1].by == f"release:{output['release_id']}"
    (check,) = output["checks"]
    assert check["candidate"]["requests"] == 200
    assert check["champion"]["errors"] == 2
    (message,) = release.messages()
    assert message["attributes"] == {"kind": "release", "model": MODEL, "outcome": "promoted"}
    assert message["body"]["reason"].startswith("guards passed: error rate 0% over 200 requests")
    assert release.locks.get(MODEL) is None


def test_an_error_burst_on_the_candidate_is_rolled_back_with_the_reason(release: ReleaseHarness, versions: tuple[int, int]) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, strategy="linear20-10m", bake_seconds=2)
    release.wait(arn, until=r.STATE_BAKE)
    release.serve(MODEL, candidate, CANARY, requests=200, errors=30)
    release.serve(MODEL, champion, PRODUCTION, requests=800, errors=1)
    status, states, output = release.wait(arn)

    assert status == "SUCCEEDED"
    assert states == [*CANARY_PATH, r.STATE_ROLLBACK, r.STATE_NOTIFY_ROLLED_BACK, r.STATE_ROLLED_BACK]
    reason = "error rate 15% > 1% over 200 requests"
    assert output["outcome"] == "rolled_back"
    assert output["outcome_reason"] == reason
    alias = release.production(MODEL)
    assert (alias.version, alias.canary) == (champion, None)  # production never moved
    # CheckGuards cleared the canary the moment it decided, with the reason in the alias history
    cleared = alias.history[-1]
    assert (cleared.action, cleared.reason, cleared.release_id) == ("canary-clear", reason, output["release_id"])
    (message,) = release.messages()
    assert message["attributes"]["outcome"] == "rolled_back"
    assert message["body"]["reason"] == reason
    assert reason in message["subject"]


def test_too_little_traffic_waits_then_rolls_back(release: ReleaseHarness, weak_champion: TrainedModel) -> None:
    champion = release.register(weak_champion, "champion", promote=True)
    candidate = release.register(weak_champion, "quiet", release={"max_extensions": 2})
    release.serve(MODEL, candidate, CANARY, requests=10)
    status, states, output = release.wait(release.start(MODEL, candidate, bake_seconds=0))

    assert status == "SUCCEEDED"
    assert states[-3:] == [r.STATE_ROLLBACK, r.STATE_NOTIFY_ROLLED_BACK, r.STATE_ROLLED_BACK]
    assert states.count(r.STATE_CHECK_GUARDS) == 3
    assert [check["decision"] for check in output["checks"]] == ["wait", "wait", "rollback"]
    assert output["outcome_reason"] == (
        "too little traffic to judge: 10 requests on the candidate < 100 needed (guards.min_requests) after 2 extra bakes "
        "(low_traffic: rollback)"
    )
    assert release.production(MODEL).version == champion


def test_too_little_traffic_promotes_when_the_spec_says_so_after_every_linear_step(
    release: ReleaseHarness, weak_champion: TrainedModel
) -> None:
    release.register(weak_champion, "champion", promote=True)
    candidate = release.register(weak_champion, "quiet", release={"max_extensions": 0, "low_traffic": "promote", "strategy": "linear40-1m"})
    status, states, output = release.wait(release.start(MODEL, candidate, bake_seconds=0))

    assert status == "SUCCEEDED"
    assert states == [*CANARY_PATH, *STEP_PATH, r.STATE_PROMOTE, r.STATE_NOTIFY_PROMOTED, r.STATE_PROMOTED]
    assert [(check["weight"], check["decision"]) for check in output["checks"]] == [(40, "advance"), (80, "promote")]
    assert "low_traffic: promote" in output["outcome_reason"]
    assert release.production(MODEL).version == candidate


def test_abort_mid_release_puts_all_traffic_back_at_once(
    release: ReleaseHarness, versions: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, bake_seconds=3)
    release.wait(arn, until=r.STATE_BAKE)
    code, text = release_cli(release, capsys, "release", "abort", MODEL, "--reason", "latency looks off")
    assert code == 0, text
    assert "all of breast-cancer's traffic is on production" in text
    assert release.production(MODEL).canary is None  # before the workflow noticed
    status, states, output = release.wait(arn)

    assert status == "SUCCEEDED"
    assert states[-1] == r.STATE_ROLLED_BACK
    assert output["outcome_reason"].startswith("aborted by arn:aws:sts::")
    assert output["outcome_reason"].endswith("latency looks off")
    assert release.production(MODEL).version == champion
    code, text = release_cli(release, capsys, "release", "abort", MODEL)
    assert (code, "has no release running" in text) == (1, True)


def test_a_second_release_is_refused_while_one_runs(
    release: ReleaseHarness, versions: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, candidate = versions
    arn = release.start(MODEL, candidate, bake_seconds=2)
    release.wait(arn, until=r.STATE_BAKE)
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate), "--state-machine", release.arn)
    assert code == 1
    assert "is already being released: release breast-cancer-v2-" in text
    assert "mlops release abort breast-cancer" in text
    # a start that raced past that check ends in AlreadyRunning, touching nothing
    status, states, _ = release.wait(release.start_raw(MODEL, candidate))
    assert (status, states) == ("SUCCEEDED", [r.STATE_BEGIN, r.STATE_ALREADY_RUNNING])
    code, text = release_cli(release, capsys, "release", "status", MODEL)
    assert code == 0, text
    assert "canary v2 at 10% (release breast-cancer-v2-" in text
    assert ", RUNNING in " in text
    abort_release(release.registry, release.locks, MODEL, by="test")
    release.wait(arn)


def test_a_promotion_by_hand_during_a_release_is_refused(
    release: ReleaseHarness, versions: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, bake_seconds=2)
    release.wait(arn, until=r.STATE_BAKE)
    code, text = release_cli(release, capsys, "promote", MODEL, str(candidate))
    assert code == 1
    assert "mlops release abort" in text
    assert release.production(MODEL).version == champion
    abort_release(release.registry, release.locks, MODEL, by="test")
    release.wait(arn)
    status = release_status(release.registry, release.locks, MODEL)
    assert (status.production, status.canary, status.release) == (champion, None, None)


def test_a_failing_check_clears_the_canary_and_notifies_the_failure(release: ReleaseHarness, versions: tuple[int, int]) -> None:
    champion, candidate = versions
    release.invoker.fail(release.guards_function, error=DataError("metrics unreadable"))
    status, states, _ = release.wait(release.start(MODEL, candidate, bake_seconds=0))

    assert status == "FAILED"
    assert states[-4:] == [r.STATE_CHECK_GUARDS, r.STATE_ROLLBACK_ON_FAILURE, r.STATE_NOTIFY_FAILURE, r.STATE_FAILED]
    alias = release.production(MODEL)
    assert (alias.version, alias.canary) == (champion, None)
    (message,) = release.messages()
    assert message["attributes"]["outcome"] == "failed"
    assert "DataError: metrics unreadable" in message["body"]["reason"]
    assert release.locks.get(MODEL) is None


def test_retraining_hands_a_better_candidate_to_the_release_workflow(workflow: Workflow, weak_champion: TrainedModel) -> None:
    """``retraining.promote_with: release``: Promote starts a release of the new version instead of switching."""
    spec = example_spec(MODEL)
    retraining = spec.retraining.model_copy(update={"promote_with": "release"})
    release_section = ReleaseSpec(strategy="canary10-1s", max_extensions=0)  # no traffic here: too little to judge
    workflow.publish_spec(spec.model_copy(update={"retraining": retraining, "release": release_section}))
    champion = workflow.register_champion(weak_champion)
    outcome = workflow.wait(workflow.start())

    assert (outcome.status, outcome.terminal) == ("SUCCEEDED", c.STATE_PROMOTED)
    promotion = outcome.output["promotion"]
    assert promotion["from_version"] == champion
    assert promotion["release"].startswith(workflow.stack.output("ReleaseStateMachineArn").replace(":stateMachine:", ":execution:"))
    (message,) = workflow.messages()
    assert message["release"] == promotion["release"]
    described = wait_for_end(workflow.sfn, promotion["release"], timeout=30)
    output = json.loads(described["output"])
    assert (output["version"], output["champion"], output["requested_by"]) == (promotion["to_version"], champion, "retraining")
    assert output["outcome"] == "rolled_back"  # the rules of docs/releasing.md, not an instant switch
    assert workflow.production() == champion


def test_the_release_commands_wait_answer_json_and_refuse_bad_options(
    release: ReleaseHarness, versions: tuple[int, int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, candidate = versions
    monkeypatch.delenv("MLOPS_RELEASE_STATE_MACHINE_ARN", raising=False)
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate))
    assert (code, "no release state machine: pass --state-machine ARN" in text) == (1, True)
    machine = ["--state-machine", release.arn]
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate), "--strategy", "blue-green", *machine)
    assert (code, "--strategy: expected all-at-once" in text) == (1, True)
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate), "--bake", "5 minutes", *machine)
    assert (code, "--bake: expected a duration like 30s" in text) == (1, True)
    code, text = release_cli(release, capsys, "release", "start", MODEL, "9", *machine)
    assert code == 1
    # no traffic: too little to judge after the extra bakes, rolled back; --wait reports it and exits 0 (it ended)
    settings = release.settings
    options = ["--bucket", settings.bucket, "--table", settings.table, "--retraining-table", settings.retraining_table]
    capsys.readouterr()
    code = main([*options, "release", "start", MODEL, str(candidate), "--bake", "0s", "--wait", "--json", *machine])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = captured.out
    document = json.loads(printed[printed.rindex('{\n  "execution_arn"') :])
    assert (document["status"], document["output"]["outcome"]) == ("SUCCEEDED", "rolled_back")
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate), "--bake", "0s", "--wait", *machine)
    assert code == 0
    assert "breast-cancer v2: rolled_back: too little traffic to judge" in text
    code, text = release_cli(release, capsys, "release", "status", MODEL)
    assert "no release running" in text
    capsys.readouterr()
    assert main([*options, "release", "status", MODEL, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["production"], status["canary"], status["release"]) == (1, None, None)
    # started without --wait: the execution's name, then abort --json
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate), "--bake", "2s", *machine)
    assert (code, "releasing breast-cancer v2: breast-cancer-v2-" in text) == (0, True)
    (running,) = [e["executionArn"] for e in release.sfn.list_executions(stateMachineArn=release.arn, statusFilter="RUNNING")["executions"]]
    release.wait(running, until=r.STATE_BAKE)  # Begin has taken the lock
    capsys.readouterr()
    assert main([*options, "release", "abort", MODEL, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["aborted_by"].startswith("arn:aws:sts::")
