"""The deployed stack, on moto: provision what a synthesized CDK template names, and run its Lambdas in-process.

:func:`provision` reads a synthesized template (a dict) and its cloud assembly folder and creates, in moto (the
in-process ``mock_aws`` or a :class:`~serverless_mlops.local.moto.LocalAws` server, chosen by ``Settings.endpoint_url``),
the resources the workflow and the functions need: S3 buckets, DynamoDB tables (the template's key schema), SNS
topics and subscriptions, SQS queues, IAM roles, Lambda functions (a placeholder zip; handler, runtime, timeout and
environment as the template gives them, intrinsics resolved), Step Functions state machines (the definition the
template gives, intrinsics resolved) and the files of each ``Custom::CDKBucketDeployment`` (the asset's folder,
found through the assembly's ``*.assets.json``). Names derive from the stack name and the logical id, lower-cased
where AWS wants it. Every other resource type (API Gateway, alarms, policies, KMS keys, log groups, ...) is skipped
and listed in :attr:`LocalStack.skipped`: moto either ignores it or cannot serve it (``mlops serve`` is the HTTP API).
Provisioning is idempotent: a second run updates functions and state machines and leaves the rest as it is.

:class:`LocalInvoker` is the in-process Lambda runtime: installed (a context manager), it replaces moto's
``LambdaFunction._invoke_lambda`` (moto would start a docker container) with one that imports the function's handler
and calls it with the function's environment, so Step Functions' ``lambda:invoke`` tasks, SNS subscriptions and
``lambda.invoke`` all run the project's code. It can throttle or fail the next calls of a function (fault
injection for tests) and records every invocation.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib
import io
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from serverless_mlops.aws import client
from serverless_mlops.errors import MlopsError
from serverless_mlops.settings import Settings

if TYPE_CHECKING:
    from serverless_mlops.local.moto import LocalAws

ROOT = Path(__file__).resolve().parents[2]  # the repository: serverless_mlops/local/stack.py
DEFAULT_STACK = "serverless-mlops-dev"

BUCKET = "AWS::S3::Bucket"
TABLE = "AWS::DynamoDB::Table"
GLOBAL_TABLE = "AWS::DynamoDB::GlobalTable"
TOPIC = "AWS::SNS::Topic"
SUBSCRIPTION = "AWS::SNS::Subscription"
QUEUE = "AWS::SQS::Queue"
ROLE = "AWS::IAM::Role"
MANAGED_POLICY = "AWS::IAM::ManagedPolicy"
FUNCTION = "AWS::Lambda::Function"
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
BUCKET_DEPLOYMENT = "Custom::CDKBucketDeployment"
SUPPORTED = (BUCKET, TABLE, GLOBAL_TABLE, TOPIC, SUBSCRIPTION, QUEUE, ROLE, MANAGED_POLICY, FUNCTION, STATE_MACHINE, BUCKET_DEPLOYMENT)

# the property that names a resource when the template sets it, and the longest name AWS accepts
_NAME_PROPERTY = {
    BUCKET: ("BucketName", 63),
    TABLE: ("TableName", 255),
    GLOBAL_TABLE: ("TableName", 255),
    TOPIC: ("TopicName", 256),
    QUEUE: ("QueueName", 80),
    ROLE: ("RoleName", 64),
    MANAGED_POLICY: ("ManagedPolicyName", 128),
    FUNCTION: ("FunctionName", 64),
    STATE_MACHINE: ("StateMachineName", 80),
}
_LOCAL_PROTOCOLS = ("sqs", "lambda", "email", "email-json", "sms", "application", "firehose")


class LocalStackError(MlopsError):
    """The template cannot be provisioned locally; the message names the resource and the property."""


class Unresolvable(LocalStackError):
    """An intrinsic the local resolver does not implement (or a reference to nothing)."""


# -- intrinsic functions --------------------------------------------------------------------------------------------


_NO_VALUE = object()


@dataclass
class Resolver:
    """Resolves CloudFormation intrinsics against known physical ids and attributes.

    ``refs`` maps a logical id (or parameter) to what ``Ref`` gives; ``attributes`` maps ``(logical id, name)`` to
    what ``Fn::GetAtt`` gives; ``attribute`` is asked for anything not in ``attributes`` (``None`` when unknown).
    ``touched`` collects the logical ids a resolution referred to.
    """

    region: str
    account: str
    stack_name: str = DEFAULT_STACK
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    attribute: Callable[[str, str], str | None] | None = None
    conditions: Mapping[str, Any] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)

    @property
    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/local",
        }

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            self.touched.add(name)
            return self.refs[name]
        raise Unresolvable(f"Ref {name!r}: no such resource or parameter")

    def get_att(self, name: str, attribute: str) -> str:
        self.touched.add(name)
        if (name, attribute) in self.attributes:
            return self.attributes[(name, attribute)]
        found = self.attribute(name, attribute) if self.attribute is not None else None
        if found is None:
            raise Unresolvable(f"Fn::GetAtt {name}.{attribute}: unknown resource or attribute")
        return found

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic replaced by its value (``AWS::NoValue`` drops the key or list item)."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return _NO_VALUE if argument == "AWS::NoValue" else self.ref(argument)
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _function(self, key: str, argument: Any) -> Any:
        if key == "Fn::GetAtt":
            name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self.get_att(self.resolve(name), self.resolve(attribute))
        if key == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(_text(item) for item in self.resolve(items))
        if key == "Fn::Sub":
            template, variables = (argument, {}) if isinstance(argument, str) else argument
            return self._sub(template, {k: self.resolve(v) for k, v in variables.items()})
        if key == "Fn::Select":
            index, items = argument
            items = self.resolve(items)
            position = int(self.resolve(index))
            if not isinstance(items, list) or not 0 <= position < len(items):
                raise Unresolvable(f"Fn::Select: index {position} out of range of {items!r}")
            return items[position]
        if key == "Fn::Split":
            delimiter, text = argument
            return _text(self.resolve(text)).split(delimiter)
        if key == "Fn::Base64":
            return base64.b64encode(_text(self.resolve(argument)).encode()).decode()
        if key == "Fn::If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self._boolean(key, argument)
        raise Unresolvable(f"{key}: not supported locally")

    def _sub(self, template: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return self.get_att(logical, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, template)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise Unresolvable(f"Condition {name!r}: not defined in the template")
        return bool(self.resolve(self.conditions[name]))

    def _boolean(self, key: str, argument: Any) -> bool:
        if key == "Condition":
            return self.condition(argument)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in argument)
            return bool(left == right)
        values = [self.resolve(a) for a in argument]
        if key == "Fn::Not":
            return not values[0]
        return all(values) if key == "Fn::And" else any(values)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def references(value: Any) -> set[str]:
    """The logical ids (and parameters) ``value`` refers to through Ref, Fn::GetAtt and Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument.split(".", 1)[0] if isinstance(argument, str) else argument[0])
            elif key == "Fn::Sub":
                template = argument if isinstance(argument, str) else argument[0]
                names = re.findall(r"\$\{([^}!][^}]*)\}", template)
                local = set() if isinstance(argument, str) else set(argument[1])
                found |= {n.split(".", 1)[0] for n in names if n not in local and not n.startswith("AWS::")}
                if not isinstance(argument, str):
                    found |= references(argument[1])
            else:
                found |= references(argument)
    return {name for name in found if not name.startswith("AWS::")}


