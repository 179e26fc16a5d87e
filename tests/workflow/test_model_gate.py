"""``mlops retrain-if-changed`` (the model gate a deploy pipeline runs after each stage) against the synthesized
retraining workflow on moto: a model with nothing in production retrains and is promoted; the same spec again starts
nothing; a drift-only change starts nothing; a change to the estimator retrains, and a failed retraining exits 1."""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

from serverless_mlops.cli import main
from serverless_mlops.errors import DataError
from serverless_mlops.retraining import contract as c
from tests.helpers.specs import example_spec
from tests.helpers.workflow import MODEL, Workflow


def gate(workflow: Workflow, *args: str) -> tuple[int, list[str]]:
    time.sleep(1 - time.time() % 1 + 0.01)  # executions are named per second (see tests/workflow/test_cli.py)
    settings = workflow.settings
    options = ["--bucket", settings.bucket, "--table", settings.table, "--retraining-table", str(settings.retraining_table)]
    code, out, err = run(*options, "retrain-if-changed", "--model", MODEL, "--state-machine", workflow.arn, "--poll-seconds", "0.1", *args)
    # the Lambdas run in this process and log JSON lines to the same stdout
    return code, [line for line in out if not line.startswith("{")] + err


def run(*args: str) -> tuple[int, list[str], list[str]]:
    """``mlops ARGS`` as the pipeline runs it: exit status, stdout and stderr lines."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue().splitlines(), err.getvalue().splitlines()


def executions(workflow: Workflow) -> list[dict[str, Any]]:
    return list(workflow.sfn.list_executions(stateMachineArn=workflow.arn)["executions"])


def test_the_gate_retrains_a_changed_spec_and_not_a_drift_only_change(workflow: Workflow) -> None:
    code, lines = gate(workflow)
    assert code == 0, lines
    assert lines[0] == f"↻ {MODEL}: retraining: nothing in production"
    assert f"■ {c.STATE_PROMOTED}" in lines
    assert f"promoted: {MODEL} v1 in production" in " ".join(" ".join(lines).split())
    assert workflow.production() == 1
    (first,) = executions(workflow)
    assert "deploy: nothing in production" in workflow.sfn.describe_execution(executionArn=first["executionArn"])["input"]

    code, lines = gate(workflow)
    assert (code, lines[0].split(":", 2)[:2]) == (0, [f"- {MODEL}", " no retraining"]), lines  # production is this spec
    spec = example_spec(MODEL)
    workflow.publish_spec(spec.model_copy(update={"drift": spec.drift.model_copy(update={"p_value": 0.01, "window_hours": 48})}))
    code, lines = gate(workflow)
    assert (code, lines) == (
        0,
        [f"- {MODEL}: no retraining: no model field changed (drift, evaluation and description apply without a new model)"],
    )
    assert len(executions(workflow)) == 1  # neither started anything

    params = {**spec.estimator.params, "max_iter": 321}
    workflow.publish_spec(spec.model_copy(update={"estimator": spec.estimator.model_copy(update={"params": params})}))
    code, lines = gate(workflow, "--dry-run")
    assert (code, lines) == (0, [f"↻ {MODEL}: retraining: the spec changed what the model is trained from: estimator.params"])
    assert len(executions(workflow)) == 1

    workflow.invoker.fail(workflow.training_function, error=DataError("bad rows"), match={"step": c.TRAIN})
    code, lines = gate(workflow)
    assert code == 1, lines
    assert lines[0] == f"↻ {MODEL}: retraining: the spec changed what the model is trained from: estimator.params"
    assert f"■ {c.STATE_FAILED}" in lines
    assert lines[-1] == f"error: retraining after the deploy did not put the deployed spec in production: {MODEL} (failed)"
    assert len(executions(workflow)) == 2


def test_without_a_workflow_or_a_model_the_gate_says_what_to_pass(workflow: Workflow) -> None:
    code, _, err = run("--bucket", workflow.settings.bucket, "retrain-if-changed", "--model", MODEL)
    assert (code, err) == (1, ["error: no retraining workflow: pass --state-machine ARN or --stack NAME (its StateMachineArn output)"])
    code, _, err = run("retrain-if-changed")
    assert (code, err) == (1, ["error: no model to decide for: pass --model NAME, or --stack NAME whose inference function serves models"])
