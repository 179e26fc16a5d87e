"""The workflow document and the pure parts of the release steps: parsing, outcome, failed state, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from serverless_mlops.retraining.contract import (
    RELEASE_STEPS,
    STATE_EVALUATE,
    STATE_NOTIFY_PROMOTED,
    STATE_NOTIFY_REJECTED,
    STATE_PREPARE,
    STATE_PROMOTE,
    STATE_REGISTER,
    STATE_REGISTER_REJECTED,
    STATE_REJECT,
    STATE_TRAIN,
    STATE_WAIT_FOR_APPROVAL,
)
from serverless_mlops.retraining.release_steps import _subject, failed_state, notification_message, outcome_of
from serverless_mlops.retraining.state import TaskError, WorkflowState, WorkflowStateError, parse_task_event

REF = {"uri": "s3://b/artifacts/m/abc/model.onnx", "sha256": "abc", "size": 1}
DATA = {
    "spec_uri": "s3://b/specs/m/spec.json",
    "uri": "s3://b/snapshots/m/abc.csv",
    "sha256": "abc",
    "rows": 10,
    "base_rows": 10,
    "feedback_rows": 0,
    "lock_owner": "arn",
}
CANDIDATE = {"run_id": "r", "record": "s3://b/runs/m/x/run.json", "artifact": REF, "profile": REF, "metrics": {"f1": 0.9}, "parity": {}}


def _evaluation(passed: bool = True, require_approval: bool = False, champion: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metric": "f1",
        "higher_is_better": True,
        "candidate": 0.9612345,
        "champion": champion,
        "min_improvement": 0.0,
        "holdout_rows": 40,
        "parity": {"passed": True},
        "passed": passed,
        "reason": "f1 0.9612 beats champion v1 (0.95) by 0.01123 ≥ 0",
        "require_approval": require_approval,
    }


def _state(**parts: Any) -> WorkflowState:
    return WorkflowState.model_validate({"model": "wine", "trigger": "drift", **parts})


def test_the_document_drops_nulls_keeps_unknown_keys_and_round_trips() -> None:
    state = _state(data=DATA, candidate=CANDIDATE, evaluation=_evaluation(), extra_key={"kept": True})
    document = state.document()
    assert "champion" not in document["evaluation"]
    assert "reason" not in document
    assert document["extra_key"] == {"kept": True}
    assert WorkflowState.model_validate(document) == state
    assert json.loads(json.dumps(document)) == document


def test_a_catch_error_keeps_its_step_functions_keys() -> None:
    cause = json.dumps({"errorType": "DataError", "errorMessage": "s3://b/feedback/m/x.csv: missing column 'a'"})
    state = _state(error={"Error": "DataError", "Cause": cause})
    assert state.error is not None
    assert state.error.error_type == "DataError"
    assert state.error.message == "s3://b/feedback/m/x.csv: missing column 'a'"
    assert state.document()["error"] == {"Error": "DataError", "Cause": cause}
    plain = TaskError(Error="States.Timeout", Cause="the task timed out")
    assert (plain.error_type, plain.message) == ("States.Timeout", "the task timed out")
    odd = TaskError(Error="E", Cause="[1]")
    assert (odd.error_type, odd.message) == ("E", "[1]")


def test_parse_task_event_names_an_unknown_step_and_bad_fields() -> None:
    with pytest.raises(ValueError, match="unknown step 'prepare': this function runs register, request_approval"):
        parse_task_event({"step": "prepare"}, RELEASE_STEPS)
    with pytest.raises(WorkflowStateError, match="expected a task event object, got list"):
        parse_task_event([], RELEASE_STEPS)
    with pytest.raises(WorkflowStateError, match=r"invalid notify task event: state\.model: .*; execution: Field required"):
        parse_task_event({"step": "notify", "state": {"model": ""}, "execution_name": "n"}, RELEASE_STEPS)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({}, STATE_PREPARE),
        ({"data": DATA}, STATE_TRAIN),
        ({"data": DATA, "candidate": CANDIDATE}, STATE_EVALUATE),
        ({"data": DATA, "candidate": CANDIDATE, "evaluation": _evaluation()}, STATE_REGISTER),
        ({"data": DATA, "candidate": CANDIDATE, "evaluation": _evaluation(passed=False)}, STATE_REGISTER_REJECTED),
        (
            {"data": DATA, "candidate": CANDIDATE, "evaluation": _evaluation(passed=False), "version": {"number": 2, "status": "rejected"}},
            STATE_NOTIFY_REJECTED,
        ),
        (
            {
                "data": DATA,
                "candidate": CANDIDATE,
                "evaluation": _evaluation(require_approval=True),
                "version": {"number": 2, "status": "registered"},
            },
            STATE_WAIT_FOR_APPROVAL,
        ),
        (
            {
                "data": DATA,
                "candidate": CANDIDATE,
                "evaluation": _evaluation(require_approval=True),
                "version": {"number": 2, "status": "registered"},
                "approval": {"approved": False, "by": "a"},
            },
            STATE_REJECT,
        ),
        (
            {"data": DATA, "candidate": CANDIDATE, "evaluation": _evaluation(), "version": {"number": 2, "status": "registered"}},
            STATE_PROMOTE,
        ),
        (
            {
                "data": DATA,
                "candidate": CANDIDATE,
                "evaluation": _evaluation(),
                "version": {"number": 2, "status": "registered"},
                "promotion": {"alias": "production", "to_version": 2, "revision": 1},
            },
            STATE_NOTIFY_PROMOTED,
        ),
    ],
)
def test_failed_state_is_the_first_state_whose_result_is_missing(parts: dict[str, Any], expected: str) -> None:
    assert failed_state(_state(**parts)) == expected


def test_outcome_error_wins_a_timeout_is_a_rejection() -> None:
    assert outcome_of(_state(error={"Error": "X", "Cause": ""})) == "failed"
    assert outcome_of(_state(error={"Error": "States.Timeout", "Cause": ""})) == "rejected"
    assert outcome_of(_state(promotion={"alias": "production", "to_version": 2, "revision": 1})) == "promoted"
    assert outcome_of(_state()) == "rejected"


def test_subjects_are_ascii_and_at_most_100_characters() -> None:
    assert _subject("a → b ≥ c é\nx") == "a -> b >= c ? x"
    long = _subject("x" * 150)
    assert len(long) == 100
    assert long.endswith("...")


def _message(**parts: Any) -> tuple[str, str, dict[str, Any]]:
    return notification_message(_state(**parts), execution_arn="arn:x")


def test_promoted_message_for_a_first_version_and_an_unscorable_champion() -> None:
    base = {"data": DATA, "candidate": CANDIDATE, "version": {"number": 1, "status": "registered"}}
    promotion = {"alias": "production", "to_version": 1, "revision": 1}
    outcome, subject, body = _message(**base, evaluation=_evaluation(), promotion=promotion)
    assert outcome == "promoted"
    assert subject == "Retraining wine: v1 promoted, f1 0.9612 (first production version)"
    unscorable = _evaluation(champion={"version": 4, "value": None, "alias_revision": 2})
    approval = {"approved": True, "by": "ann"}
    _, subject, body = _message(**base, evaluation=unscorable, promotion=promotion, approval=approval)
    assert "(v4 could not be scored)" in subject
    assert body["reason"].endswith("; approved by ann")
    assert body["champion"] == {"version": 4, "value": None, "alias_revision": 2}


def test_rejected_messages_say_who_or_what_said_no() -> None:
    base = {"data": DATA, "candidate": CANDIDATE, "evaluation": _evaluation(), "version": {"number": 5, "status": "rejected"}}
    _, subject, body = _message(**base, approval={"approved": False, "by": "bob", "reason": "worse on class 2"})
    assert body["reason"] == "rejected by bob: worse on class 2"
    assert subject == "Retraining wine: v5 not promoted, rejected by bob: worse on class 2"
    _, _, body = _message(**base, approval={"approved": False, "by": "timeout", "reason": "approval timed out: nobody"})
    assert body["reason"] == "approval timed out: nobody"
    _, _, body = _message(**base, error={"Error": "States.Timeout", "Cause": ""})
    assert body["reason"].startswith("approval timed out")
    _, subject, body = _message()
    assert (subject, body["reason"], body["version"], body["metric"]) == (
        "Retraining wine: not promoted, not promoted",
        "not promoted",
        None,
        None,
    )


def test_release_steps_import_no_training_libraries() -> None:
    """The release function runs in the inference layer: no scikit-learn, pandas, skl2onnx or scipy, even transitively;
    and none of its steps computes, so numpy (a quarter of its import time) stays out of its import path too."""
    code = (
        "import sys, functions.release.app, serverless_mlops.retraining.release_steps, serverless_mlops.retraining.control; "
        "print(sorted(m for m in ('sklearn', 'pandas', 'skl2onnx', 'scipy', 'onnx', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_recent_labelled_rows_in_the_input_are_validated_and_kept() -> None:
    digest = "a" * 64
    recent = {"uri": f"s3://b/holdout-recent/m/w/{digest}.csv", "sha256": digest, "rows": 120, "window": "w"}
    event = {"step": "evaluate", "state": {"model": "m", "trigger": "quality", "recent": recent}, "execution": "arn", "execution_name": "n"}
    parsed = parse_task_event(event, ("evaluate",))
    assert parsed.state.recent is not None
    assert parsed.state.document()["recent"] == recent
    bad = [
        ({"uri": f"s3://b/feedback/m/{digest}.csv"}, r"state\.recent\.uri: String should match pattern"),  # training reads feedback/
        ({"sha256": "abc"}, r"state\.recent\.sha256: String should match pattern"),
        ({"rows": 0}, r"state\.recent\.rows: Input should be greater than or equal to 1"),
        (
            {"uri": f"s3://b/holdout-recent/other/w/{digest}.csv"},
            r"recent\.uri: s3://b/holdout-recent/other/.* is not under holdout-recent/m/",
        ),
    ]
    for change, message in bad:
        with pytest.raises(WorkflowStateError, match=message):
            parse_task_event(event | {"state": {"model": "m", "recent": recent | change}}, ("evaluate",))