def creation_order(resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Logical ids so that each comes after everything it refers to or depends on (a template is acyclic)."""
    depends: dict[str, set[str]] = {}
    for name, resource in resources.items():
        explicit = resource.get("DependsOn", [])
        wanted = references(resource.get("Properties", {})) | set([explicit] if isinstance(explicit, str) else explicit)
        depends[name] = {d for d in wanted if d in resources and d != name}
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise LocalStackError(f"{name}: circular dependency in the template")
        visiting.add(name)
        for dependency in sorted(depends[name]):
            visit(dependency)
        visiting.discard(name)
        done.add(name)
        order.append(name)

    for name in resources:
        visit(name)
    return order


# -- names ----------------------------------------------------------------------------------------------------------


def physical_name(stack_name: str, logical_id: str, kind: str) -> str:
    """``{stack}-{logical id}`` (lower-case for buckets), shortened with a hash to the longest name AWS accepts."""
    limit = _NAME_PROPERTY.get(kind, ("", 64))[1]
    name = f"{stack_name}-{logical_id}"
    if kind == BUCKET:
        name = re.sub(r"[^a-z0-9.-]", "-", name.lower())
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9]}-{digest}"
    return name


def _service(kind: str) -> str:
    parts = kind.split("::")
    return parts[1].lower() if len(parts) == 3 and parts[0] == "AWS" else "local"


# -- the provisioned stack ------------------------------------------------------------------------------------------


@dataclass
class LocalStack:
    """What :func:`provision` created: physical ids and attributes by logical id, the outputs, what it skipped."""

    stack_name: str
    settings: Settings
    account: str
    template: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    created: dict[str, str] = field(default_factory=dict)  # logical id -> type, for each provisioned resource
    skipped: dict[str, str] = field(default_factory=dict)  # logical id -> type, for each resource not provisioned
    outputs: dict[str, str] = field(default_factory=dict)  # outputs that name provisioned resources only
    unresolved_outputs: dict[str, str] = field(default_factory=dict)  # output -> why it has no local value
    uploaded: list[str] = field(default_factory=list)  # s3://bucket/key written by bucket deployments

    @property
    def region(self) -> str:
        return self.settings.region

    def ref(self, logical_id: str) -> str:
        """What ``Ref`` gives for ``logical_id`` (a bucket's name, a topic's ARN, a queue's URL, ...)."""
        if logical_id not in self.refs:
            raise LocalStackError(f"{self.stack_name}: no resource {logical_id!r} in the template")
        return self.refs[logical_id]

    def attribute(self, logical_id: str, name: str) -> str:
        """What ``Fn::GetAtt`` gives (``Arn``, ``Name``, ...)."""
        self.ref(logical_id)
        if (logical_id, name) not in self.attributes:
            raise LocalStackError(f"{self.stack_name}: {logical_id} has no attribute {name!r} locally")
        return self.attributes[(logical_id, name)]

    def logical_ids(self, kind: str) -> list[str]:
        """Logical ids of the provisioned resources of type ``kind`` (e.g. ``AWS::Lambda::Function``)."""
        return [name for name, created in self.created.items() if created == kind]

    def find(self, kind: str, prefix: str = "") -> str:
        """The one provisioned resource of ``kind`` whose logical id starts with ``prefix`` (CDK appends a hash)."""
        found = [name for name in self.logical_ids(kind) if name.startswith(prefix)]
        if len(found) != 1:
            raise LocalStackError(f"{self.stack_name}: expected one {kind} named {prefix}*, found {found or 'none'}")
        return found[0]

    def properties(self, logical_id: str) -> dict[str, Any]:
        return dict(self.template["Resources"][logical_id].get("Properties", {}))

    def function_name(self, handler: str) -> str:
        """The name of the one function whose handler is ``handler`` (``functions.training.app.lambda_handler``)."""
        found = [self.refs[name] for name in self.logical_ids(FUNCTION) if self.properties(name).get("Handler") == handler]
        if len(found) != 1:
            raise LocalStackError(f"{self.stack_name}: expected one function with handler {handler!r}, found {found or 'none'}")
        return found[0]

    @property
    def functions(self) -> dict[str, str]:
        """Function name by handler string, for every provisioned function."""
        return {str(self.properties(name).get("Handler", "")): self.refs[name] for name in self.logical_ids(FUNCTION)}

    def environment(self, function_name: str) -> dict[str, str]:
        """The environment the function runs with (as provisioned)."""
        config = client("lambda", self.settings).get_function_configuration(FunctionName=function_name)
        return dict(config.get("Environment", {}).get("Variables", {}))

    def output(self, name: str) -> str:
        if name not in self.outputs:
            why = self.unresolved_outputs.get(name, f"the template has no output {name!r}")
            raise LocalStackError(f"{self.stack_name}: output {name} has no local value: {why}")
        return self.outputs[name]


def provision(
    template: Mapping[str, Any],
    assembly_dir: str | Path | None,
    settings: Settings,
    *,
    stack_name: str = DEFAULT_STACK,
) -> LocalStack:
    """Create in moto what ``template`` names (see the module docstring); returns the handle. Idempotent."""
    from serverless_mlops.local.moto import use_fake_credentials

    if settings.endpoint_url:
        use_fake_credentials()
        enable_step_functions_execution(settings.endpoint_url)
    document: dict[str, Any] = copy.deepcopy(dict(template))
    resources: dict[str, dict[str, Any]] = document.get("Resources", {})
    account = str(client("sts", settings).get_caller_identity()["Account"])
    stack = LocalStack(stack_name=stack_name, settings=settings, account=account, template=document)
    resolver = Resolver(
        region=settings.region,
        account=account,
        stack_name=stack_name,
        refs=stack.refs,
        attributes=stack.attributes,
        conditions=document.get("Conditions", {}),
    )
    for name, parameter in document.get("Parameters", {}).items():
        stack.refs[name] = str(parameter.get("Default", ""))
    provisioner = _Provisioner(stack, resolver, Path(assembly_dir) if assembly_dir is not None else None)
    for logical_id in creation_order(resources):
        resource = resources[logical_id]
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        provisioner.create(logical_id, resource)
    for name, output in document.get("Outputs", {}).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        resolver.touched = set()
        value = resolver.resolve(output["Value"])
        missing = sorted(resolver.touched & set(stack.skipped))
        if missing:
            stack.unresolved_outputs[name] = f"it names {', '.join(f'{m} ({stack.skipped[m]})' for m in missing)}, not provisioned locally"
        else:
            stack.outputs[name] = _text(value)
    return stack


def enable_step_functions_execution(endpoint_url: str) -> None:
    """Make a moto server run state machines (``execute_state_machine``), as ``mock_aws(config=...)`` does in-process."""
    _moto_api(endpoint_url, "config", {"stepfunctions": {"execute_state_machine": True}})


@contextmanager
def _restored_step_functions_config() -> Iterator[None]:
    """Put moto's process-wide Step Functions setting back as it was when the block began."""
    from moto.core.config import default_user_config

    previous = dict(default_user_config.get("stepfunctions", {}))
    try:
        yield
    finally:
        default_user_config["stepfunctions"] = previous  # type: ignore[typeddict-item]


def _moto_api(endpoint_url: str, action: str, document: Mapping[str, Any] | None = None) -> None:
    """POST to a moto server's own API (``/moto-api/config``, ``/moto-api/reset``)."""
    from urllib.request import Request, urlopen

    body = json.dumps(document or {}).encode()
    url = f"{endpoint_url.rstrip('/')}/moto-api/{action}"
    request = Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})  # noqa: S310 - moto's own URL
    with urlopen(request, timeout=10) as response:  # noqa: S310 - the local moto server's own URL
        response.read()


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "serverless-mlops local: this function's code runs in-process (LocalInvoker)\n")
    return buffer.getvalue()


