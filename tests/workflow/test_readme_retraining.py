"""The retraining page (docs/retraining.md) shows real output: its notification has the fields a subscriber receives, and
its `mlops retrain --local` transcript lists the states a promotion passes, in their order."""

from __future__ import annotations

import json
import re
from typing import Any

from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.retraining import contract as c
from tests.helpers.specs import ROOT
from tests.helpers.workflow import HAPPY_PATH, Workflow


def _section() -> str:
    return (ROOT / "docs" / "retraining.md").read_text(encoding="utf-8")


def _block(language: str, containing: str) -> str:
    """The one fenced block of ``language`` ("" for a plain fence) in the section whose text contains ``containing``."""
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    lines: list[str] = []
    for line in _section().splitlines():
        if fence is None and line.startswith("```"):
            fence, lines = line[3:].strip(), []
        elif fence is not None and line.strip() == "```":
            blocks.append((fence, "\n".join(lines)))
            fence = None
        elif fence is not None:
            lines.append(line)
    [block] = [text for kind, text in blocks if kind == language and containing in text]
    return block


def _shape(value: Any) -> Any:
    """Keys and value types, recursively: what a subscriber's parser relies on."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


def test_the_notification_shown_is_what_a_no_better_retrain_publishes(workflow: Workflow, trained_models: dict[str, TrainedModel]) -> None:
    shown = json.loads(_block("json", '"type": "retraining"'))
    workflow.register_champion(trained_models["breast-cancer"])  # the example spec's own data: a retrain cannot beat it
    outcome = workflow.wait(workflow.start(reason="run 1"))
    assert outcome.terminal == c.STATE_NOT_PROMOTED
    (message,) = workflow.messages()
    assert _shape(message) == _shape(shown)
    assert (message["type"], message["outcome"]) == ("retraining", "rejected")
    assert (message["trigger"], message["trigger_reason"]) == ("manual", "run 1")
    assert re.fullmatch(r"\S+ [\d.]+ does not beat champion v1 \([\d.]+\) by at least [\d.]+ \(change [+-][\d.e-]+\).*", message["reason"])


def test_the_local_transcript_lists_a_promotions_states_in_order() -> None:
    transcript = _block("", "mlops retrain breast-cancer --local")
    entered = re.findall(r"^→ (\S+)", transcript, flags=re.MULTILINE)
    finished = re.findall(r"^✓ (\S+) +[\d.]+ s$", transcript, flags=re.MULTILINE)
    assert entered
    assert finished
    for shown in (entered, finished):  # the transcript elides the middle with "…": what it shows is in the real order
        positions = [HAPPY_PATH.index(name) for name in shown]
        assert positions == sorted(positions)
    assert f"■ {c.STATE_PROMOTED}" in transcript
    assert entered[0] == HAPPY_PATH[0]
    assert finished[-1] == HAPPY_PATH[-2]
