"""``mlops release start --shadow-first``: the release machine the CDK app synthesizes, run on moto's Step Functions
with its Lambdas in-process, starts with a shadow phase (the candidate scores production's requests in the
background, never answering) and goes on to its canary steps only if the shadow agreed with production.

The shadow's metrics are put as the inference function's EMF records would be (role ``shadow``, with the compared and
agreed rows); every test ends with each execution in a terminal state (the ``release`` fixture checks it)."""

from __future__ import annotations

import json

import pytest

from serverless_mlops.errors import DataError
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.release import contract as r
from serverless_mlops.serving.guard_metrics import CANARY, PRODUCTION
from serverless_mlops.store.registry import Shadow
from tests.helpers.release import ReleaseHarness, release_cli
from tests.helpers.workflow import MODEL

SHADOW_PATH = [r.STATE_BEGIN, r.STATE_SHADOW_FIRST, r.STATE_SET_SHADOW, r.STATE_SHADOW_BAKE, r.STATE_CHECK_SHADOW, r.STATE_SHADOW_DECIDE]
CANARY_PATH = [r.STATE_SET_WEIGHT, r.STATE_BAKE, r.STATE_CHECK_GUARDS, r.STATE_DECIDE]
ROLLED_BACK = [r.STATE_ROLLBACK, r.STATE_NOTIFY_ROLLED_BACK, r.STATE_ROLLED_BACK]


def test_a_shadow_that_agrees_goes_on_to_the_canary_and_is_promoted(release: ReleaseHarness, versions: tuple[int, int]) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, strategy="canary10-10m", bake_seconds=2, shadow_first_seconds=2)
    release.wait(arn, until=r.STATE_SHADOW_BAKE)
    alias = release.production(MODEL)
    # the candidate shadows production on the spec's default sample, owned by the release; it serves nobody
    assert alias.canary is None
    release_id = arn.rsplit(":", 1)[-1]
    assert alias.shadow == Shadow(version=candidate, sample=1.0, release_id=release_id)
    assert (alias.history[-1].action, alias.history[-1].by) == ("shadow", f"release:{release_id}")
    release.shadow(MODEL, candidate, requests=300, agreed=291)
    release.serve(MODEL, champion, PRODUCTION, requests=300)
    release.wait(arn, until=r.STATE_BAKE)
    alias = release.production(MODEL)
    assert alias.shadow is None  # cleared before the first weight
    assert alias.canary is not None
    assert alias.canary.weight == 10
    release.serve(MODEL, candidate, CANARY, requests=200)
    release.serve(MODEL, champion, PRODUCTION, requests=1800)
    status, states, output = release.wait(arn)

    assert status == "SUCCEEDED"
    assert states == [*SHADOW_PATH, *CANARY_PATH, r.STATE_PROMOTE, r.STATE_NOTIFY_PROMOTED, r.STATE_PROMOTED]
    assert release.production(MODEL).version == candidate
    shadow_check, canary_check = output["checks"]
    assert (shadow_check["phase"], shadow_check["weight"], shadow_check["decision"]) == ("shadow", 0, "advance")
    assert shadow_check["agreement"] == {"compared": 300, "agreed": 291, "probability_delta": 4.5}
    assert shadow_check["reason"] == "shadow phase: passed: agreement 97% over 300 rows, error rate 0% over 300 shadowed requests"
    assert canary_check["phase"] == "canary"
    actions = [(c.action, c.reason) for c in release.production(MODEL).history if c.release_id == release_id]
    assert actions[:2] == [("shadow", "shadow phase: 100% of production's requests for 2 s"), ("shadow-clear", shadow_check["reason"])]
    (message,) = release.messages()
    assert message["attributes"] == {"kind": "release", "model": MODEL, "outcome": "promoted"}
    assert message["body"]["shadow_first"] == {"bake_seconds": 2, "sample": 1.0, "min_agreement": 0.9}
    assert [check["phase"] for check in message["body"]["checks"]] == ["shadow", "canary"]
    described = release.sfn.describe_execution(executionArn=arn)
    assert json.loads(described["input"])["shadow_first_seconds"] == 2


