"""The whole stack on one machine: what ``mlops local up``, ``make demo`` and the end-to-end tests run.

:func:`local_environment` starts an embedded moto server on 127.0.0.1, provisions into it what the synthesized
template names (:func:`serverless_mlops.local.provisioner.provision`: bucket, registry table, alert topic, functions with
the template's names and environment, the retraining state machine, the published specs), runs the Lambda functions
in this process (:class:`~serverless_mlops.local.lambda_runtime.LocalInvoker`), serves the HTTP API with ``mlops serve``'s
server in front of the inference function, and subscribes a local inbox (an SQS queue) to the alert topic. What a
client process needs to use it is one JSON document, :class:`LocalInfo`.

The client-side helpers work from any process given a :class:`LocalInfo`: :func:`fire_schedules` is the local
stand-in for EventBridge (it sends each schedule's input to its target through moto's Lambda Invoke API),
:func:`receive_alerts` reads the inbox, :func:`seed_models` trains the deployed specs from S3 and promotes them.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from serverless_mlops.aws import client
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.local.deployment import LocalDeployment, deployed_locally
from serverless_mlops.local.lambda_runtime import LocalInvoker
from serverless_mlops.local.metrics import EmfForwarder
from serverless_mlops.local.moto import FAKE_CREDENTIALS
from serverless_mlops.local.provisioner import LocalStack
from serverless_mlops.local.schedules import ScheduledTarget, scheduled_targets, transform_input
from serverless_mlops.local.template import DEFAULT_STACK
from serverless_mlops.settings import Settings

if TYPE_CHECKING:
    from serverless_mlops.local.http_api import LocalServer

# the handlers the CDK app deploys, by the short name clients use
HANDLERS = {
    "inference": "functions.inference.app.lambda_handler",
    "drift_check": "functions.drift_check.app.lambda_handler",
    "quality_check": "functions.quality_check.app.lambda_handler",
    "training": "functions.training.app.lambda_handler",
    "release": "functions.release.app.lambda_handler",
}
INFERENCE_FLUSH = "functions.inference.app.flush"
OUTPUTS = {"bucket": "ArtifactBucketName", "table": "RegistryTableName", "topic": "AlertTopicArn", "machine": "StateMachineArn"}
# outputs a stack may lack (a template synthesized before the release and batch workflows)
OPTIONAL_OUTPUTS = {
    "release_machine": "ReleaseStateMachineArn",
    "batch_machine": "BatchStateMachineArn",
    "retraining_table": "RetrainingTableName",
}
TEMPLATE_SUFFIX = ".template.json"
ALERTS_QUEUE_SUFFIX = "local-alerts"
# what API Gateway's HTTP API answers when the integration's function fails
FUNCTION_ERROR_RESPONSE = {
    "statusCode": 500,
    "headers": {"content-type": "application/json"},
    "body": '{"message":"Internal Server Error"}',
}


class LocalInfo(BaseModel):
    """What a client process needs to use a running local stack (``mlops local up`` writes it to its state file)."""

    pid: int
    started_at: str
    stack_name: str
    region: str
    endpoint_url: str
    api_url: str
    bucket: str
    table: str
    alert_topic_arn: str
    state_machine_arn: str
    # the release and batch machines and the retraining table (optional: a state file written before they existed)
    release_state_machine_arn: str | None = None
    batch_state_machine_arn: str | None = None
    retraining_table: str | None = None
    alerts_queue_url: str
    functions: dict[str, str]
    models: list[str]
    schedules: list[ScheduledTarget] = Field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(endpoint_url=self.endpoint_url, region=self.region, bucket=self.bucket, table=self.table)

    def environment(self) -> dict[str, str]:
        """The variables that point every ``mlops`` command (and boto3) at this stack: ``eval "$(mlops local env)"``."""
        return {
            "MLOPS_ENDPOINT_URL": self.endpoint_url,
            "MLOPS_BUCKET": self.bucket,
            "MLOPS_TABLE": self.table,
            "MLOPS_RETRAIN_STATE_MACHINE_ARN": self.state_machine_arn,
            **{
                name: value
                for name, value in (
                    ("MLOPS_RELEASE_STATE_MACHINE_ARN", self.release_state_machine_arn),  # mlops release, mlops ui
                    ("MLOPS_BATCH_STATE_MACHINE_ARN", self.batch_state_machine_arn),  # mlops batch score
                    ("MLOPS_RETRAINING_TABLE", self.retraining_table),  # the retraining and release locks
                )
                if value is not None
            },
            "MLOPS_API_URL": self.api_url,
            "AWS_DEFAULT_REGION": self.region,
            **FAKE_CREDENTIALS,
        }


# -- client side ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    """One schedule target invoked: the event sent, and what the function returned (or its error)."""

    target: ScheduledTarget
    event: dict[str, Any]
    result: Any
    errored: bool
    seconds: float


def fire_schedules(info: LocalInfo, model: str | None = None, now: datetime | None = None, *, function: str | None = None) -> list[Fired]:
    """Fire the template's schedules now (all, or those whose input names ``model``; only those targeting the
    function ``function``, a short name such as ``drift_check``, if given), as EventBridge would: each
    target gets the rule's input through moto's Lambda Invoke API. The event time is the end of the current minute,
    so what was captured up to now falls inside the window of a check that ends at the event time."""
    if model is not None and model not in info.models:
        raise NotFoundError(f"model {model!r} is not deployed in {info.stack_name}; deployed: {', '.join(info.models) or 'none'}")
    targets = [t for t in info.schedules if model is None or t.model == model]
    if function is not None:
        targets = [t for t in targets if t.function == info.functions.get(function)]
    if not targets:
        raise NotFoundError(f"{info.stack_name} has no schedule{f' for {model!r}' if model else ''}")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    moment = moment.replace(second=0, microsecond=0) + (timedelta(minutes=1) if (moment.second or moment.microsecond) else timedelta())
    lambda_ = client("lambda", info.settings)
    fired = []
    for target in targets:
        event = target.event(moment)
        started = time.perf_counter()
        response = lambda_.invoke(FunctionName=target.function, Payload=json.dumps(event).encode())
        payload = response["Payload"].read()
        result = json.loads(payload) if payload else None
        fired.append(Fired(target, event, result, "FunctionError" in response, time.perf_counter() - started))
    return fired


class Alert(BaseModel):
    """One SNS message as the local inbox received it."""

    subject: str
    message: Any
    timestamp: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


def receive_alerts(info: LocalInfo, wait_seconds: float = 0.0, max_messages: int = 10) -> list[Alert]:
    """Messages the alert topic delivered to the local inbox (deleted once read), waiting up to ``wait_seconds``
    for the first one."""
    sqs = client("sqs", info.settings)
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    alerts: list[Alert] = []
    while len(alerts) < max_messages:
        remaining = deadline - time.monotonic()
        wait = 0 if alerts else max(0, min(20, int(remaining + 0.999)))
        response = sqs.receive_message(
            QueueUrl=info.alerts_queue_url, MaxNumberOfMessages=min(10, max_messages - len(alerts)), WaitTimeSeconds=wait
        )
        messages = response.get("Messages", [])
        for message in messages:
            alerts.append(_alert(message["Body"]))
            sqs.delete_message(QueueUrl=info.alerts_queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not messages and (alerts or time.monotonic() >= deadline):
            break
    return alerts


def _alert(body: str) -> Alert:
    envelope = json.loads(body)
    text = str(envelope.get("Message", ""))
    try:
        message: Any = json.loads(text)
    except ValueError:
        message = text
    attributes = {name: str(value.get("Value", "")) for name, value in (envelope.get("MessageAttributes") or {}).items()}
    return Alert(
        subject=str(envelope.get("Subject") or ""), message=message, timestamp=str(envelope.get("Timestamp", "")), attributes=attributes
    )


@dataclass(frozen=True)
class Seeded:
    """A deployed spec trained from its published data, registered and promoted."""

    model: str
    version: int
    metric: str
    value: float
    seconds: float


def seed_models(settings: Settings, models: list[str], *, by: str = "local", reason: str = "first model") -> list[Seeded]:
    """Train each deployed spec from what ``cdk deploy`` published (``specs/{model}/`` in the bucket), register the
    run and promote it to production."""
    from serverless_mlops.model.fit import train
    from serverless_mlops.retraining.specs import load_published_spec, spec_key
    from serverless_mlops.store.lifecycle import Backends, register_run

    backends = Backends.from_settings(settings)
    s3 = client("s3", settings)
    seeded = []
    for model in models:
        started = time.perf_counter()
        spec = load_published_spec(model, s3, settings.bucket)
        trained = train(spec, settings=settings, source=f"s3://{settings.bucket}/{spec_key(model)}")
        entry = register_run(trained, backends, by=by)
        backends.registry.promote(model, entry.version, by=by, reason=reason)
        metric = spec.evaluation.metric.value
        seeded.append(Seeded(model, entry.version, metric, float(trained.record.metrics[metric]), time.perf_counter() - started))
    return seeded


# -- server side ------------------------------------------------------------------------------------------------------


@dataclass
class LocalEnvironment:
    """A running local stack (:func:`local_environment`)."""

    info: LocalInfo
    deployment: LocalDeployment
    api: LocalServer

    @property
    def stack(self) -> LocalStack:
        return self.deployment.stack


class _Integration:
    """The HTTP API's Lambda integration: each request's event goes to the inference function, in its environment."""

    def __init__(self, invoker: LocalInvoker, environment: Mapping[str, str], metrics: EmfForwarder | None = None) -> None:
        self.invoker = invoker
        self.handler = HANDLERS["inference"]
        self.environment = environment
        self.metrics = metrics  # the function's EMF records into moto's CloudWatch, as CloudWatch Logs does on AWS

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        result, errored, logs = self.invoker.call(self.handler, self.environment, event, context)
        if self.metrics is not None:
            self.metrics.forward(logs)
        if errored:
            print(logs, flush=True)  # the function's log, as CloudWatch would hold it
            return FUNCTION_ERROR_RESPONSE
        return result

    def flush(self) -> None:
        """Write the inference environment's buffered capture, in the function's environment, and forward the EMF
        records that prints (the shadow's pending guard metrics, serving/guard_tally.py); a failure is shown
        with the function's log (the captured rows are lost otherwise without a word)."""
        _, errored, logs = self.invoker.call(INFERENCE_FLUSH, self.environment, None, None, arguments=())
        if self.metrics is not None:
            self.metrics.forward(logs)
        if errored:
            print(logs, flush=True)


def check_port(option: str, port: int | None) -> None:
    """A fixed port that is already taken fails here, naming the option, before anything starts (0/None: any)."""
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise MlopsError(f"{option} {port} is busy: {why} (pick another port, or 0 for a free one)") from exc


def _alerts_inbox(stack: LocalStack, topic_arn: str) -> str:
    """An SQS queue subscribed to the alert topic (SNS envelope kept, so the subject survives)."""
    sqs = client("sqs", stack.settings)
    url = str(sqs.create_queue(QueueName=f"{stack.stack_name}-{ALERTS_QUEUE_SUFFIX}")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns", stack.settings).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


@contextmanager
def local_environment(
    template: Mapping[str, Any],
    assembly_dir: str | Path | None,
    *,
    stack_name: str = DEFAULT_STACK,
    aws_port: int | None = None,
    api_port: int | None = None,
    settings: Settings | None = None,
) -> Iterator[LocalEnvironment]:
    """The stack running locally (see the module docstring) until the block ends; then the HTTP API stops (buffered
    capture is written first) and so does the moto server. Ports: None or 0 picks a free one."""
    from serverless_mlops.local.http_api import LocalServer

    check_port("--aws-port", aws_port)
    check_port("--api-port", api_port)
    with deployed_locally(template, assembly_dir, stack_name=stack_name, settings=settings, port=aws_port or None) as deployment:
        stack = deployment.stack
        outputs = {key: stack.output(name) for key, name in OUTPUTS.items()}
        optional = {key: stack.outputs.get(name) for key, name in OPTIONAL_OUTPUTS.items()}
        present = set(stack.functions)
        functions = {short: stack.function_name(handler) for short, handler in HANDLERS.items() if handler in present}
        if "inference" not in functions:
            raise MlopsError(f"{stack_name}: the template has no function with handler {HANDLERS['inference']}")
        environment = stack.environment(functions["inference"])
        integration = _Integration(deployment.invoker, environment, EmfForwarder(client("cloudwatch", stack.settings)))
        api = LocalServer(
            integration, port=api_port or 0, function_name=functions["inference"], region=stack.region, on_shutdown=integration.flush
        )
        api.start()
        try:
            info = LocalInfo(
                pid=os.getpid(),
                started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                stack_name=stack_name,
                region=stack.region,
                endpoint_url=deployment.endpoint_url,
                api_url=api.url,
                bucket=outputs["bucket"],
                table=outputs["table"],
                alert_topic_arn=outputs["topic"],
                state_machine_arn=outputs["machine"],
                release_state_machine_arn=optional["release_machine"],
                batch_state_machine_arn=optional["batch_machine"],
                retraining_table=optional["retraining_table"],
                alerts_queue_url=_alerts_inbox(stack, outputs["topic"]),
                functions=functions,
                # the models the inference function serves (its MLOPS_MODELS), in the template's order
                models=[name for name in environment.get("MLOPS_MODELS", "").split(",") if name],
                schedules=scheduled_targets(stack),
            )
            yield LocalEnvironment(info=info, deployment=deployment, api=api)
        finally:
            api.stop()


def local_template(template: Path | None = None, *, announce: Callable[[str], None] | None = None) -> tuple[dict[str, Any], Path, str]:
    """(template, assembly folder, stack name): ``template`` (a ``*.template.json`` in a cloud assembly), else
    ``cdk.out`` (``make synth``) or ``build/local.out`` when it is newer than infra/, the specs and the layers' inputs,
    else a synthesis written into ``build/local.out`` so the next run reuses it; ``announce`` hears about a synthesis
    before it starts (seconds; longer while the layers are first built)."""
    from serverless_mlops.local import assembly as local_assembly

    if template is not None:
        if not template.name.endswith(TEMPLATE_SUFFIX) or template.is_dir():
            raise MlopsError(f"--template {template}: expected a synthesized *{TEMPLATE_SUFFIX} file in a cloud assembly folder (cdk.out)")
        if not template.is_file():
            raise NotFoundError(f"--template {template}: no such file (synthesize with make synth, or omit --template)")
        stack_name = template.name.removesuffix(TEMPLATE_SUFFIX)
        return local_assembly.load_template(template.parent, stack_name), template.parent, stack_name
    if local_assembly.fresh_assembly() is None and announce is not None:
        announce(f"synthesizing the CDK app into {local_assembly.LOCAL_OUT} (it is missing or older than infra/, models/ or the locks) …")
    document, assembly = local_assembly.synthesized()
    return document, assembly, DEFAULT_STACK


__all__ = [
    "Alert",
    "Fired",
    "LocalEnvironment",
    "LocalInfo",
    "ScheduledTarget",
    "Seeded",
    "check_port",
    "fire_schedules",
    "local_environment",
    "local_template",
    "receive_alerts",
    "scheduled_targets",
    "seed_models",
    "transform_input",
]
