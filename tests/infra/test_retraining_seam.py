"""The seam the retraining workflow plugs into: drift learns the state machine's ARN and may start it, nothing more."""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Match, Template

from infra.app import ServerlessMlopsStack, build_app
from tests.infra.conftest import NO_STAGING


def test_connect_retraining_gives_drift_the_arn_and_start_execution_only() -> None:
    app = build_app(nag=False, context=NO_STAGING)
    (stack,) = [child for child in app.node.children if isinstance(child, ServerlessMlopsStack)]
    # a stand-in machine for this test only: the real one (its states) is the retraining issue's
    machine = sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "Start")))
    stack.monitoring.connect_retraining(machine)
    template = Template.from_stack(stack)
    machine_id = stack.get_logical_id(machine.node.default_child)  # type: ignore[arg-type]
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "functions.drift_check.app.lambda_handler",
            "Environment": {"Variables": Match.object_like({"MLOPS_RETRAIN_STATE_MACHINE_ARN": {"Ref": machine_id}})},
        },
    )
    policies = template.find_resources("AWS::IAM::Policy")
    starts = [
        (name, statement)
        for name, policy in policies.items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "states:StartExecution" in statement["Action"]
    ]
    assert [name for name, _ in starts] == [n for n in policies if n.startswith("MonitoringDriftCheckRoleDefaultPolicy")]
    assert starts[0][1]["Resource"] == {"Ref": machine_id}
