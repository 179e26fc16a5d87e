"""The seam the retraining workflow plugs into: drift learns the state machine's ARN and may start it, nothing more."""

from __future__ import annotations

from tests.helpers.template import Synth, as_list, statements


def test_connect_retraining_gives_drift_the_arn_and_start_execution_only(dev: Synth) -> None:
    machine_id = dev.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    functions = dev.resources("AWS::Lambda::Function").values()
    (drift,) = [f for f in functions if f["Properties"]["Handler"] == "functions.drift_check.app.lambda_handler"]
    assert drift["Properties"]["Environment"]["Variables"]["MLOPS_RETRAIN_STATE_MACHINE_ARN"] == {"Ref": machine_id}
    starts = [(name, s) for name, _kind, s in statements(dev) if "states:StartExecution" in as_list(s["Action"])]
    # the batch machine's Distributed Map starts its own child executions, of itself only (tests/infra/test_batch.py)
    starts = [(name, s) for name, s in starts if not name.startswith("BatchStateMachineDistributedMapPolicy")]
    # dev's specs have no retraining schedule: drift is the only starter (scheduled starts: tests/infra/test_retraining.py)
    drift_policies = [n for n in dev.resources("AWS::IAM::Policy") if n.startswith("MonitoringDriftCheckRoleDefaultPolicy")]
    assert [name for name, _ in starts] == drift_policies
    assert starts[0][1]["Resource"] == {"Ref": machine_id}
    assert as_list(starts[0][1]["Action"]) == ["states:StartExecution"]
