"""Least privilege around approvals, read from the synthesized template (issue 15, "Least privilege and approvals").

- Task tokens live in the retraining table, which only the release function and the approver policy may read; the
  training function may touch its lock items only (``dynamodb:LeadingKeys``), and nothing else is granted on it.
- The state machine logs no execution data (WaitForApproval's parameters carry the token).
- Training reads the registry and cannot write it; only the release function and the releaser policy move aliases.
- CDK's BucketDeployment runs as a role that reaches ``specs/`` of the artifact bucket only.
- The approver and releaser managed policies are stack outputs.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

from serverless_mlops.retraining import contract as c
from serverless_mlops.retraining.table import RetrainingTable
from tests.helpers.template import Synth, as_list, dumps, statements

REGISTRY_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:*"}
TRAINING = "RetrainingTrainingRoleDefaultPolicy"
RELEASE = "RetrainingReleaseRoleDefaultPolicy"
APPROVER = "RetrainingApproverPolicy"
RELEASER = "RetrainingReleaserPolicy"


def _on(synth: Synth, logical_id: str) -> dict[str, list[dict[str, Any]]]:
    """Owner (logical id without its hash) → the statements whose Resource names ``logical_id``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, _kind, statement in statements(synth):
        if statement.get("Effect") == "Allow" and f'"{logical_id}"' in dumps(statement.get("Resource")):
            found.setdefault(name[:-8], []).append(statement)
    return found


def _actions(found: list[dict[str, Any]]) -> set[str]:
    return {action for statement in found for action in as_list(statement["Action"])}


def _leading_keys(statement: dict[str, Any]) -> list[str] | None:
    return statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")  # type: ignore[no-any-return]


def test_task_tokens_are_readable_by_the_release_function_and_approvers_only(synth: Synth) -> None:
    table = synth.resource_id("AWS::DynamoDB::GlobalTable", "RetrainingTable")
    grants = _on(synth, table)
    assert set(grants) == {TRAINING, RELEASE, APPROVER}  # not inference, not drift, not the state machine
    # training: its lock items only, single-item actions (a Scan names no key, so a LeadingKeys condition cannot hold it)
    assert [(_leading_keys(s), sorted(as_list(s["Action"]))) for s in grants[TRAINING]] == [
        ([f"{c.LOCK_PREFIX}*"], ["dynamodb:GetItem", "dynamodb:PutItem"])
    ]
    # approvers: the approval items only (read the token, record the decision), not locks
    assert [(_leading_keys(s), sorted(as_list(s["Action"]))) for s in grants[APPROVER]] == [
        ([f"{c.APPROVAL_PREFIX}*"], ["dynamodb:GetItem", "dynamodb:UpdateItem"])
    ]
    assert _actions(grants[RELEASE]) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert not {"dynamodb:Scan", "dynamodb:Query", "dynamodb:*"} & _actions([s for found in grants.values() for s in found])


def test_the_conditions_match_the_items_the_code_writes() -> None:
    lock = RetrainingTable.lock_key("wine")["pk"]["S"]
    approval = RetrainingTable.approval_key("wine", 7)["pk"]["S"]
    assert fnmatchcase(lock, f"{c.LOCK_PREFIX}*")
    assert not fnmatchcase(lock, f"{c.APPROVAL_PREFIX}*")
    assert fnmatchcase(approval, f"{c.APPROVAL_PREFIX}*")
    assert not fnmatchcase(approval, f"{c.LOCK_PREFIX}*")


