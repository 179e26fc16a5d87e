"""`make demo` end to end: the tour runs on the synthesized stack, each step sees what it should, nothing is left
running, and a second run works."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from rich.console import Console

from serverless_mlops.cli import main
from serverless_mlops.cli.models import tour_cli
from serverless_mlops.local.assembly import ROOT
from serverless_mlops.local.demo import DRIFTED_ROWS, DRIFTING_MODEL, QUALITY_LABELS, run_demo
from serverless_mlops.local.tour import TourResult
from serverless_mlops.retraining import contract as c
from tests.helpers.workflow import HAPPY_PATH

STACK_TEMPLATE = "serverless-mlops-dev.template.json"


def refused(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 80)) != 0


@pytest.fixture(scope="module")
def tour(dev_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TourResult, str, set[int | None]]:
    threads_before = {t.ident for t in threading.enumerate()}
    console = Console(record=True, width=200, soft_wrap=True)
    result = run_demo(cli=tour_cli(), console=console, template=dev_synth / STACK_TEMPLATE, out_dir=tmp_path_factory.mktemp("demo"))
    return result, console.export_text(), threads_before


def test_step_1_trains_and_promotes_every_deployed_model(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, output, _ = tour
    assert [(s.model, s.version) for s in result.seeded] == [("breast-cancer", 1), ("wine", 1), ("diabetes", 1)]
    assert {s.metric for s in result.seeded} == {"roc_auc", "f1", "rmse"}
    assert "breast-cancer  version 1 → production" in output


def test_step_2_predictions_over_http_come_from_the_promoted_versions(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, _, _ = tour
    initial = result.served["initial"]
    assert [(s.model, s.version, len(s.predictions)) for s in initial] == [("breast-cancer", 1, 3), ("wine", 1, 3), ("diabetes", 1, 3)]
    classifiers = {s.model: s for s in initial if s.model != "diabetes"}
    assert all(set(s.predictions) <= set(s.actual) | {0, 1, 2} for s in classifiers.values())
    assert all(isinstance(p, float) for p in next(s for s in initial if s.model == "diabetes").predictions)


def test_step_3_drifted_traffic_raises_an_alert_with_the_drift_and_a_report(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, output, _ = tour
    assert [(s.model, s.version) for s in result.served["drifted"]] == [(DRIFTING_MODEL, 1)]
    drift = result.drift
    assert drift["status"] == "drift"
    assert drift["dataset_drift"] is True
    assert drift["rows"] >= DRIFTED_ROWS  # the 1,000 drifted rows plus step 2's three, captured through S3
    assert len(drift["drifted_features"]) == 30
    assert drift["alerted"] is True
    alert = next(a for a in result.alerts if a.subject.startswith("Drift:"))
    assert alert.subject == f"Drift: {DRIFTING_MODEL} v1, 30/30 features"
    assert alert.message["model"] == DRIFTING_MODEL
    assert alert.message["version"] == 1
    assert alert.message["severity"] == "critical"
    assert alert.message["drifted_share"] == 1.0
    assert alert.message["report"] == drift["report"]["json"]
    assert result.report_html is not None
    assert result.report_html.is_file()
    html = result.report_html.read_text(encoding="utf-8")
    assert "<html" in html.lower()
    assert DRIFTING_MODEL in html
    assert f"HTML report: {result.report_html}" in output


def test_step_4_labels_by_prediction_id_give_realized_beside_estimated_accuracy_and_a_quality_alert(
    tour: tuple[TourResult, str, set[int | None]],
) -> None:
    result, output, _ = tour
    quality = result.quality
    (served,) = [v for v in quality["versions"] if v["labelled"]]
    assert (served["version"], served["labelled"]) == (1, QUALITY_LABELS)
    assert quality["join"]["joined"] == QUALITY_LABELS
    realized, estimated = served["realized"]["accuracy"], served["estimated"]["accuracy"]
    assert realized < 0.9  # the spec's floor: the drifted rows' labels say the model is wrong more often
    assert quality["status"] == "breach"
    assert estimated is not None
    alert = next(a for a in result.alerts if a.subject.startswith("Quality:"))
    assert alert.attributes["kind"] == "quality"
    assert alert.message["breaches"][0]["metric"] == "accuracy"
    assert f"accuracy realized (labels) {realized:.3f}, estimated before labels (CBPE) {estimated:.3f}" in output


def test_step_5_the_alert_starts_the_workflow_which_promotes_a_better_model(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, output, _ = tour
    assert result.drift["retraining_execution"].rsplit(":", 1)[-1].startswith(f"{DRIFTING_MODEL}-drift-")
    assert result.workflow_terminal == c.STATE_PROMOTED
    assert result.workflow_states == HAPPY_PATH
    evaluation = result.workflow_output["evaluation"]
    assert evaluation["passed"] is True
    assert evaluation["candidate"] > evaluation["champion"]["value"]
    assert result.workflow_output["promotion"] == {"alias": "production", "from_version": 1, "to_version": 2, "revision": 2}
    notices = [a.subject for a in result.alerts if not a.subject.startswith(("Drift:", "Quality:"))]
    assert any(subject.startswith(f"Retraining {DRIFTING_MODEL}: v2 promoted") for subject in notices)
    assert "promoted: breast-cancer v1 → v2 in production" in output


def test_step_6_the_new_version_serves_then_the_rollback_serves_the_old_one(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, output, _ = tour
    assert [(s.version, len(s.predictions)) for s in result.served["retrained"]] == [(2, 3)]
    assert [(s.version, len(s.predictions)) for s in result.served["rolled_back"]] == [(1, 3)]
    initial = result.served["initial"][0]
    retrained, rolled_back = result.served["retrained"][0], result.served["rolled_back"][0]
    assert initial.model == DRIFTING_MODEL  # the same three rows (same seed) in steps 2 and 6
    assert rolled_back.probabilities == initial.probabilities  # version 1 again, exactly
    assert retrained.probabilities != initial.probabilities  # version 2 is another model
    history = [(h["revision"], h["action"], h["from_version"], h["to_version"]) for h in result.history]
    assert history == [(1, "promote", None, 1), (2, "promote", 1, 2), (3, "rollback", 2, 1)]
    assert result.history[0]["by"] == "demo"
    assert result.history[1]["by"].startswith(f"retraining:{DRIFTING_MODEL}-drift-")
    assert result.history[1]["reason"].startswith("retraining (drift: dataset drift: 30 of 30 features drifted")
    assert result.history[2]["reason"] == "demo: back to the previous version"
    assert set(result.refresh_waits) == {"promotion", "rollback"}
    assert "$ mlops rollback breast-cancer --reason 'demo: back to the previous version'" in output
    assert "breast-cancer: production rolled back from version 2 to version 1 (revision 3)" in output
    assert "rev 3  rollback 2 → 1" in output


def test_step_7_the_retrained_version_goes_out_as_a_canary_and_is_promoted(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, output, _ = tour
    release = result.releases["canary"]
    assert (release["outcome"], release["version"], release["champion"]) == ("promoted", 2, 1)
    assert release["checks"][-1]["decision"] == "promote"
    assert release["checks"][-1]["candidate"]["requests"] >= 100  # the guards' minimum: real traffic on the canary
    assert result.release_traffic["canary"].get(2, 0) >= 100  # as the HTTP answers said
    assert "promoted: production → v2" in output


def test_step_8_a_broken_candidate_is_rolled_back_by_itself(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, output, _ = tour
    release = result.releases["broken"]
    assert (release["outcome"], release["version"], release["champion"]) == ("rolled_back", 3, 2)
    assert release["outcome_reason"].startswith("invalid-output rate 100% > 1% over ")
    # the broken version answered nothing: its invalid outputs fell back to the champion (counted as guard metrics);
    # v1 may answer the first requests, until the endpoint's next refresh sees step 7's promotion
    assert 3 not in result.release_traffic["broken"]
    assert result.release_traffic["broken"][2] > 0
    assert "rolled back: production stays v2; invalid-output rate 100%" in output


def test_the_summary_table_lists_every_step_and_nothing_is_left_running(tour: tuple[TourResult, str, set[int | None]]) -> None:
    result, output, threads_before = tour
    assert [s.number for s in result.steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all(s.outcome for s in result.steps)
    assert "the loop, end to end, in" in output
    for step in result.steps:
        assert step.title in output
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    assert leftover == []
    assert "the moto server and the HTTP API are stopped" in output
    assert f"then mlops ui → http://127.0.0.1:8765/models/{DRIFTING_MODEL}" in output.splitlines()[-1]  # where the console shows it
    assert result.endpoint_url
    assert result.api_url
    assert refused(result.endpoint_url)
    assert refused(result.api_url)


def _digits(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", text.rstrip())


def test_the_readme_transcript_is_what_a_run_prints_digits_aside(tour: tuple[TourResult, str, set[int | None]]) -> None:
    _, output, _ = tour
    page = (ROOT / "docs" / "local-stack.md").read_text(encoding="utf-8")
    block = page.split("<!-- demo-transcript", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    printed = {_digits(line) for line in output.splitlines()}
    shown = [line for line in block.splitlines() if line.strip()]
    assert len(shown) > 20
    assert [line for line in shown if _digits(line) not in printed] == []


def test_a_second_run_through_the_cli_works(dev_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "second"
    assert main(["--json", "demo", "--template", str(dev_synth / STACK_TEMPLATE), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    document = json.loads(printed.out)  # --json: only the document on stdout, the narration on stderr
    assert document["drift_report"] == str((out / f"drift-report-{DRIFTING_MODEL}.html").resolve())
    assert [step["step"] for step in document["steps"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [h["action"] for h in document["production_history"]] == ["promote", "promote", "rollback"]
    assert "the loop, end to end, in" in printed.err
    assert (out / f"drift-report-{DRIFTING_MODEL}.html").is_file()


def test_a_missing_template_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--template", str(tmp_path / "nope.template.json")]) == 1
    assert "no such file" in capsys.readouterr().err