def test_a_shadow_that_disagrees_ends_the_release_before_the_candidate_serves(release: ReleaseHarness, versions: tuple[int, int]) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, bake_seconds=0, shadow_first_seconds=2)
    release.wait(arn, until=r.STATE_SHADOW_BAKE)
    release.shadow(MODEL, candidate, requests=300, agreed=123)
    release.serve(MODEL, champion, PRODUCTION, requests=300)
    status, states, output = release.wait(arn)

    assert status == "SUCCEEDED"
    assert states == [*SHADOW_PATH, *ROLLED_BACK]
    reason = "shadow phase: agreement 41% < 90% over 300 rows (release.shadow.min_agreement)"
    assert (output["outcome"], output["outcome_reason"]) == ("rolled_back", reason)
    alias = release.production(MODEL)
    assert (alias.version, alias.canary, alias.shadow) == (champion, None, None)
    # the candidate was never a canary: the alias only ever shadowed it, and the check cleared that, saying why
    assert [c.action for c in alias.history if c.release_id == output["release_id"]] == ["shadow", "shadow-clear"]
    assert alias.history[-1].reason == reason
    (message,) = release.messages()
    assert message["attributes"] == {"kind": "release", "model": MODEL, "outcome": "rolled_back"}
    assert message["body"]["reason"] == reason
    assert "agreement 41% < 90% over 300 rows" in message["subject"]
    assert release.locks.get(MODEL) is None


def test_shadow_errors_over_the_error_threshold_roll_back(release: ReleaseHarness, versions: tuple[int, int]) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, bake_seconds=0, shadow_first_seconds=2)
    release.wait(arn, until=r.STATE_SHADOW_BAKE)
    release.shadow(MODEL, candidate, requests=200, agreed=170, errors=30)
    release.serve(MODEL, champion, PRODUCTION, requests=200)
    status, states, output = release.wait(arn)

    assert (status, states) == ("SUCCEEDED", [*SHADOW_PATH, *ROLLED_BACK])
    assert output["outcome_reason"] == "shadow phase: error rate 15% > 1% over 200 requests"
    assert release.production(MODEL).shadow is None


