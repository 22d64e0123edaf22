"""A small CloudFormation reader: YAML short-form tags, conditions, and the intrinsic functions the
local stack needs to build API calls from the same template moto deploys.

It is deliberately not a full CloudFormation engine: Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join,
Fn::Select, Fn::Split, Fn::Equals/Not/And/Or, Fn::ToJsonString and AWS::NoValue cover the project's
template; anything else fails with an error naming the function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

NO_VALUE = object()  # AWS::NoValue: the property disappears
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve; the message names where."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation's short forms (!Ref, !Sub, ...) into their long forms."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML template (with short-form tags)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        template = yaml.load(text, Loader=_CfnLoader)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not a valid YAML/JSON template: {exc}") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path}: expected a mapping with a 'Resources' section")
    return template


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Given parameter values over the template's defaults; unknown or missing ones are errors."""
    declared = template.get("Parameters", {}) or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"parameters {unknown} are not declared in the template (declared: {sorted(declared)})")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            values[name] = str(given[name])
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name!r} has no Default and no value was given")
        allowed = spec.get("AllowedValues")
        if allowed and values[name] not in [str(v) for v in allowed]:
            raise TemplateError(f"parameter {name}={values[name]!r}: expected one of {allowed}")
    return values


def references(node: Any) -> set[str]:
    """Logical IDs (resources or parameters) a property tree refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node and len(node) == 1:
            found.add(node["Ref"])
        elif "Fn::GetAtt" in node and len(node) == 1:
            target = node["Fn::GetAtt"]
            found.add((target.split(".", 1) if isinstance(target, str) else target)[0])
        elif "Fn::Sub" in node and len(node) == 1:
            sub = node["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
            for var in _SUB_VAR.findall(text):
                if var.split(".", 1)[0] not in variables:
                    found.add(var.split(".", 1)[0])
            found |= references(variables)
        else:
            for value in node.values():
                found |= references(value)
    elif isinstance(node, list):
        for value in node:
            found |= references(value)
    return {name for name in found if not name.startswith("AWS::")}


class Resolver:
    """Evaluates intrinsic functions against parameters, conditions and already-created resources.

    ``ref(logical_id)`` and ``get_att(logical_id, attribute)`` are supplied by the caller, because only
    it knows where a resource lives (moto's CloudFormation, or an API call of the local stack).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
    ) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self.pseudo = dict(pseudo)
        self._ref = ref
        self._get_att = get_att
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}) or {}:
            self.condition(name)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise TemplateError(f"condition {name!r} is not declared in Conditions")
            self.conditions[name] = bool(self.resolve(spec, where=f"Conditions.{name}"))
        return self.conditions[name]

    def ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in (self.template.get("Resources") or {}):
            return self._ref(name)
        raise TemplateError(f"{where}: Ref to unknown name {name!r}")

    def resolve(self, node: Any, where: str = "template") -> Any:
        if isinstance(node, list):
            items = [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(node)]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg, where)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._get_att(logical, self.resolve(attribute, where))
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.condition(name) else if_false, where)
            if key == "Fn::Equals":
                left, right = (self.resolve(v, where) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0], where)
            if key == "Fn::And":
                return all(self.resolve(v, where) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v, where) for v in arg)
            if key == "Fn::Join":
                separator, values = arg
                return str(separator).join(str(v) for v in self.resolve(values, where))
            if key == "Fn::Select":
                index, values = arg
                return self.resolve(values, where)[int(self.resolve(index, where))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text, where)).split(separator)
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg, where), separators=(",", ":"))
            if key.startswith("Fn::"):
                raise TemplateError(f"{where}: {key} is not supported by the local stack's resolver")
        resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _sub(self, arg: Any, where: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        values = {name: self.resolve(value, where) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] in (self.template.get("Resources") or {}):
                logical, attribute = name.split(".", 1)
                return str(self._get_att(logical, attribute))
            return str(self.ref(name, where))

        # ${!Literal} is CloudFormation's escape for a literal ${Literal}.
        return _SUB_VAR.sub(replace, text).replace("${!", "${")
