"""What the template says about its Lambdas, read for the local stack.

AWS runs a function's ``Handler`` from the zip its ``Code`` points at; the local stack runs the same
module from this repository. The mapping goes through the zip's own builder: an ``S3Key`` of
``lambdas/<name>.zip`` is built by ``lambdas/<name>/package.py``, whose ``handler_files()`` says which
repository file becomes which archive name (infra/package.py ships that zip under that key). So a
Handler ``lambdas.notifier.app.handler`` in a zip laid out from the repository root, or ``app.handler``
in one laid out from ``lambdas/notifier/``, both become ``lambdas.notifier.app.handler`` here.

Also: the event source mappings on DynamoDB streams (the stack wires each to its function by default),
and, for ``stack.json``, why the stack does not emulate what the template deploys only on AWS.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from local import config
from local.cfn import Resolver, TemplateError, parameter_values

log = logging.getLogger(__name__)

ArchiveFiles = Callable[[str], dict[str, Path]]

# Why the stack skips what the template deploys on AWS: stack.json's "not_emulated" (docs/local-stack.md).
NOT_EMULATED_WHY: dict[str, str] = {
    "AWS::MWAA::Environment": "Airflow runs outside the stack, on its env(): make demo in-process, "
                              "docker-compose's airflow-* services",
    "AWS::EC2::": "no network to build: every piece of the stack listens on 127.0.0.1",
    "AWS::IAM::": "moto does not enforce IAM: every call with the fake credentials is allowed",
    "AWS::S3::BucketPolicy": "moto does not enforce bucket policies",
    "AWS::KMS::Key": "nothing is encrypted locally (EMR's local disks are this machine's)",
    "AWS::EMR::SecurityConfiguration": "steps run with the local pyspark, not on EMR instances",
    "AWS::Logs::": "logs are files under the state dir: stack.log (the stack and the Lambdas it runs), "
                   "emr/<cluster>/steps/<step>/",
    "AWS::CloudWatch::": "nothing publishes CloudWatch metrics locally, so there is nothing to alarm on",
    "AWS::SNS::": "alarm notifications: nothing alarms locally",
    "AWS::SecretsManager::Secret": "a secret only MWAA reads (its secrets backend); locally the stack gives "
                                   "Airflow the same values in its environment (AIRFLOW_VAR_*, AIRFLOW_CONN_*)",
    "AWS::S3::Bucket": "the dashboard site's bucket: locally the site is a directory, served by "
                       "local.analytics.serve",
    "AWS::CloudFront::": "the dashboard site's CDN: locally the site is served by local.analytics.serve",
    "AWS::Lambda::Function": "only Lambdas attached to a DynamoDB stream run locally (the stream bridge)",
    "AWS::Lambda::EventSourceMapping": "only DynamoDB stream sources are emulated (the stream bridge)",
}


def why_not_emulated(resource_type: str) -> str:
    for prefix, why in NOT_EMULATED_WHY.items():
        if resource_type == prefix or (prefix.endswith("::") and resource_type.startswith(prefix)):
            return why
    return f"the local stack has no emulation of {resource_type}"


def deployed_on_aws(template: Mapping[str, Any], parameters: Mapping[str, str]) -> set[str]:
    """Logical IDs whose Condition holds with the same parameters but DeploymentTarget=aws."""
    def unavailable(*args: Any) -> Any:
        raise TemplateError(f"{args}: conditions may only use parameters")

    values = parameter_values(template, {**parameters, "DeploymentTarget": "aws"})
    resolver = Resolver(template, values, {"AWS::Region": config.REGION, "AWS::AccountId": config.ACCOUNT_ID},
                        unavailable, unavailable)
    return {lid for lid, resource in template["Resources"].items()
            if not resource.get("Condition") or resolver.condition(resource["Condition"])}


@dataclass(frozen=True)
class StreamMapping:
    """An AWS::Lambda::EventSourceMapping from a DynamoDB table's stream to a function of the template."""

    mapping_id: str
    table_id: str
    function_id: str


def _getatt_target(node: Any) -> list[str] | None:
    target = node.get("Fn::GetAtt") if isinstance(node, dict) and len(node) == 1 else None
    if isinstance(target, str):
        target = target.split(".", 1)
    return list(target) if isinstance(target, list) else None


