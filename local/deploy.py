"""Deploy the project's CloudFormation template into the local stack.

Resource types that moto's CloudFormation really creates (S3 buckets, DynamoDB tables, IAM, ...) go
through ``create_stack`` on moto; the ones it does not model (Glue, Firehose, Athena, Secrets
Manager) are created by API calls built from the same template's Properties, so the local stack and
AWS read one definition. Resources conditioned on AWS (MWAA, VPC, the notifier Lambda) are skipped,
as CloudFormation itself skips them with DeploymentTarget=local.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from botocore.model import Shape

from local.cfn import Resolver, TemplateError, references

log = logging.getLogger(__name__)

ClientFactory = Callable[[str], Any]


@dataclass
class Deployment:
    """What the template turned into locally."""

    stack_id: str
    outputs: dict[str, str]
    created_by: dict[str, str]  # logical ID -> "cloudformation" | "api" | "condition-false" | "not-emulated"
    refs: dict[str, Any] = field(default_factory=dict)
    resolver: Resolver | None = None
    notes: list[str] = field(default_factory=list)


def moto_cloudformation_types() -> set[str]:
    """Resource types moto's CloudFormation implements (everything else it would skip with a warning)."""
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map())


def _fit_to_shape(value: Any, shape: Shape, where: str, dropped: list[str]) -> Any:
    """Keep only what the API's input shape accepts (CloudFormation has extra properties), coercing
    the scalar types YAML may have left as strings."""
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            raise TemplateError(f"{where}: expected a mapping, got {value!r}")
        kept = {}
        for key, item in value.items():
            if key in shape.members:
                kept[key] = _fit_to_shape(item, shape.members[key], f"{where}.{key}", dropped)
            else:
                dropped.append(f"{where}.{key}")
        return kept
    if shape.type_name == "list":
        return [_fit_to_shape(item, shape.member, f"{where}[{i}]", dropped) for i, item in enumerate(value)]
    if shape.type_name == "map":
        return {k: _fit_to_shape(v, shape.value, f"{where}.{k}", dropped) for k, v in value.items()}
    if shape.type_name in ("integer", "long") and isinstance(value, str):
        return int(value)
    if shape.type_name == "boolean" and isinstance(value, str):
        return value.strip().lower() == "true"
    if shape.type_name == "string" and isinstance(value, (int, float, bool)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def _api_kwargs(client: Any, operation: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    shape = client.meta.service_model.operation_model(operation).input_shape
    dropped: list[str] = []
    kwargs = _fit_to_shape(dict(params), shape, where, dropped)
    if dropped:
        log.info("%s: not part of %s, ignored locally: %s", where, operation, ", ".join(dropped))
    return kwargs


# Each creator returns (the value of Ref, {attribute: value}) as CloudFormation would.
Creator = Callable[[ClientFactory, dict[str, Any], str, str], tuple[Any, dict[str, Any]]]


def _create_secret(clients: ClientFactory, props: dict[str, Any], logical_id: str, stack: str):
    sm = clients("secretsmanager")
    params: dict[str, Any] = {k: v for k, v in props.items() if k in ("Name", "Description", "KmsKeyId", "Tags")}
    params.setdefault("Name", f"{stack}-{logical_id}")
    if "SecretString" in props:
        params["SecretString"] = props["SecretString"]
    elif "GenerateSecretString" in props:
        spec = props["GenerateSecretString"]
        password = sm.get_random_password(
            **_api_kwargs(sm, "GetRandomPassword", spec, f"{logical_id}.GenerateSecretString")
        )["RandomPassword"]
        if spec.get("SecretStringTemplate") and spec.get("GenerateStringKey"):
            document = json.loads(spec["SecretStringTemplate"])
            document[spec["GenerateStringKey"]] = password
            password = json.dumps(document)
        params["SecretString"] = password
    arn = sm.create_secret(**params)["ARN"]
    return arn, {"Id": arn}


def _create_glue_database(clients: ClientFactory, props: dict[str, Any], logical_id: str, stack: str):
    glue = clients("glue")
    glue.create_database(**_api_kwargs(glue, "CreateDatabase", {"DatabaseInput": props["DatabaseInput"]},
                                       logical_id))
    return props["DatabaseInput"]["Name"], {}


def _create_glue_table(clients: ClientFactory, props: dict[str, Any], logical_id: str, stack: str):
    glue = clients("glue")
    params = {"DatabaseName": props["DatabaseName"], "TableInput": props["TableInput"]}
    glue.create_table(**_api_kwargs(glue, "CreateTable", params, logical_id))
    return props["TableInput"]["Name"], {}


def _create_delivery_stream(clients: ClientFactory, props: dict[str, Any], logical_id: str, stack: str):
    firehose = clients("firehose")
    params = dict(props)
    params.setdefault("DeliveryStreamName", f"{stack}-{logical_id}")
    arn = firehose.create_delivery_stream(
        **_api_kwargs(firehose, "CreateDeliveryStream", params, logical_id)
    )["DeliveryStreamARN"]
    return params["DeliveryStreamName"], {"Arn": arn}


def _create_athena_workgroup(clients: ClientFactory, props: dict[str, Any], logical_id: str, stack: str):
    athena = clients("athena")
    params = {k: v for k, v in props.items() if k in ("Name", "Description", "Tags")}
    if "WorkGroupConfiguration" in props:
        params["Configuration"] = props["WorkGroupConfiguration"]
    athena.create_work_group(**_api_kwargs(athena, "CreateWorkGroup", params, logical_id))
    return props["Name"], {}


API_CREATORS: dict[str, Creator] = {
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::Glue::Database": _create_glue_database,
    "AWS::Glue::Table": _create_glue_table,
    "AWS::KinesisFirehose::DeliveryStream": _create_delivery_stream,
    "AWS::Athena::WorkGroup": _create_athena_workgroup,
}


def _after_cloudformation(clients: ClientFactory, resource_type: str, props: dict[str, Any], ref: Any) -> None:
    """Properties moto's CloudFormation accepts but does not apply."""
    if resource_type == "AWS::DynamoDB::Table" and props.get("TimeToLiveSpecification"):
        spec = props["TimeToLiveSpecification"]
        clients("dynamodb").update_time_to_live(
            TableName=ref,
            TimeToLiveSpecification={"AttributeName": spec["AttributeName"],
                                     "Enabled": str(spec.get("Enabled", True)).lower() == "true"},
        )


def _moto_stack(account_id: str, region: str, stack_id: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends[account_id][region].stacks[stack_id]


def deploy(
    template: dict[str, Any],
    parameters: Mapping[str, str],
    clients: ClientFactory,
    *,
    stack_name: str,
    account_id: str,
    region: str,
) -> Deployment:
    """Deploy ``template`` into the moto server reached by ``clients`` (which runs in this process)."""
    resources: dict[str, dict[str, Any]] = template["Resources"]
    refs: dict[str, Any] = {}
    attrs: dict[str, dict[str, Any]] = {}
    created_by: dict[str, str] = {}
    moto_models: dict[str, Any] = {}

    def ref(logical_id: str) -> Any:
        if logical_id in refs:
            return refs[logical_id]
        raise TemplateError(f"Ref {logical_id}: {_why_missing(logical_id)}")

    def get_att(logical_id: str, attribute: str) -> Any:
        if logical_id in moto_models:
            return moto_models[logical_id].get_cfn_attribute(attribute)
        if attribute in attrs.get(logical_id, {}):
            return attrs[logical_id][attribute]
        raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: {_why_missing(logical_id)}")

    def _why_missing(logical_id: str) -> str:
        state = created_by.get(logical_id, "not created yet")
        return f"resource is {state} in the local stack (DeploymentTarget={parameters.get('DeploymentTarget')})"

    pseudo = {"AWS::AccountId": account_id, "AWS::Region": region, "AWS::StackName": stack_name,
              "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    from local.cfn import parameter_values

    values = parameter_values(template, parameters)
    resolver = Resolver(template, values, pseudo, ref, get_att)
    moto_types = moto_cloudformation_types()

    for logical_id, resource in resources.items():
        condition = resource.get("Condition")
        if condition and not resolver.condition(condition):
            created_by[logical_id] = "condition-false"
        elif resource["Type"] in moto_types:
            created_by[logical_id] = "cloudformation"
        elif resource["Type"] in API_CREATORS:
            created_by[logical_id] = "api"
        else:
            created_by[logical_id] = "not-emulated"
            log.warning("%s (%s) has no local emulation; it is skipped", logical_id, resource["Type"])

    def deps(logical_id: str) -> set[str]:
        resource = resources[logical_id]
        depends_on = resource.get("DependsOn", [])
        found = references(resource.get("Properties", {})) | set(
            [depends_on] if isinstance(depends_on, str) else depends_on
        )
        return {name for name in found if name in resources}

    for logical_id, how in created_by.items():
        if how != "cloudformation":
            continue
        foreign = sorted(d for d in deps(logical_id) if created_by[d] != "cloudformation")
        if foreign:
            raise TemplateError(
                f"Resources.{logical_id}: moto's CloudFormation creates it, but it refers to {foreign}, which "
                "the local stack creates by API (or not at all); the local stack cannot order that"
            )

    # 1. moto's CloudFormation: the supported resources, with the template's parameters and conditions.
    moto_template = {key: value for key, value in template.items() if key not in ("Resources", "Outputs")}
    moto_template["Resources"] = {lid: r for lid, r in resources.items() if created_by[lid] == "cloudformation"}
    cfn = clients("cloudformation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack_id = cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(moto_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )["StackId"]
    status = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        raise TemplateError(f"moto's CloudFormation left stack {stack_name} in {status}")
    moto_stack = _moto_stack(account_id, region, stack_id)
    for logical_id, how in created_by.items():
        if how == "cloudformation":
            model = moto_stack.resource_map[logical_id]
            moto_models[logical_id] = model
            refs[logical_id] = getattr(model, "physical_resource_id", model)
            props = resolver.resolve(resources[logical_id].get("Properties", {}), f"Resources.{logical_id}")
            _after_cloudformation(clients, resources[logical_id]["Type"], props, refs[logical_id])

    # 2. API calls for the rest, in dependency order.
    api_ids = [lid for lid, how in created_by.items() if how == "api"]
    try:
        order = list(TopologicalSorter({lid: deps(lid) & set(api_ids) for lid in api_ids}).static_order())
    except CycleError as exc:
        raise TemplateError(f"circular references between {exc.args[1]}") from exc
    for logical_id in order:
        resource = resources[logical_id]
        props = resolver.resolve(resource.get("Properties", {}), f"Resources.{logical_id}.Properties")
        refs[logical_id], attrs[logical_id] = API_CREATORS[resource["Type"]](clients, props, logical_id, stack_name)

    # 3. Outputs, resolved like CloudFormation would.
    outputs: dict[str, str] = {}
    notes: list[str] = []
    for name, output in (template.get("Outputs") or {}).items():
        condition = output.get("Condition")
        if condition and not resolver.condition(condition):
            continue
        try:
            outputs[name] = str(resolver.resolve(output["Value"], f"Outputs.{name}"))
        except TemplateError as exc:
            notes.append(f"output {name} not available locally: {exc}")
            log.warning("output %s not available locally: %s", name, exc)
    return Deployment(stack_id=stack_id, outputs=outputs, created_by=created_by, refs=refs,
                      resolver=resolver, notes=notes)
