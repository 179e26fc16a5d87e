"""Provision in moto what a synthesized CDK template names (:func:`provision`), and the handle on what it created
(:class:`LocalStack`).

:func:`provision` reads a synthesized template (a dict) and its cloud assembly folder and creates, in moto (the
in-process ``mock_aws`` or a :class:`~serverless_mlops.local.moto.LocalAws` server, chosen by ``Settings.endpoint_url``),
the resources the workflow and the functions need: S3 buckets, DynamoDB tables (the template's key schema), SNS
topics and subscriptions, SQS queues, IAM roles and managed policies, Lambda functions (a placeholder zip; handler,
runtime, timeout and environment as the template gives them, intrinsics resolved: their code runs in-process, see
:mod:`serverless_mlops.local.lambda_runtime`), Step Functions state machines (the definition the template gives,
intrinsics resolved) and the files of each ``Custom::CDKBucketDeployment`` (the asset's folder, found through the
assembly's ``*.assets.json``). Names derive from the stack name and the logical id, lower-cased where AWS wants it.
Every other resource type (API Gateway, alarms, policies, KMS keys, log groups, ...) is skipped and listed in
:attr:`LocalStack.skipped`: moto either ignores it or cannot serve it (``mlops serve`` is the HTTP API).
Provisioning is idempotent: a second run updates functions and state machines and leaves the rest as it is.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serverless_mlops.aws import client
from serverless_mlops.local.assembly import asset_source
from serverless_mlops.local.template import DEFAULT_STACK, LocalStackError, Resolver, Unresolvable, cfn_text, creation_order
from serverless_mlops.settings import Settings

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
    from serverless_mlops.local.moto import enable_step_functions_execution, use_fake_credentials

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
            stack.outputs[name] = cfn_text(value)
    return stack


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
        attributes = {k: cfn_text(props[k]) for k in ("DisplayName", "FifoTopic", "ContentBasedDeduplication") if k in props}
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for subscription in props.get("Subscription", []):
            if subscription.get("Protocol") in _LOCAL_PROTOCOLS:
                self.client("sns").subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        self._set(logical_id, arn, TopicArn=arn, TopicName=name)

    def _subscription(self, logical_id: str, name: str, props: Mapping[str, Any]) -> None:
        attributes = {}
        if "RawMessageDelivery" in props:
            attributes["RawMessageDelivery"] = cfn_text(props["RawMessageDelivery"])
        if "FilterPolicy" in props:
            attributes["FilterPolicy"] = cfn_text(props["FilterPolicy"])
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
        attributes = {k: cfn_text(props[k]) for k in keys if k in props}
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
        variables = {k: cfn_text(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        config: dict[str, Any] = {
            "FunctionName": name,
            "Role": props["Role"],
            "Handler": props.get("Handler", "index.handler"),
            "Runtime": props.get("Runtime", "python3.12"),
            "Timeout": int(props.get("Timeout", 3)),
            "MemorySize": int(props.get("MemorySize", 128)),
            "Environment": {"Variables": variables},
            "Description": cfn_text(props.get("Description", "")),
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
            definition = definition.replace("${" + key + "}", cfn_text(value))
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
                    body = body.replace(token.encode(), cfn_text(value).encode())
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