class _Provisioner:
    def __init__(self, stack: LocalStack, resolver: Resolver, assembly_dir: Path | None) -> None:
        self.stack = stack
        self.resolver = resolver
        self.assembly_dir = assembly_dir
        self.settings = stack.settings
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = client(service, self.settings)
        return self._clients[service]

    def create(self, logical_id: str, resource: Mapping[str, Any]) -> None:
        kind = str(resource["Type"])
        properties = resource.get("Properties", {})
        if kind not in SUPPORTED:
            self._skip(logical_id, kind)
            return
        try:
            resolved = self.resolver.resolve(properties)
        except Unresolvable as exc:
            raise LocalStackError(f"{logical_id} ({kind}): {exc}") from exc
        name = self._name(logical_id, kind, resolved)
        if kind == SUBSCRIPTION and resolved.get("Protocol") not in _LOCAL_PROTOCOLS:
            self._skip(logical_id, kind)  # http(s) endpoints would be called from the local machine
            return
        getattr(self, "_" + kind.rsplit("::", maxsplit=1)[-1].lower())(logical_id, name, resolved)
        self.stack.created[logical_id] = kind

    def _name(self, logical_id: str, kind: str, resolved: Mapping[str, Any]) -> str:
        prop = _NAME_PROPERTY.get(kind, ("", 0))[0]
        if prop and resolved.get(prop):
            return str(resolved[prop])
        name = physical_name(self.stack.stack_name, logical_id, kind)
        fifo = resolved.get("FifoQueue") or resolved.get("FifoTopic")
        if fifo in (True, "true"):  # AWS wants the suffix on FIFO queue and topic names
            return f"{name[: _NAME_PROPERTY[kind][1] - 5]}.fifo"
        return name

    def _skip(self, logical_id: str, kind: str) -> None:
        """Not provisioned: Ref gives the derived name, Arn a well-formed ARN, so what refers to it still resolves."""
        name = physical_name(self.stack.stack_name, logical_id, kind)
        self.stack.skipped[logical_id] = kind
        self.stack.refs[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = f"arn:aws:{_service(kind)}:{self.stack.region}:{self.stack.account}:{name}"

    def _set(self, logical_id: str, ref: str, **attributes: str) -> None:
        self.stack.refs[logical_id] = ref
        for key, value in attributes.items():
            self.stack.attributes[(logical_id, key)] = value

    # -- one method per supported type (named after the type's last part) --

    def _bucket(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=name)
        except s3.exceptions.ClientError:
            if self.stack.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.stack.region})
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        region, suffix = self.stack.region, "amazonaws.com"
        self._set(
            logical_id,
            name,
            Arn=f"arn:aws:s3:::{name}",
            DomainName=f"{name}.s3.{suffix}",
            RegionalDomainName=f"{name}.s3.{region}.{suffix}",
            WebsiteURL=f"http://{name}.s3-website-{region}.{suffix}",
        )

    def _table(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        dynamodb = self.client("dynamodb")
        try:
            description = dynamodb.describe_table(TableName=name)["Table"]
        except dynamodb.exceptions.ResourceNotFoundException:
            request: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            indexes = [_index(i) for i in props.get("GlobalSecondaryIndexes", [])]
            if indexes:
                request["GlobalSecondaryIndexes"] = indexes
            if props.get("LocalSecondaryIndexes"):
                request["LocalSecondaryIndexes"] = [_index(i) for i in props["LocalSecondaryIndexes"]]
            stream = props.get("StreamSpecification")
            if stream:
                request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
            description = dynamodb.create_table(**request)["TableDescription"]
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
                )
        attributes = {"Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attributes["StreamArn"] = description["LatestStreamArn"]
        self._set(logical_id, name, **attributes)

    _globaltable = _table

    def _topic(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        attributes = {k: _text(props[k]) for k in ("DisplayName", "FifoTopic", "ContentBasedDeduplication") if k in props}
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for subscription in props.get("Subscription", []):
            if subscription.get("Protocol") in _LOCAL_PROTOCOLS:
                self.client("sns").subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        self._set(logical_id, arn, TopicArn=arn, TopicName=name)

    def _subscription(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        attributes = {}
        if "RawMessageDelivery" in props:
            attributes["RawMessageDelivery"] = _text(props["RawMessageDelivery"])
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = _text(props["FilterPolicy"])
        arn = self.client("sns").subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=props["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        self._set(logical_id, arn)

    def _queue(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        keys = ("DelaySeconds", "MessageRetentionPeriod", "VisibilityTimeout", "FifoQueue", "ContentBasedDeduplication", "RedrivePolicy")
        attributes = {k: _text(props[k]) for k in keys if k in props}
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._set(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)

    def _role(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        iam = self.client("iam")
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except iam.exceptions.NoSuchEntityException:
            document = json.dumps(props.get("AssumeRolePolicyDocument", {}))
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=document, Path=props.get("Path", "/"))["Role"]
        self._set(logical_id, name, Arn=role["Arn"], RoleId=role["RoleId"])

    def _managedpolicy(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        """A managed policy the stack outputs for people to attach (approver, releaser): Ref is its ARN, as in CloudFormation."""
        iam = self.client("iam")
        arn = f"arn:aws:iam::{self.stack.account}:policy{props.get('Path', '/')}{name}"
        try:
            iam.get_policy(PolicyArn=arn)
        except iam.exceptions.NoSuchEntityException:
            document = json.dumps(props.get("PolicyDocument", {}))
            arn = iam.create_policy(PolicyName=name, PolicyDocument=document, Path=props.get("Path", "/"))["Policy"]["Arn"]
        self._set(logical_id, arn)

    def _function(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        lam = self.client("lambda")
        variables = {k: _text(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        config: dict[str, Any] = {
            "FunctionName": name,
            "Role": props["Role"],
            "Handler": props.get("Handler", "index.handler"),
            "Runtime": props.get("Runtime", "python3.12"),
            "Timeout": int(props.get("Timeout", 3)),
            "MemorySize": int(props.get("MemorySize", 128)),
            "Environment": {"Variables": variables},
            "Description": _text(props.get("Description", "")),
        }
        try:
            lam.get_function_configuration(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            arn = lam.create_function(**config, Code={"ZipFile": _placeholder_zip()})["FunctionArn"]
        else:
            arn = lam.update_function_configuration(**config)["FunctionArn"]
        self._set(logical_id, name, Arn=arn)

    def _statemachine(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        if "DefinitionString" in props:
            definition = str(props["DefinitionString"])
        elif "Definition" in props:
            definition = json.dumps(props["Definition"])
        else:
            raise LocalStackError(
                f"{logical_id} ({STATE_MACHINE}): no DefinitionString or Definition (DefinitionS3Location is not supported locally)"
            )
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", _text(value))
        sfn = self.client("stepfunctions")
        arn = f"arn:aws:states:{self.stack.region}:{self.stack.account}:stateMachine:{name}"
        try:
            sfn.describe_state_machine(stateMachineArn=arn)
        except sfn.exceptions.StateMachineDoesNotExist:
            kind = props.get("StateMachineType", "STANDARD")
            arn = sfn.create_state_machine(name=name, definition=definition, roleArn=props["RoleArn"], type=kind)["stateMachineArn"]
        else:
            sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=props["RoleArn"])
        self._set(logical_id, arn, Arn=arn, Name=name)

    def _cdkbucketdeployment(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        """Upload each source asset's files under the destination prefix, as CDK's deployment Lambda does."""
        if props.get("Extract") in (False, "false"):
            raise LocalStackError(f"{logical_id} ({BUCKET_DEPLOYMENT}): Extract: false is not supported locally")
        bucket = props["DestinationBucketName"]
        prefix = str(props.get("DestinationBucketKeyPrefix", "")).strip("/")
        markers = props.get("SourceMarkers") or [{} for _ in props.get("SourceObjectKeys", [])]
        s3 = self.client("s3")
        for object_key, marker in zip(props.get("SourceObjectKeys", []), markers, strict=False):
            for relative, content in self._asset_files(logical_id, str(object_key)):
                body = content
                for token, value in (marker or {}).items():
                    body = body.replace(token.encode(), _text(value).encode())
                key = f"{prefix}/{relative}" if prefix else relative
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                self.stack.uploaded.append(f"s3://{bucket}/{key}")
        self._set(logical_id, f"{self.stack.stack_name}-{logical_id}")

    def _asset_files(self, logical_id: str, object_key: str) -> Iterator[tuple[str, bytes]]:
        source = asset_source(self.assembly_dir, object_key, owner=logical_id)
        if source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                yield path.relative_to(source).as_posix(), path.read_bytes()
        elif zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        yield info.filename, archive.read(info)
        else:
            yield source.name, source.read_bytes()


def _index(index: Mapping[str, Any]) -> dict[str, Any]:
    return {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}


def asset_source(assembly_dir: Path | None, object_key: str, *, owner: str = "") -> Path:
    """The file or folder of the asset uploaded as ``object_key`` (``<hash>.zip``), from the assembly's manifests."""
    where = f"{owner}: " if owner else ""
    if assembly_dir is None:
        raise LocalStackError(f"{where}asset {object_key} needs the cloud assembly folder (cdk.out) to find its files")
    asset_hash = object_key.split(".", 1)[0].rsplit("/", 1)[-1]
    for manifest in sorted(assembly_dir.glob("*.assets.json")):
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
        if asset_hash in files:
            path = Path(files[asset_hash]["source"]["path"])
            path = path if path.is_absolute() else assembly_dir / path
            if not path.exists():
                raise LocalStackError(
                    f"{where}asset {asset_hash} ({manifest.name}) points at {path}, which does not exist: synthesize again"
                )
            return path
    raise LocalStackError(f"{where}asset {asset_hash} is in no *.assets.json of {assembly_dir}")


def load_template(assembly_dir: str | Path, stack_name: str = DEFAULT_STACK) -> dict[str, Any]:
    """The synthesized template of ``stack_name`` in a cloud assembly folder."""
    path = Path(assembly_dir) / f"{stack_name}.template.json"
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LocalStackError(f"no template {path}: synthesize the app first (make synth)") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LocalStackError(f"{path} is not a JSON template: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources", {}), dict):
        raise LocalStackError(f"{path} is not a CloudFormation template: expected an object with Resources")
    return document


# what the template is made from: the app and its config, the specs, the layers' locks and builder, CDK's flags, and
# the library modules the app reads (spec validation; the workflow's state and step names)
SYNTH_INPUTS = (
    "infra",
    "models",
    "layers/build.py",
    "layers/rules.py",
    "layers/elf.py",
    "layers/lockfile.py",
    "locks",
    "pyproject.toml",
    "cdk.json",
    "serverless_mlops/model/spec.py",
    "serverless_mlops/retraining/contract.py",
    "serverless_mlops/retraining/specs.py",
)
# where local mode writes its own synthesis: not cdk.out, which `cdk deploy` and pipelines read (`make synth` writes it)
LOCAL_OUT = Path("build") / "local.out"


def newest_input(root: Path = ROOT) -> float:
    """The latest modification time of what the template is synthesized from (:data:`SYNTH_INPUTS`; missing ones skipped)."""
    newest = 0.0
    for name in SYNTH_INPUTS:
        path = root / name
        paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        newest = max([newest, *(p.stat().st_mtime for p in paths)])
    return newest


def fresh_assembly(root: Path = ROOT, stage: str = "dev") -> Path | None:
    """The stage's template in ``cdk.out`` (``make synth``) or else in :data:`LOCAL_OUT` (local mode's own synthesis),
    whichever is newer than everything it is synthesized from; None when neither is."""
    newest = newest_input(root)
    for folder in (root / "cdk.out", root / LOCAL_OUT):
        cached = folder / f"serverless-mlops-{stage}.template.json"
        if cached.is_file() and cached.stat().st_mtime > newest:
            return cached
    return None


def synthesized(
    *, root: Path = ROOT, stage: str = "dev", config: str | Path | None = None, outdir: Path | None = None
) -> tuple[dict[str, Any], Path]:
    """The template and assembly folder of the stage: a fresh one (:func:`fresh_assembly`) when no other config is
    asked for, else a synthesis in-process (``build_app``, no cdk-nag). The default config's synthesis is written
    into ``root/build/local.out``, so the next local run reuses it; another config's into ``outdir`` or a temporary
    folder.

    Asset staging stays on, as in ``cdk synth``: every asset is copied into the assembly, so it deploys as it is
    (``cdk deploy --app build/local.out``). With staging off, the assembly named the files where they were, and CDK's
    own assets (the BucketDeployment's AwsCliLayer, the custom resource providers' code) lay in the jsii kernel's
    temporary folders, gone when the synthesizing process ended. The copy costs nothing measurable here (4.2 s
    with it, 4.5 s without, layers built)."""
    stack_name = f"serverless-mlops-{stage}"
    cached = fresh_assembly(root, stage) if config is None else None
    if cached is not None:
        return load_template(cached.parent, stack_name), cached.parent
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")  # a local run, not a deployment
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from infra.app import build_app

    if config is None:
        outdir = root / LOCAL_OUT
    app = build_app(config, stage=stage, nag=False, outdir=outdir)
    assembly = app.synth()
    return dict(assembly.get_stack_by_name(stack_name).template), Path(assembly.directory)


@dataclass(frozen=True)
class LocalDeployment:
    """The stack deployed on an embedded moto server, its Lambdas running in this process (:func:`deployed_locally`)."""

    aws: LocalAws
    stack: LocalStack
    invoker: LocalInvoker

    @property
    def endpoint_url(self) -> str:
        return self.aws.endpoint_url

    @property
    def settings(self) -> Settings:
        """Settings for the CLI and the library: the server's endpoint and the stack's bucket and table."""
        names = {"ArtifactBucketName": "bucket", "RegistryTableName": "table", "RetrainingTableName": "retraining_table"}
        return self.stack.settings.model_copy(update={name: self.stack.outputs[o] for o, name in names.items() if o in self.stack.outputs})


@contextmanager
def deployed_locally(
    template: Mapping[str, Any],
    assembly_dir: str | Path | None,
    *,
    stack_name: str = DEFAULT_STACK,
    settings: Settings | None = None,
    port: int | None = None,
) -> Iterator[LocalDeployment]:
    """Start a moto server on 127.0.0.1, provision ``template`` into it and install the in-process Lambda runtime;
    everything stops when the block ends, and moto's process-wide Step Functions setting is put back (a later
    in-process ``mock_aws()`` copies it)."""
    from serverless_mlops.local.moto import LocalAws

    with _restored_step_functions_config(), LocalAws(port) as aws:
        # moto keeps its state in this process, not in the server: start from nothing, as a new deployment does
        _moto_api(aws.endpoint_url, "reset")
        base = (settings or Settings()).model_copy(update={"endpoint_url": aws.endpoint_url})
        stack = provision(template, assembly_dir, base, stack_name=stack_name)
        with LocalInvoker(endpoint_url=aws.endpoint_url) as invoker:
            yield LocalDeployment(aws=aws, stack=stack, invoker=invoker)


# -- the in-process Lambda runtime ----------------------------------------------------------------------------------

# what a handler module builds once per execution environment from os.environ (clients, the inference endpoint with
# its model cache and capture buffer): a new environment, or a new stack, must not reuse it
_ENVIRONMENT_CACHES = ("default_dependencies", "default_endpoint")
_INVOKE_LOCK = threading.RLock()  # os.environ is the process's: one invocation at a time
_capture = threading.local()


class _RoutedStream:
    """sys.stdout/sys.stderr while an invoker is installed: a thread inside an invocation writes to its log buffer,
    every other thread to the stream that was there before (or whatever is current once uninstalled)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fallback: TextIO | None = None

    def _target(self) -> TextIO:
        current: Any = getattr(sys, self.name)
        if current is not self:
            return current  # type: ignore[no-any-return]
        fallback: TextIO = self.fallback or getattr(sys, f"__{self.name}__")
        return fallback

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(_capture, "buffer", None)
        if buffer is not None:
            return buffer.write(text)
        return self._target().write(text)

    def flush(self) -> None:
        if getattr(_capture, "buffer", None) is None:
            self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


_STREAMS = {"stdout": _RoutedStream("stdout"), "stderr": _RoutedStream("stderr")}


class Throttled(Exception):
    """Lambda's 429: raised from moto's invoke, it reaches Step Functions as ``Lambda.TooManyRequestsException``."""


def _throttle_error(function: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    class TooManyRequestsException(JsonRESTError, Throttled):
        code = 429

        def __init__(self) -> None:
            super().__init__("TooManyRequestsException", f"Rate exceeded (local fault injection on {function})")

    return TooManyRequestsException()


@dataclass(frozen=True)
class Invocation:
    """One call of a function: its event and what it returned (or the error)."""

    function: str
    event: Any
    result: Any
    errored: bool
    throttled: bool

    @property
    def error_type(self) -> str | None:
        return str(self.result.get("errorType")) if self.errored and isinstance(self.result, dict) else None


@dataclass
class _Fault:
    function: str
    remaining: int
    kind: Literal["throttle", "fail"]
    match: Mapping[str, Any]
    error: BaseException | None = None

    def applies(self, function: str, event: Any) -> bool:
        if self.remaining <= 0 or function != self.function:
            return False
        return all(isinstance(event, dict) and event.get(k) == v for k, v in self.match.items())


@dataclass
class LocalContext:
    """The Lambda context object a handler receives (what powertools reads from it)."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


class LocalInvoker:
    """Runs moto's Lambda functions in this process; install it with ``with LocalInvoker(...):``.

    Each call imports the function's handler (``functions.training.app.lambda_handler``) and calls it with the
    function's environment in ``os.environ`` (restored afterwards; one call at a time) plus
    ``POWERTOOLS_TRACE_DISABLED=1`` and, against a moto server, ``MLOPS_ENDPOINT_URL``. A module's
    ``default_dependencies`` / ``default_endpoint`` cache is cleared when its environment differs from its previous
    call's. A raised
    exception becomes Lambda's ``{"errorType", "errorMessage"}`` error. ``throttle`` and ``fail`` inject faults.
    """

    def __init__(self, *, endpoint_url: str | None = None, code_root: Path | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.code_root = code_root or ROOT
        self._faults: list[_Fault] = []
        self._calls: list[Invocation] = []
        self._lock = threading.Lock()
        self._last_env: dict[str, tuple[tuple[str, str], ...]] = {}
        self._previous: Any = None
        self._saved_streams: dict[str, TextIO] = {}

    # -- installing --

    @property
    def installed(self) -> bool:
        from moto.awslambda.models import LambdaFunction

        return getattr(LambdaFunction._invoke_lambda, "_invoker", None) is self

    def install(self) -> LocalInvoker:
        from moto.awslambda.models import LambdaFunction

        if self.installed:
            return self
        invoker = self

        def _invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
            return invoker.run(function, event)

        _invoke_lambda._invoker = self  # type: ignore[attr-defined]
        self._previous = LambdaFunction._invoke_lambda
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign,assignment]
        self._last_env.clear()  # a cache built before this install may hold another backend's clients
        for name, stream in _STREAMS.items():
            current = getattr(sys, name)
            if current is not stream:
                self._saved_streams[name] = current
                stream.fallback = current
                setattr(sys, name, stream)
        return self

    def uninstall(self) -> None:
        from moto.awslambda.models import LambdaFunction

        if not self.installed:
            return
        LambdaFunction._invoke_lambda = self._previous  # type: ignore[method-assign]
        for name, saved in self._saved_streams.items():
            if getattr(sys, name) is _STREAMS[name]:
                setattr(sys, name, saved)
                _STREAMS[name].fallback = None
        self._saved_streams.clear()

    def __enter__(self) -> LocalInvoker:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- fault injection and the record --

    def throttle(self, function: str, times: int = 1, *, match: Mapping[str, Any] | None = None) -> None:
        """The next ``times`` calls of ``function`` (whose event has ``match``'s items) get Lambda's 429."""
        with self._lock:
            self._faults.append(_Fault(function, times, "throttle", dict(match or {})))

    def fail(self, function: str, times: int = 1, *, error: BaseException | None = None, match: Mapping[str, Any] | None = None) -> None:
        """The next ``times`` calls of ``function`` (whose event has ``match``'s items) raise ``error`` in the handler."""
        failure = error or RuntimeError(f"injected failure of {function}")
        with self._lock:
            self._faults.append(_Fault(function, times, "fail", dict(match or {}), failure))

    @property
    def calls(self) -> list[Invocation]:
        with self._lock:
            return list(self._calls)

    def calls_of(self, function: str) -> list[Invocation]:
        return [call for call in self.calls if call.function == function]

    def _take_fault(self, function: str, event: Any) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies(function, event):
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, invocation: Invocation) -> None:
        with self._lock:
            self._calls.append(invocation)

    # -- running --

    def run(self, function: Any, event: Any) -> tuple[str, bool, str]:
        """moto's ``_invoke_lambda``: (JSON result, errored, logs) for one call of the moto ``LambdaFunction``."""
        payload = _parse_event(event)
        name = str(function.function_name)
        fault = self._take_fault(name, payload)
        if fault is not None and fault.kind == "throttle":
            self._record(Invocation(name, payload, None, errored=True, throttled=True))
            raise _throttle_error(name)
        context = LocalContext(
            function_name=name,
            invoked_function_arn=str(function.function_arn),
            memory_limit_in_mb=int(function.memory_size or 128),
            timeout_seconds=int(function.timeout or 3),
        )
        environment = {str(k): str(v) for k, v in (function.environment_vars or {}).items()}
        error = fault.error if fault is not None else None
        result, errored, logs = self.call(str(function.handler), environment, payload, context, error=error)
        self._record(Invocation(name, payload, result, errored=errored, throttled=False))
        return json.dumps(result, default=str), errored, logs

    def call(
        self,
        handler: str,
        environment: Mapping[str, str],
        event: Any,
        context: Any,
        *,
        error: BaseException | None = None,
        arguments: tuple[Any, ...] | None = None,
    ) -> tuple[Any, bool, str]:
        """Import ``handler`` and call it under ``environment``; (result, errored, logs). ``error`` is raised instead.
        ``arguments`` replaces ``(event, context)`` for a module's other functions (the inference capture's flush)."""
        module_name, _, attribute = handler.rpartition(".")
        variables = dict(environment)
        variables["POWERTOOLS_TRACE_DISABLED"] = "1"
        if self.endpoint_url:
            variables["MLOPS_ENDPOINT_URL"] = self.endpoint_url
        with _INVOKE_LOCK, _swapped_environment(variables), _captured_output() as buffer:
            try:
                if error is not None:
                    raise error
                function = self._load(module_name, attribute, variables)
                return function(*((event, context) if arguments is None else arguments)), False, buffer.getvalue()
            except Exception as exc:  # Lambda reports any exception as the invocation's error
                buffer.write(traceback.format_exc())
                return {"errorType": type(exc).__name__, "errorMessage": str(exc)}, True, buffer.getvalue()

    def _load(self, module_name: str, attribute: str, variables: Mapping[str, str]) -> Callable[[Any, Any], Any]:
        if not module_name:
            raise LocalStackError(f"handler {attribute!r}: expected module.function")
        if str(self.code_root) not in sys.path:
            sys.path.insert(0, str(self.code_root))
        module = importlib.import_module(module_name)
        snapshot = tuple(sorted(variables.items()))
        if self._last_env.get(module_name) != snapshot:
            for name in _ENVIRONMENT_CACHES:
                cache_clear = getattr(getattr(module, name, None), "cache_clear", None)
                if cache_clear is not None:
                    cache_clear()
            self._last_env[module_name] = snapshot
        function = getattr(module, attribute, None)
        if not callable(function):
            raise LocalStackError(f"handler {module_name}.{attribute}: {module_name} has no function {attribute!r}")
        return function  # type: ignore[no-any-return]


def _parse_event(event: Any) -> Any:
    if isinstance(event, bytes):
        event = event.decode()
    if isinstance(event, str):
        return json.loads(event) if event.strip() else {}
    return {} if event is None else event


_LAMBDA_SCOPED = ("MLOPS_", "POWERTOOLS_")


@contextmanager
def _swapped_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` as the function sees it: the process's, minus its MLOPS_/POWERTOOLS_ settings, plus the
    function's. Only the changed keys are touched, so other threads never see an empty environment."""
    changes: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_LAMBDA_SCOPED) and k not in variables}
    changes.update(variables)
    saved = {k: os.environ.get(k) for k in changes}
    _apply(changes)
    try:
        yield
    finally:
        _apply(saved)


def _apply(changes: Mapping[str, str | None]) -> None:
    for key, value in changes.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def _captured_output() -> Iterator[io.StringIO]:
    previous = getattr(_capture, "buffer", None)
    buffer = _capture.buffer = io.StringIO()
    try:
        yield buffer
    finally:
        _capture.buffer = previous
