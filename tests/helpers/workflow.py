"""The retraining workflow as the tests drive it: the synthesized stack provisioned into moto, its executions and alerts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto import mock_aws

from serverless_mlops.aws import client
from serverless_mlops.local.lambda_runtime import LocalInvoker
from serverless_mlops.local.provisioner import LocalStack, provision
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.model.spec import ModelSpec
from serverless_mlops.retraining import contract as c
from serverless_mlops.retraining.control import start_retraining
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, register_run
from tests.helpers.specs import ROOT

MODEL = "breast-cancer"
TRAINING_HANDLER = "functions.training.app.lambda_handler"
RELEASE_HANDLER = "functions.release.app.lambda_handler"
TERMINAL = (c.STATE_PROMOTED, c.STATE_NOT_PROMOTED, c.STATE_ALREADY_RUNNING, c.STATE_FAILED)

TEST_CONFIG = f"""
stage: dev
models: [{ROOT}/models/{MODEL}.yaml]
retraining:
  retry: {{interval_seconds: 1, backoff_rate: 1.0, max_attempts: 3}}
  approval_timeout_hours: 1
batch:  # 2 KiB shards (a few per object), retried once after 1 s
  shard_mb: 0.002
  max_concurrency: 2
  retry: {{interval_seconds: 1, backoff_rate: 1.0, max_attempts: 1}}
"""


@dataclass(frozen=True)
class WorkflowSynth:
    template: dict[str, Any]
    assembly_dir: Path
    config: Path


# the states a promoting execution passes, in order
HAPPY_PATH = [
    c.STATE_PREPARE,
    c.STATE_TRAIN,
    c.STATE_EVALUATE,
    c.STATE_GATE,
    c.STATE_REGISTER,
    c.STATE_NEEDS_APPROVAL,
    c.STATE_PROMOTE,
    c.STATE_NOTIFY_PROMOTED,
    c.STATE_PROMOTED,
]


@dataclass
class Outcome:
    """How an execution ended: its status, the last state it entered, its output document, the states it passed."""

    arn: str
    status: str
    terminal: str
    output: dict[str, Any]
    states: list[str]
    error: str | None


class Workflow:
    """The provisioned stack plus the clients and helpers the workflow tests use."""

    def __init__(self, stack: LocalStack, invoker: LocalInvoker) -> None:
        self.stack = stack
        self.invoker = invoker
        self.settings = Settings(
            bucket=stack.output("ArtifactBucketName"),
            table=stack.output("RegistryTableName"),
            retraining_table=stack.output("RetrainingTableName"),
        )
        self.backends = Backends.from_settings(self.settings)
        self.sfn = client("stepfunctions", self.settings)
        self.s3 = client("s3", self.settings)
        self.sqs = client("sqs", self.settings)
        self.arn = stack.output("StateMachineArn")
        self.training_function = stack.function_name(TRAINING_HANDLER)
        self.release_function = stack.function_name(RELEASE_HANDLER)
        # a subscriber of the alert topic, as a person's mailbox would be
        self.queue_url = self.sqs.create_queue(QueueName="alert-subscriber")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        client("sns", self.settings).subscribe(
            TopicArn=stack.output("AlertTopicArn"), Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
        )

    def register_champion(self, trained: TrainedModel) -> int:
        entry = register_run(trained, self.backends, by="test")
        self.backends.registry.promote(MODEL, entry.version, by="test", reason="champion for the test")
        return entry.version

    def publish_spec(self, spec: ModelSpec) -> None:
        from serverless_mlops.retraining.specs import publish_specs

        publish_specs([spec], self.s3, self.settings.bucket)

    def start(self, *, trigger: str = "manual", reason: str = "test", name: str | None = None) -> str:
        if name is None:
            return start_retraining(self.sfn, self.arn, MODEL, trigger=trigger, reason=reason, requested_by="test")
        document = {"model": MODEL, "trigger": trigger, "reason": reason}
        return str(self.sfn.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(document))["executionArn"])

    def wait(self, arn: str, *, timeout: float = 60, until: str | None = None) -> Outcome:
        """Poll until the execution ends (or, with ``until``, until it enters that state); returns how it stands."""
        deadline = time.monotonic() + timeout
        while True:
            described = self.sfn.describe_execution(executionArn=arn)
            states = self.states(arn)
            if described["status"] != "RUNNING" or (until is not None and until in states):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{arn} still running after {timeout} s, in {states[-1:] or 'no state'}")
            time.sleep(0.05)
        output = json.loads(described.get("output") or "{}")
        return Outcome(arn, described["status"], states[-1] if states else "", output, states, described.get("error"))

    def states(self, arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]

    def messages(self) -> list[dict[str, Any]]:
        """The alert topic's messages the subscriber has received so far (JSON bodies)."""
        received: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return received
            for message in batch:
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for_messages(self, count: int, *, timeout: float = 30) -> list[dict[str, Any]]:
        """The next ``count`` messages, waiting for them (a task publishes after its state was entered)."""
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(received)} of {count} messages after {timeout} s: {received}")
            received += self.messages()
            time.sleep(0.05)
        return received

    def production(self) -> int | None:
        from serverless_mlops.errors import NotFoundError

        try:
            return self.backends.registry.get_alias(MODEL, "production").version
        except NotFoundError:
            return None


@contextmanager
def provisioned(template: dict[str, Any], assembly_dir: Path) -> Iterator[Workflow]:
    """``template`` provisioned into a fresh moto, its Lambdas run in-process; when the block ends, every execution
    has ended in one of the workflow's terminal states (the check every workflow test gets)."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), LocalInvoker() as invoker:
        stack = provision(template, assembly_dir, Settings())
        harness = Workflow(stack, invoker)
        yield harness
        for execution in harness.sfn.list_executions(stateMachineArn=harness.arn)["executions"]:
            try:
                ended = harness.wait(execution["executionArn"], timeout=10)
            finally:
                if harness.sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING":
                    harness.sfn.stop_execution(executionArn=execution["executionArn"], error="TestEnded")
            assert ended.terminal in TERMINAL, f"{execution['name']} ended in {ended.terminal!r}"
