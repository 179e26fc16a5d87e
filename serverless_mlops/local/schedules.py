"""The local stand-in for EventBridge rules: read each schedule rule of the provisioned template and what it sends to
which target (:func:`scheduled_targets`), and build that input as EventBridge would (:func:`transform_input`, an
InputTransformer's ``InputPathsMap`` and ``InputTemplate``). :func:`serverless_mlops.local.environment.fire_schedules`
sends them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from serverless_mlops.errors import MlopsError
from serverless_mlops.local.provisioner import FUNCTION, LocalStack

RULE = "AWS::Events::Rule"


class ScheduledTarget(BaseModel):
    """One target of an EventBridge schedule rule in the template, with the input EventBridge would send it."""

    rule: str = Field(description="the rule's logical id")
    description: str = ""
    expression: str
    function: str = Field(description="the target function's local name")
    model: str | None = None
    input: str | None = Field(default=None, description="the target's constant Input (JSON text)")
    input_paths: dict[str, str] = Field(default_factory=dict, description="InputTransformer.InputPathsMap")
    input_template: str | None = Field(default=None, description="InputTransformer.InputTemplate")
    rule_arn: str = ""

    def event(self, now: datetime | None = None) -> dict[str, Any]:
        """What EventBridge delivers to the target when the rule fires at ``now`` (UTC, cut to the minute)."""
        if self.input is not None:
            return dict(json.loads(self.input))
        when = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
        arn = self.rule_arn.split(":")
        region, account = (arn[3], arn[4]) if len(arn) >= 6 else ("us-east-1", "123456789012")
        scheduled = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [self.rule_arn] if self.rule_arn else [],
            "detail": {},
        }
        if self.input_template is not None:
            return dict(json.loads(transform_input(self.input_template, self.input_paths, scheduled)))
        return scheduled


def _json_path(document: Any, path: str) -> Any:
    """A JSONPath of the simple form EventBridge input paths use (``$``, ``$.detail.model``)."""
    if path == "$":
        return document
    if not path.startswith("$."):
        raise MlopsError(f"input path {path!r}: only $ and $.a.b paths are supported locally")
    value = document
    for part in path[2:].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")


def transform_input(template: str, paths: Mapping[str, str], event: Mapping[str, Any]) -> str:
    """EventBridge's InputTransformer: ``<name>`` becomes the path's value, JSON-encoded outside a JSON string and as
    the string's text inside one (``"at <time>"``); a name without a path stays as written."""
    values = {name: _json_path(event, path) for name, path in paths.items()}
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(template):
        char = template[i]
        placeholder = _PLACEHOLDER.match(template, i) if not escaped else None
        if placeholder is not None and placeholder.group(1) in values:
            value = values[placeholder.group(1)]
            if in_string:
                out.append(json.dumps(value if isinstance(value, str) else json.dumps(value))[1:-1])
            else:
                out.append(json.dumps(value))
            i = placeholder.end()
            continue
        if in_string and char == "\\" and not escaped:
            escaped = True
        else:
            if char == '"' and not escaped:
                in_string = not in_string
            escaped = False
        out.append(char)
        i += 1
    return "".join(out)


def scheduled_targets(stack: LocalStack) -> list[ScheduledTarget]:
    """Every (schedule rule, Lambda target) pair of the template whose function was provisioned."""
    targets: list[ScheduledTarget] = []
    resources = stack.template.get("Resources", {})
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource.get("Type") != RULE or "ScheduleExpression" not in props:
            continue
        for target in props.get("Targets", []):
            arn = target.get("Arn")
            function = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
            if function not in stack.refs or stack.created.get(function) != FUNCTION:
                continue
            transformer = target.get("InputTransformer") or {}
            scheduled = ScheduledTarget(
                rule=logical_id,
                description=str(props.get("Description", "")),
                expression=str(props["ScheduleExpression"]),
                function=stack.ref(function),
                input=target.get("Input"),
                input_paths=dict(transformer.get("InputPathsMap", {})),
                input_template=transformer.get("InputTemplate"),
                rule_arn=f"arn:aws:events:{stack.region}:{stack.account}:rule/{stack.stack_name}-{logical_id}",
            )
            model = scheduled.event().get("model")
            targets.append(scheduled.model_copy(update={"model": model if isinstance(model, str) else None}))
    return sorted(targets, key=lambda t: (t.model or "", t.rule))