def test_only_the_retraining_functions_know_the_retraining_table(synth: Synth) -> None:
    table = synth.resource_id("AWS::DynamoDB::GlobalTable", "RetrainingTable")
    for name, function in synth.resources("AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        retraining = function["Properties"]["Handler"] in ("functions.training.app.lambda_handler", "functions.release.app.lambda_handler")
        assert (variables.get("MLOPS_RETRAINING_TABLE") == {"Ref": table}) == retraining, name


def test_the_machine_logs_no_execution_data_and_only_wait_for_approval_carries_the_token(synth: Synth) -> None:
    machine = synth.resources("AWS::StepFunctions::StateMachine")[
        synth.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    ]
    assert machine["Properties"]["LoggingConfiguration"]["IncludeExecutionData"] is False
    body = machine["Properties"]["DefinitionString"]
    text = "".join(p if isinstance(p, str) else "<>" for p in body["Fn::Join"][1]) if isinstance(body, dict) else body
    states = json.loads(text)["States"]
    carriers = {name for name, state in states.items() if "$$.Task.Token" in json.dumps(state.get("Parameters", {}))}
    assert carriers == {c.STATE_WAIT_FOR_APPROVAL}
    # its result is the decision an approver sent ({approved, by, reason}), kept under $.approval
    assert states[c.STATE_WAIT_FOR_APPROVAL]["ResultPath"] == "$.approval"


def test_training_cannot_write_the_registry_and_only_releases_move_aliases(synth: Synth) -> None:
    registry = synth.resource_id("AWS::DynamoDB::GlobalTable", "RegistryTable")
    grants = _on(synth, registry)
    assert _actions(grants[TRAINING]) & REGISTRY_WRITES == set()
    assert "dynamodb:GetItem" in _actions(grants[TRAINING])  # it reads the champion
    writers = {owner for owner, found in grants.items() if _actions(found) & REGISTRY_WRITES}
    assert writers == {RELEASE, RELEASER}


def test_people_policies_are_stack_outputs_with_what_each_command_needs(synth: Synth) -> None:
    machine = synth.resource_id("AWS::StepFunctions::StateMachine", "RetrainingStateMachine")
    registry = synth.resource_id("AWS::DynamoDB::GlobalTable", "RegistryTable")
    policies = synth.resources("AWS::IAM::ManagedPolicy")
    approver, releaser = synth.resource_id("AWS::IAM::ManagedPolicy", APPROVER), synth.resource_id("AWS::IAM::ManagedPolicy", RELEASER)
    for output, policy in (("ApproverPolicyArn", approver), ("ReleaserPolicyArn", releaser)):
        assert synth.raw["Outputs"][output]["Value"] == {"Ref": policy}
        assert synth.raw["Outputs"][output]["Export"]["Name"] == f"{synth.stack.stack_name}-{output}"
    table = synth.resource_id("AWS::DynamoDB::GlobalTable", "RetrainingTable")
    assert synth.raw["Outputs"]["RetrainingTableName"]["Value"] == {"Ref": table}

    approving = policies[approver]["Properties"]["PolicyDocument"]["Statement"]
    (send,) = [s for s in approving if "states:SendTaskSuccess" in as_list(s["Action"])]
    assert (sorted(as_list(send["Action"])), send["Resource"]) == (["states:SendTaskFailure", "states:SendTaskSuccess"], {"Ref": machine})
    (registry_read,) = [s for s in approving if f'"{registry}"' in dumps(s["Resource"])]
    assert as_list(registry_read["Action"]) == ["dynamodb:GetItem"]  # mlops approve checks the model exists
    releasing = policies[releaser]["Properties"]["PolicyDocument"]["Statement"]
    assert [(sorted(as_list(s["Action"])), s["Resource"]) for s in releasing] == [
        (["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"], {"Fn::GetAtt": [registry, "Arn"]})
    ]
    # no wildcard anywhere in the people's policies
    assert "*" not in "".join(a for p in (approving, releasing) for s in p for a in as_list(s["Action"]))


def test_the_specs_deployment_reaches_specs_only(synth: Synth) -> None:
    bucket = synth.resource_id("AWS::S3::Bucket", "ArtifactsBucket")
    (handler_id,) = [n for n in synth.resources("AWS::Lambda::Function") if n.startswith("CustomCDKBucketDeployment")]
    role = synth.raw["Resources"][handler_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = {n: p for n, p in synth.resources("AWS::IAM::Policy").items() if {"Ref": role} in p["Properties"]["Roles"]}
    (policy_id,) = policies
    on_bucket = [s for s in policies[policy_id]["Properties"]["PolicyDocument"]["Statement"] if f'"{bucket}"' in dumps(s["Resource"])]
    objects = {r["Fn::Join"][1][-1] for s in on_bucket for r in as_list(s["Resource"]) if "Fn::Join" in r}
    assert objects == {f"/{c.SPECS_PREFIX}/*"}
    (listing,) = [s for s in on_bucket if "s3:ListBucket" in as_list(s["Action"])]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{c.SPECS_PREFIX}/", f"{c.SPECS_PREFIX}/*"]}}
    bucket_level = {a for s in on_bucket if s["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]} for a in as_list(s["Action"])}
    assert bucket_level == {"s3:ListBucket", "s3:GetBucketTagging"}
    # no policy anywhere else is attached to that role (CDK's own grants went nowhere), and no managed policy either
    assert "ManagedPolicyArns" not in synth.raw["Resources"][role]["Properties"]
    # the copy waits for the role's policy
    (deployment,) = synth.resources("Custom::CDKBucketDeployment").values()
    assert policy_id in deployment["DependsOn"]
