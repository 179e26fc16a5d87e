"""``mlops retrain`` driving the synthesized workflow: deployed mode (on the in-process moto) and ``--local`` (an
embedded moto server, from the synthesized template)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serverless_mlops.cli import app
from serverless_mlops.errors import DataError
from serverless_mlops.local import assembly as local_assembly
from serverless_mlops.retraining import contract as c
from serverless_mlops.retraining.specs import spec_files
from tests.helpers.specs import example_spec
from tests.helpers.workflow import HAPPY_PATH, MODEL, Workflow, WorkflowSynth


def _retrain(workflow: Workflow, *args: str) -> tuple[int, str]:
    # executions are named {model}-manual-{yyyymmddThhmmss}: a start within the same second as the previous one
    # returns that execution (retraining.control), so each start here waits for a new second
    time.sleep(1 - time.time() % 1 + 0.01)
    options = [
        "--bucket",
        workflow.settings.bucket,
        "--table",
        workflow.settings.table,
        "--retraining-table",
        workflow.settings.retraining_table,
    ]
    result = CliRunner().invoke(app, [*options, "retrain", MODEL, "--state-machine", workflow.arn, *args])
    return result.exit_code, result.output


def test_retrain_wait_json_prints_the_final_document(workflow: Workflow) -> None:
    code, output = _retrain(workflow, "--wait", "--json", "--reason", "from the CLI")
    assert code == 0, output
    # the Lambdas run in this process and log to its stdout, which CliRunner captures too: the document is last
    document = json.loads(output[output.rindex('{\n  "execution_arn"') :])
    assert (document["status"], document["state"], document["outcome"]) == ("SUCCEEDED", c.STATE_PROMOTED, "promoted")
    assert [s["name"] for s in document["states"]] == HAPPY_PATH
    assert all(s["seconds"] is not None for s in document["states"][:-1])
    assert document["output"]["reason"] == "from the CLI"
    assert document["output"]["requested_by"]
    assert workflow.production() == document["output"]["version"]["number"]


def test_retrain_no_wait_prints_the_execution_and_a_failed_wait_exits_1(workflow: Workflow) -> None:
    code, output = _retrain(workflow)
    assert code == 0, output
    assert "started breast-cancer-manual-" in output
    first = workflow.sfn.list_executions(stateMachineArn=workflow.arn)["executions"][0]["executionArn"]
    assert workflow.wait(first).terminal == c.STATE_PROMOTED
    code, output = _retrain(workflow, "--json", "--reason", "a second one")
    assert json.loads(output[output.rindex('{\n  "execution_arn"') :])["status"] == "RUNNING"
    executions = workflow.sfn.list_executions(stateMachineArn=workflow.arn)["executions"]
    (second,) = [e["executionArn"] for e in executions if e["executionArn"] != first]
    assert workflow.wait(second).terminal == c.STATE_NOT_PROMOTED  # the same data again: no better

    workflow.invoker.fail(workflow.training_function, error=DataError("bad rows"), match={"step": c.TRAIN})
    code, output = _retrain(workflow, "--wait")
    assert code == 1
    for state in (c.STATE_PREPARE, c.STATE_TRAIN, c.STATE_NOTIFY_FAILURE, c.STATE_FAILED):
        assert state in output
    assert "DataError: bad rows" in output  # the failed attempt, as it happened
    assert "failed (FAILED): RetrainingFailed" in " ".join(output.split())


def test_retrain_local_runs_the_synthesized_workflow_on_an_embedded_server(
    workflow_synth: WorkflowSynth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what synthesized() gives with no fresh assembly (the session's synth stands in for a second one)
    monkeypatch.setattr(local_assembly, "synthesized", lambda: (workflow_synth.template, workflow_synth.assembly_dir))
    result = CliRunner().invoke(app, ["retrain", MODEL, "--local", "--reason", "try it"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for state in HAPPY_PATH[:-1]:
        assert f"→ {state}" in lines
        assert any(line.startswith(f"✓ {state} ") for line in lines)
    assert "■ Promoted" in lines
    assert "promoted: breast-cancer v1 in production" in " ".join(result.output.split())


def test_retrain_local_stops_at_an_approval_it_cannot_wait_for(workflow_synth: WorkflowSynth, tmp_path: Path) -> None:
    # the same template, its published specs swapped for a folder whose spec asks for approval
    spec = example_spec(MODEL)
    spec = spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"require_approval": True})})
    specs = tmp_path / "specs"
    for relative, body in spec_files(spec).items():
        (specs / relative).parent.mkdir(parents=True, exist_ok=True)
        (specs / relative).write_bytes(body)
    (manifest,) = workflow_synth.assembly_dir.glob("*.assets.json")
    assets = json.loads(manifest.read_text())
    for asset in assets["files"].values():  # the copy lives elsewhere: point it at the assembly's staged assets
        asset["source"]["path"] = str(manifest.parent / asset["source"]["path"])
    (spec_asset,) = [h for h, a in assets["files"].items() if (Path(a["source"]["path"]) / MODEL / "spec.json").is_file()]
    assets["files"][spec_asset]["source"]["path"] = str(specs)
    (tmp_path / manifest.name).write_text(json.dumps(assets))
    template = tmp_path / "serverless-mlops-dev.template.json"
    template.write_text(json.dumps(workflow_synth.template))

    result = CliRunner().invoke(app, ["retrain", MODEL, "--local", "--template", str(template)])

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"→ {c.STATE_WAIT_FOR_APPROVAL}" in result.output.splitlines()
    assert f"waiting for approval: mlops approve {MODEL} 1 / mlops reject {MODEL} 1 --reason" in text
    assert "the local server stops with this command" in text
