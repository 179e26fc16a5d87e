"""The spec's ``release.shadow.first``: the default shadow phase of ``mlops release start`` (``--shadow-first`` overrides
it, ``--shadow-first none`` turns it off) and of the retraining workflow's hand-over (``retraining.promote_with:
release``), run through the machines the CDK app synthesizes on moto's Step Functions with their Lambdas in-process.

No traffic reaches either version here, so every release ends rolled back for too little traffic (``max_extensions:
0``): what is checked is the shadow phase each release was started with, in its execution input and its states."""

from __future__ import annotations

import json

import pytest

from serverless_mlops.cli.entry_point import main
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.release_spec import ReleaseSpec, ShadowPhase
from serverless_mlops.release import contract as r
from serverless_mlops.release.control import wait_for_end
from serverless_mlops.retraining import contract as c
from tests.helpers.release import ReleaseHarness
from tests.helpers.specs import example_spec
from tests.helpers.workflow import MODEL, Workflow

SHADOW_PATH = [r.STATE_BEGIN, r.STATE_SHADOW_FIRST, r.STATE_SET_SHADOW, r.STATE_SHADOW_BAKE, r.STATE_CHECK_SHADOW, r.STATE_SHADOW_DECIDE]
CANARY_PATH = [r.STATE_BEGIN, r.STATE_SHADOW_FIRST, r.STATE_SET_WEIGHT, r.STATE_BAKE, r.STATE_CHECK_GUARDS, r.STATE_DECIDE]
ROLLED_BACK = [r.STATE_ROLLBACK, r.STATE_NOTIFY_ROLLED_BACK, r.STATE_ROLLED_BACK]
SHADOW_FIRST = {"shadow": {"first": "1s"}, "max_extensions": 0}  # a 1 s shadow phase, judged once


def _start(release: ReleaseHarness, capsys: pytest.CaptureFixture[str], version: int, *options: str) -> tuple[int, str, str | None]:
    """``mlops release start MODEL VERSION --bake 0s OPTIONS``: (exit code, what it printed, the execution it started)."""
    settings = release.settings
    before = {e["executionArn"] for e in release.sfn.list_executions(stateMachineArn=release.arn)["executions"]}
    capsys.readouterr()
    code = main(
        [
            *("--bucket", settings.bucket, "--table", settings.table, "--retraining-table", settings.retraining_table),
            *("release", "start", MODEL, str(version), "--bake", "0s", "--state-machine", release.arn, *options),
        ]
    )
    captured = capsys.readouterr()
    started = [e["executionArn"] for e in release.sfn.list_executions(stateMachineArn=release.arn)["executions"]]
    new = [arn for arn in started if arn not in before]
    return code, " ".join((captured.out + captured.err).split()), new[0] if new else None


def _input(release: ReleaseHarness, arn: str) -> dict[str, object]:
    document: dict[str, object] = json.loads(release.sfn.describe_execution(executionArn=arn)["input"])
    return document


