"""The synthesized CloudFormation template as local mode reads it: intrinsic functions resolved against what was
provisioned (:class:`Resolver`: Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::Base64, Fn::If and the
conditions), the logical ids a value refers to and an order of creation that honours them, and
:class:`LocalStackError`, the error every part of the local stand-in raises when a template cannot run locally.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serverless_mlops.errors import MlopsError

DEFAULT_STACK = "serverless-mlops-dev"


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
            return str(delimiter).join(cfn_text(item) for item in self.resolve(items))
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
            return cfn_text(self.resolve(text)).split(delimiter)
        if key == "Fn::Base64":
            return base64.b64encode(cfn_text(self.resolve(argument)).encode()).decode()
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
                return cfn_text(variables[name])
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


def cfn_text(value: Any) -> str:
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