def stream_mappings(template: Mapping[str, Any]) -> tuple[list[StreamMapping], dict[str, str]]:
    """The DynamoDB stream mappings, and {logical ID: why not} for the mappings that are something else."""
    resources = template["Resources"]
    found: list[StreamMapping] = []
    others: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource.get("Properties", {})
        target = _getatt_target(props.get("EventSourceArn"))
        table = resources.get(target[0], {}) if target else {}
        function_ref = props.get("FunctionName")
        function_id = function_ref.get("Ref") if isinstance(function_ref, dict) else None
        if not (target and target[1:] == ["StreamArn"] and table.get("Type") == "AWS::DynamoDB::Table"):
            others[logical_id] = "its EventSourceArn is not a DynamoDB table's StreamArn of this template: " \
                                 + why_not_emulated(resource["Type"])
        elif function_id not in resources or resources[function_id]["Type"] != "AWS::Lambda::Function":
            others[logical_id] = f"its FunctionName is not a Ref to an AWS::Lambda::Function of this template " \
                                 f"({function_ref!r})"
        else:
            found.append(StreamMapping(logical_id, target[0], function_id))
    return found, others


def code_archive_files(key: str) -> dict[str, Path]:
    """Archive name -> repository file of the zip that infra/package.py uploads as ``key``."""
    path = PurePosixPath(key)
    if len(path.parts) != 2 or path.parts[0] != "lambdas" or path.suffix != ".zip":
        raise TemplateError(f"code key {key!r} is not a zip this repository builds (lambdas/<name>.zip)")
    builder = f"lambdas.{path.stem}.package"
    try:
        module = importlib.import_module(builder)
    except ImportError as exc:
        raise TemplateError(f"code key {key!r}: no builder {builder} ({exc})") from exc
    files = getattr(module, "handler_files", None)
    if not callable(files):
        raise TemplateError(f"code key {key!r}: {builder} has no handler_files()")
    return dict(files())


def handler_path(
    template: Mapping[str, Any], function_id: str, resolver: Resolver,
    archive_files: ArchiveFiles = code_archive_files,
) -> str:
    """The function's Handler as a dotted path of this repository; TemplateError names the resource."""
    where = f"Resources.{function_id}"
    props = template["Resources"][function_id].get("Properties", {})
    try:
        handler = resolver.resolve(props.get("Handler"), f"{where}.Handler")
        code = props.get("Code") or {}
        if not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"Handler {handler!r}: expected module.function")
        if "S3Key" not in code:
            kind = next(iter(code), "no Code") if isinstance(code, dict) else type(code).__name__
            raise TemplateError(f"Code has {kind}, not an S3Key of a zip this repository builds; "
                                "the local stack runs only repository modules")
        key = resolver.resolve(code["S3Key"], f"{where}.Code.S3Key")
        files = archive_files(str(key))
        module, _, function = handler.rpartition(".")
        relative = module.replace(".", "/")
        source = files.get(f"{relative}.py") or files.get(f"{relative}/__init__.py")
        if source is None:
            raise TemplateError(f"Handler {handler!r}: {relative}.py is not in the zip {key} "
                                f"(it holds {', '.join(sorted(n for n in files if n.endswith('.py'))[:8])}, ...)")
        parts = Path(source).resolve().relative_to(config.REPO_ROOT).with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    except (TemplateError, ValueError) as exc:
        raise TemplateError(f"{where}: cannot map its Handler to a module of this repository: {exc}") from exc
    return f"{dotted}.{function}"


def _try_resolve(resolver: Resolver, node: Any, where: str) -> Any:
    try:
        return resolver.resolve(node, where)
    except TemplateError as exc:
        log.warning("%s is not available locally: %s", where, exc)
        return None


def mapping_from_template(template: dict[str, Any], table_logical_id: str, resolver: Resolver) -> dict[str, Any]:
    """EventSourceConfig fields from the template's event source mapping of ``table``'s stream and its
    function (both may be conditioned on AWS: their Properties still say how AWS would invoke it)."""
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource.get("Properties", {})
        target = _getatt_target(props.get("EventSourceArn"))
        if not target or target[:2] != [table_logical_id, "StreamArn"]:
            continue
        found: dict[str, Any] = {
            "batch_size": int(props.get("BatchSize", 100)),
            "report_batch_item_failures": "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            "starting_position": props.get("StartingPosition", "TRIM_HORIZON"),
        }
        retries = int(props.get("MaximumRetryAttempts", -1))
        if retries >= 0:
            found["maximum_retry_attempts"] = retries
        destination = (props.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
        if destination is not None:
            found["on_failure_destination"] = _try_resolve(resolver, destination, logical_id)
        function_ref = props.get("FunctionName", {})
        function_id = function_ref.get("Ref") if isinstance(function_ref, dict) else None
        function = resources.get(function_id or "", {}).get("Properties", {})
        if function:
            found["function_name"] = _try_resolve(resolver, function.get("FunctionName"), function_id)
            found["timeout_seconds"] = float(function.get("Timeout", 3))
            found["memory_mb"] = int(function.get("MemorySize", 128))
            variables = (function.get("Environment") or {}).get("Variables") or {}
            found["environment"] = {
                name: str(value) for name, raw in variables.items()
                if (value := _try_resolve(resolver, raw, f"{function_id}.Environment.{name}")) is not None
            }
        return found
    return {}