def test_the_spec_sets_the_cli_default_and_the_option_overrides_it(
    release: ReleaseHarness, weak_champion: TrainedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    release.register(weak_champion, "champion", promote=True)
    candidate = release.register(weak_champion, "candidate", release=SHADOW_FIRST)

    # no --shadow-first: the spec's release.shadow.first, recorded in the execution's input
    code, text, arn = _start(release, capsys, candidate)
    assert (code, arn is not None) == (0, True), text
    assert arn is not None
    assert _input(release, arn)["shadow_first_seconds"] == 1
    status, states, output = release.wait(arn)
    assert (status, states) == ("SUCCEEDED", [*SHADOW_PATH, *ROLLED_BACK])
    assert output["plan"]["shadow"] == {"bake_seconds": 1, "sample": 1.0, "min_agreement": 0.9}
    assert output["outcome_reason"].startswith("shadow phase: too little traffic to judge")
    history = [(change.action, change.by) for change in release.production(MODEL).history]
    assert ("shadow", f"release:{arn.rsplit(':', 1)[-1]}") in history

    # --shadow-first none: no shadow phase for this release, straight to the first weight
    code, text, arn = _start(release, capsys, candidate, "--shadow-first", "None")
    assert (code, arn is not None) == (0, True), text
    assert arn is not None
    assert "shadow_first_seconds" not in _input(release, arn)
    status, states, output = release.wait(arn)
    assert (status, states) == ("SUCCEEDED", [*CANARY_PATH, *ROLLED_BACK])
    assert output["plan"].get("shadow") is None  # the document leaves out what is unset

    # a duration overrides the spec's
    code, text, arn = _start(release, capsys, candidate, "--shadow-first", "0s")
    assert (code, arn is not None) == (0, True), text
    assert arn is not None
    assert _input(release, arn)["shadow_first_seconds"] == 0
    status, states, _ = release.wait(arn)
    assert (status, states) == ("SUCCEEDED", [*SHADOW_PATH, *ROLLED_BACK])

    # a bad option names the option and what it takes; nothing starts
    code, text, arn = _start(release, capsys, candidate, "--shadow-first", "off")
    assert (code, text, arn) == (
        1,
        "error: --shadow-first: expected a duration like 30s, 10m or 1h, got 'off' (none: no shadow phase)",
        None,
    )


def test_a_spec_without_shadow_first_starts_no_shadow_phase_and_a_bad_stored_one_is_named(
    release: ReleaseHarness, weak_champion: TrainedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    release.register(weak_champion, "champion", promote=True)
    plain = release.register(weak_champion, "plain", release={"max_extensions": 0})
    broken = release.register(weak_champion, "broken", release={"shadow": {"first": "25h"}})  # stored without validation

    code, text, arn = _start(release, capsys, broken)
    assert (code, text, arn) == (1, "error: the version's spec: release.shadow.first: at most 24h, got '25h'", None)

    code, text, arn = _start(release, capsys, plain)
    assert (code, arn is not None) == (0, True), text
    assert arn is not None
    assert "shadow_first_seconds" not in _input(release, arn)
    status, states, _ = release.wait(arn)
    assert (status, states) == ("SUCCEEDED", [*CANARY_PATH, *ROLLED_BACK])


def test_retraining_hands_over_a_release_with_the_specs_shadow_phase(workflow: Workflow, weak_champion: TrainedModel) -> None:
    """``retraining.promote_with: release`` and ``release.shadow.first``: the release Promote starts shadows first."""
    spec = example_spec(MODEL)
    retraining = spec.retraining.model_copy(update={"promote_with": "release"})
    release_section = ReleaseSpec(strategy="canary10-1s", max_extensions=0, shadow=ShadowPhase(first="1s"))
    workflow.publish_spec(spec.model_copy(update={"retraining": retraining, "release": release_section}))
    champion = workflow.register_champion(weak_champion)
    outcome = workflow.wait(workflow.start())

    assert (outcome.status, outcome.terminal) == ("SUCCEEDED", c.STATE_PROMOTED)
    handed = outcome.output["promotion"]["release"]
    document = json.loads(workflow.sfn.describe_execution(executionArn=handed)["input"])
    assert (document["version"], document["shadow_first_seconds"], document["requested_by"]) == (
        outcome.output["promotion"]["to_version"],
        1,
        "retraining",
    )
    assert {"strategy", "bake_seconds"}.isdisjoint(document)  # Begin reads them from the candidate's spec
    described = wait_for_end(workflow.sfn, handed, timeout=30)
    assert workflow.states(handed) == [*SHADOW_PATH, *ROLLED_BACK]
    output = json.loads(described["output"])
    assert output["plan"]["shadow"] == {"bake_seconds": 1, "sample": 1.0, "min_agreement": 0.9}
    assert output["outcome_reason"].startswith("shadow phase: too little traffic to judge")
    alias = workflow.backends.registry.get_alias(MODEL, "production")
    release_id = handed.rsplit(":", 1)[-1]
    assert [(h.action, h.by) for h in alias.history if h.release_id == release_id] == [
        ("shadow", f"release:{release_id}"),
        ("shadow-clear", f"release:{release_id}"),
    ]
    assert (alias.version, alias.shadow, alias.canary) == (champion, None, None)  # the candidate never served