def test_abort_during_the_shadow_phase_clears_the_shadow_and_nothing_else_is_allowed(
    release: ReleaseHarness, versions: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    champion, candidate = versions
    arn = release.start(MODEL, candidate, bake_seconds=0, shadow_first_seconds=4)
    release.wait(arn, until=r.STATE_SHADOW_BAKE)
    code, text = release_cli(release, capsys, "release", "status", MODEL)
    assert code == 0, text
    assert f"shadow: v{candidate} scores 100% of requests in the background (shadow phase of release breast-cancer-v2-" in text
    assert ", RUNNING in ShadowBake" in text, text
    # while the release owns the shadow, nobody else moves it or production
    code, text = release_cli(release, capsys, "shadow", "stop", MODEL)
    assert (code, "stopping its shadow is refused while it runs" in text, "mlops release abort breast-cancer" in text) == (1, True, True)
    code, text = release_cli(release, capsys, "shadow", "start", MODEL, str(candidate), "--sample", "0.5")
    assert (code, "a shadow of version 2 is refused while it runs" in text) == (1, True)
    code, text = release_cli(release, capsys, "promote", MODEL, str(candidate))
    assert (code, "mlops release abort" in text) == (1, True)
    code, text = release_cli(release, capsys, "release", "abort", MODEL, "--reason", "wrong candidate")
    assert code == 0, text
    assert release.production(MODEL).shadow is None  # before the workflow noticed
    status, states, output = release.wait(arn)

    assert (status, states) == ("SUCCEEDED", [*SHADOW_PATH, *ROLLED_BACK])
    assert output["outcome_reason"].startswith("shadow phase: aborted by arn:aws:sts::")
    assert output["outcome_reason"].endswith("wrong candidate")
    alias = release.production(MODEL)
    assert (alias.version, alias.canary, alias.shadow) == (champion, None, None)
    (message,) = release.messages()
    assert message["body"]["reason"] == output["outcome_reason"]


def test_a_failing_shadow_check_clears_the_shadow_and_notifies_the_failure(release: ReleaseHarness, versions: tuple[int, int]) -> None:
    champion, candidate = versions
    release.invoker.fail(release.guards_function, error=DataError("metrics unreadable"))
    status, states, _ = release.wait(release.start(MODEL, candidate, shadow_first_seconds=0))

    assert status == "FAILED"
    assert states[-4:] == [r.STATE_CHECK_SHADOW, r.STATE_ROLLBACK_ON_FAILURE, r.STATE_NOTIFY_FAILURE, r.STATE_FAILED]
    alias = release.production(MODEL)
    assert (alias.version, alias.shadow) == (champion, None)
    assert alias.history[-1].action == "shadow-clear"
    (message,) = release.messages()
    assert "DataError: metrics unreadable" in message["body"]["reason"]


def test_a_quiet_shadow_phase_ends_as_low_traffic_says(release: ReleaseHarness, weak_champion: TrainedModel) -> None:
    champion = release.register(weak_champion, "champion", promote=True)
    rollback = release.register(weak_champion, "quiet", release={"max_extensions": 1})
    status, states, output = release.wait(release.start(MODEL, rollback, shadow_first_seconds=0))
    assert (status, states) == ("SUCCEEDED", [*SHADOW_PATH, r.STATE_SHADOW_BAKE, r.STATE_CHECK_SHADOW, r.STATE_SHADOW_DECIDE, *ROLLED_BACK])
    assert [check["decision"] for check in output["checks"]] == ["wait", "rollback"]
    assert output["outcome_reason"] == (
        "shadow phase: too little traffic to judge: 0 shadowed requests < 100 needed (guards.min_requests) after 1 extra bakes "
        "(low_traffic: rollback)"
    )
    assert release.production(MODEL).version == champion
    release.messages()

    onward = release.register(weak_champion, "onward", release={"max_extensions": 0, "low_traffic": "promote"})
    status, states, output = release.wait(release.start(MODEL, onward, shadow_first_seconds=0))
    assert (status, states) == ("SUCCEEDED", [*SHADOW_PATH, *CANARY_PATH, r.STATE_PROMOTE, r.STATE_NOTIFY_PROMOTED, r.STATE_PROMOTED])
    assert output["checks"][0]["reason"].startswith("shadow phase: too little traffic to judge, going on to the canary as configured")
    assert release.production(MODEL).version == onward


def test_a_shadow_already_on_production_refuses_a_shadow_first_release(
    release: ReleaseHarness, versions: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, candidate = versions
    release.registry.set_shadow(MODEL, candidate, 0.2, by="someone")
    status, states, _ = release.wait(release.start(MODEL, candidate, shadow_first_seconds=0))

    assert (status, states[-1]) == ("FAILED", r.STATE_FAILED)
    assert r.STATE_SET_SHADOW not in states
    assert release.production(MODEL).shadow == Shadow(version=candidate, sample=0.2)  # not ours: left alone
    (message,) = release.messages()
    assert "production already has a shadow (v2 on 20% of requests)" in message["body"]["reason"]
    assert "mlops shadow stop breast-cancer" in message["body"]["reason"]
    code, text = release_cli(release, capsys, "release", "status", MODEL)
    assert (code, "shadow: v2 scores 20% of requests in the background (set by hand)" in text) == (0, True)


def test_shadow_first_is_parsed_like_a_bake_and_recorded_in_the_execution_input(
    release: ReleaseHarness, versions: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, candidate = versions
    machine = ["--state-machine", release.arn]
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate), "--shadow-first", "30 minutes", *machine)
    assert (code, text) == (1, "error: --shadow-first: expected a duration like 30s, 10m or 1h, got '30 minutes' (none: no shadow phase)")
    code, text = release_cli(release, capsys, "release", "start", MODEL, str(candidate), "--shadow-first", "25h", *machine)
    assert (code, text) == (1, "error: --shadow-first: at most 24h, got '25h' (none: no shadow phase)")
    assert release.sfn.list_executions(stateMachineArn=release.arn)["executions"] == []
    code, text = release_cli(
        release, capsys, "release", "start", MODEL, str(candidate), "--shadow-first", "0s", "--bake", "0s", "--wait", *machine
    )
    assert code == 0, text
    assert "breast-cancer v2: rolled_back: shadow phase: too little traffic to judge" in text
    (execution,) = release.sfn.list_executions(stateMachineArn=release.arn)["executions"]
    document = json.loads(release.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert (document["shadow_first_seconds"], document["bake_seconds"]) == (0, 0)
