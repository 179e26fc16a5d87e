"""The seam the retraining workflow plugs into: drift and the quality check learn the state machine's ARN and may start
it, nothing more."""

from __future__ import annotations

from tests.helpers.template import Synth, as_list, statements


def test_connect_retraining_gives_drift_and_quality_the_arn_and_start_execution_only(dev: Synth) -> None:
    machine_id = dev.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    release = dev.resource_id("AWS::StepFunctions::StateMachine", "ReleaseStateMachine")
    functions = dev.resources("AWS::Lambda::Function").values()
    for handler in ("functions.drift_check.app.lambda_handler", "functions.quality_check.app.lambda_handler"):
        (found,) = [f for f in functions if f["Properties"]["Handler"] == handler]
        assert found["Properties"]["Environment"]["Variables"]["MLOPS_RETRAIN_STATE_MACHINE_ARN"] == {"Ref": machine_id}
    starts = [
        (name, s)
        for name, _kind, s in statements(dev)
        if "states:StartExecution" in as_list(s["Action"]) and s["Resource"] != {"Ref": release}  # issue 17's machine: its own test
    ]
    # the batch machine's Distributed Map starts its own child executions, of itself only (tests/infra/test_batch.py)
    starts = [(name, s) for name, s in starts if not name.startswith("BatchStateMachineDistributedMapPolicy")]
    # dev's specs have no retraining schedule: drift and quality are the only starters (scheduled: tests/infra/test_retraining.py)
    prefixes = ("MonitoringDriftCheckRoleDefaultPolicy", "MonitoringQualityCheckRoleDefaultPolicy")
    policies = [n for n in dev.resources("AWS::IAM::Policy") if n.startswith(prefixes)]
    assert sorted(name for name, _ in starts) == sorted(policies)
    assert len(policies) == 2
    for _, statement in starts:
        assert statement["Resource"] == {"Ref": machine_id}
        assert as_list(statement["Action"]) == ["states:StartExecution"]
