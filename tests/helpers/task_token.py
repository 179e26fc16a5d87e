"""A hand-written waitForTaskToken machine on moto's Step Functions (a stand-in for WaitForApproval), its token, its end."""

from __future__ import annotations

import json
import time
from typing import Any

ROLE = "arn:aws:iam::123456789012:role/sfn"


def waiting_machine(sfn: Any, sqs: Any, timeout: int = 60) -> tuple[str, str]:
    """A machine whose one task sends its token to a new SQS queue and waits; (machine ARN, queue URL)."""
    queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
    definition = {
        "StartAt": "WaitForApproval",
        "States": {
            "WaitForApproval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                "ResultPath": "$.approval",
                "TimeoutSeconds": timeout,
                "End": True,
            }
        },
    }
    arn = sfn.create_state_machine(name="approval", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    return arn, queue


def task_token(sqs: Any, queue: str) -> str:
    """The token a waiting execution sent to ``queue`` (fails after 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1).get("Messages", [])
        if messages:
            return str(json.loads(messages[0]["Body"])["token"])
        time.sleep(0.05)
    raise AssertionError("the execution never sent its task token")


def finished(sfn: Any, arn: str) -> dict[str, Any]:
    """The description of execution ``arn`` once it stops running (fails after 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        description = sfn.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING":
            return dict(description)
        time.sleep(0.05)
    raise AssertionError(f"{arn} still running")
