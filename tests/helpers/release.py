"""The release workflow as the tests drive it: the synthesized stack provisioned into moto, two registered versions
of one model (the champion in production and a candidate), guard metrics put as the inference function's EMF records
would be, and the executions and notifications of the release machine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto import mock_aws

from serverless_mlops.aws import client
from serverless_mlops.local.lambda_runtime import LocalInvoker
from serverless_mlops.local.provisioner import LocalStack, provision
from serverless_mlops.model.fit import TrainedModel
from serverless_mlops.release import contract as r
from serverless_mlops.release.control import start_release
from serverless_mlops.release.lock import ReleaseLockTable
from serverless_mlops.serving import guard_metrics as gm
from serverless_mlops.settings import Settings
from serverless_mlops.store.lifecycle import Backends, lineage_of
from serverless_mlops.store.registry import Alias

WORKFLOW_HANDLER = "functions.release_workflow.app.lambda_handler"
GUARDS_HANDLER = "functions.release_guards.app.lambda_handler"


class ReleaseHarness:
    def __init__(self, stack: LocalStack, invoker: LocalInvoker) -> None:
        self.stack = stack
        self.invoker = invoker
        self.settings = Settings(
            bucket=stack.output("ArtifactBucketName"),
            table=stack.output("RegistryTableName"),
            retraining_table=stack.output("RetrainingTableName"),
        )
        self.backends = Backends.from_settings(self.settings)
        self.registry = self.backends.registry
        self.sfn = client("stepfunctions", self.settings)
        self.cloudwatch = client("cloudwatch", self.settings)
        self.locks = ReleaseLockTable(self.settings.retraining_table, client("dynamodb", self.settings))
        self.arn = stack.output("ReleaseStateMachineArn")
        self.workflow_function = stack.function_name(WORKFLOW_HANDLER)
        self.guards_function = stack.function_name(GUARDS_HANDLER)
        sqs = self.sqs = client("sqs", self.settings)
        self.queue_url = sqs.create_queue(QueueName="release-subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        client("sns", self.settings).subscribe(
            TopicArn=stack.output("AlertTopicArn"), Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"}
        )

    # -- versions ---------------------------------------------------------------------------------------------------
    def register(self, trained: TrainedModel, run_id: str, *, release: dict[str, Any] | None = None, promote: bool = False) -> int:
        """``trained`` as a new version (its own run id), with ``release`` as its spec's release section."""
        record = trained.record
        artifact = self.backends.store.put(record.model, trained.onnx_bytes, "model.onnx")
        profile = self.backends.store.put(record.model, trained.profile_bytes, "profile.json.gz")
        spec = {**record.spec, **({"release": release} if release is not None else {})}
        entry = self.registry.register(
            record.model,
            signature=record.signature,
            artifact=artifact,
            profile=profile,
            metrics=record.metrics,
            parity=record.parity.model_dump(),
            lineage=lineage_of(record, run_id=run_id),
            created_by="tests",
            spec=spec,
        )
        if promote:
            self.registry.promote(record.model, entry.version, by="tests", reason="champion for the test")
        return entry.version

    def production(self, model: str) -> Alias:
        return self.registry.get_alias(model, "production")

    # -- guard metrics ----------------------------------------------------------------------------------------------
    def serve(self, model: str, version: int, role: gm.Role, *, requests: int, errors: int = 0, invalid: int = 0) -> None:
        """Guard metrics as the inference function publishes them (one EMF record, turned into PutMetricData)."""
        values = {gm.REQUESTS: float(requests), gm.ROWS: float(requests), gm.ERRORS: float(errors), gm.INVALID_OUTPUTS: float(invalid)}
        record = gm.emf_record(values, model=model, version=version, role=role, timestamp_ms=int(time.time() * 1000))
        namespace, data = gm.metric_data(record)
        self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)

    def shadow(self, model: str, version: int, *, requests: int, agreed: int, errors: int = 0) -> None:
        """A shadow's metrics as the inference function publishes them: ``requests`` one-row requests shadowed, of which
        ``errors`` failed and ``agreed`` of the scored rows agreed with production."""
        put_metrics(self.cloudwatch, shadow_record(model, version, requests=requests, agreed=agreed, errors=errors))

    # -- executions -------------------------------------------------------------------------------------------------
    def start(
        self, model: str, version: int, *, strategy: str | None = None, bake_seconds: int = 0, shadow_first_seconds: int | None = None
    ) -> str:
        return start_release(
            self.sfn,
            self.arn,
            self.locks,
            model,
            version,
            strategy=strategy,
            bake_seconds=bake_seconds,
            shadow_first_seconds=shadow_first_seconds,
            requested_by="test",
        )

    def start_raw(self, model: str, version: int, *, bake_seconds: int = 0) -> str:
        """Start an execution without the CLI's check (as a start that races it would)."""
        name = f"{model}-v{version}-raw-{datetime.now(UTC).strftime('%H%M%S%f')}"
        document = {"model": model, "version": version, "bake_seconds": bake_seconds}
        return str(self.sfn.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(document))["executionArn"])

    def states(self, arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]

    def wait(self, arn: str, *, timeout: float = 60, until: str | None = None) -> tuple[str, list[str], dict[str, Any]]:
        """(status, states entered, output) once the execution ends (or enters ``until``)."""
        deadline = time.monotonic() + timeout
        while True:
            described = self.sfn.describe_execution(executionArn=arn)
            states = self.states(arn)
            if described["status"] != "RUNNING" or (until is not None and until in states):
                return described["status"], states, json.loads(described.get("output") or "{}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{arn} still running after {timeout} s, in {states[-1:] or 'no state'}")
            time.sleep(0.05)

    def messages(self, *, timeout: float = 10, count: int = 1) -> list[dict[str, Any]]:
        """The next ``count`` notifications: ``{"attributes": {...}, "body": {...}}``."""
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(received)} of {count} messages after {timeout} s")
            for message in self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                received.append({"attributes": attributes, "body": json.loads(envelope["Message"]), "subject": envelope.get("Subject")})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            time.sleep(0.05)
        return received


def shadow_record(model: str, version: int, *, requests: int, agreed: int, errors: int = 0) -> dict[str, Any]:
    """One EMF record of a shadow (role ``shadow``) as serverless_mlops/serving/rollout.py publishes it, summed over
    ``requests`` one-row requests."""
    scored = requests - errors
    values = {
        gm.REQUESTS: float(requests),
        gm.ROWS: float(scored),
        gm.ERRORS: float(errors),
        gm.INVALID_OUTPUTS: 0.0,
        gm.SHADOW_COMPARED: float(scored),
        gm.SHADOW_AGREED: float(agreed),
        gm.SHADOW_PROBABILITY_DELTA: 0.5 * (scored - agreed),
    }
    return gm.emf_record(values, model=model, version=version, role=gm.SHADOW, timestamp_ms=int(time.time() * 1000))


def put_metrics(cloudwatch: Any, record: dict[str, Any]) -> None:
    namespace, data = gm.metric_data(record)
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)


@contextmanager
def release_stack(template: dict[str, Any], assembly_dir: Path) -> Iterator[ReleaseHarness]:
    """``template`` provisioned into a fresh moto with its Lambdas run in-process; when the block ends, every release
    execution has ended in one of the machine's terminal states."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), LocalInvoker() as invoker:
        stack = provision(template, assembly_dir, Settings())
        harness = ReleaseHarness(stack, invoker)
        yield harness
        for execution in harness.sfn.list_executions(stateMachineArn=harness.arn)["executions"]:
            arn = execution["executionArn"]
            try:
                status, states, _ = harness.wait(arn, timeout=20)
            finally:
                if harness.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                    harness.sfn.stop_execution(executionArn=arn, error="TestEnded")
            last = states[-1] if states else ""
            assert last in r.TERMINAL, f"{execution['name']} ended {status} in {last or 'no state'}"


def release_cli(release: ReleaseHarness, capsys: Any, *args: str) -> tuple[int, str]:
    """``mlops ARGS`` against the harness's stack: (exit code, what it printed, on one line: rich wraps at the
    terminal's width)."""
    from serverless_mlops.cli.entry_point import main

    settings = release.settings
    options = ["--bucket", settings.bucket, "--table", settings.table, "--retraining-table", settings.retraining_table]
    capsys.readouterr()
    code = main([*options, *args])
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())
