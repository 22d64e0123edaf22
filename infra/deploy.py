"""Deploy covid19-lake to an AWS account: bootstrap bucket, artifacts, then the main stack.

    python -m infra.deploy deploy  [--project covid19-lake] [--region eu-west-1] [-p Key=Value ...]
    python -m infra.deploy outputs [--project covid19-lake]
    python -m infra.deploy destroy [--project covid19-lake] [--yes]

``deploy`` is idempotent: it (1) creates or updates the bootstrap stack (the versioned artifacts bucket
MWAA reads), (2) builds plugins.zip and the Lambda zips (infra/package.py), (3) uploads DAGs,
requirements.txt, startup.sh, plugins.zip, the Lambda zips and spark_jobs/, skipping unchanged files so
their S3 versions (which MWAA and Lambda pin) stay put, (4) creates or updates the main stack with those
object versions. Credentials and region come from the usual AWS chain (AWS_PROFILE, env, SSO, ...).
See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from infra.package import REPO_ROOT, Artifact, build, spark_job_artifacts, tree_files, upload_artifacts

INFRA = REPO_ROOT / "infra"
MAIN_TEMPLATE = INFRA / "covid19-lake.yaml"
BOOTSTRAP_TEMPLATE = INFRA / "bootstrap.yaml"
STARTUP_SCRIPT = INFRA / "mwaa" / "startup.sh"
MAIN_TEMPLATE_KEY = "cloudformation/covid19-lake.yaml"  # the template is past TemplateBody's 51,200 bytes
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
# MWAA creation takes 20-40 minutes, an update of its requirements or plugins about as long.
STACK_WAITER = {"Delay": 30, "MaxAttempts": 180}
_NO_UPDATES = "No updates are to be performed"

ClientFactory = Callable[[str], Any]


class DeployError(RuntimeError):
    """A deploy step failed; the message says which stack or file and what to do."""


@dataclass(frozen=True)
class StackNames:
    bootstrap: str
    main: str

    @classmethod
    def for_project(cls, project: str) -> StackNames:
        return cls(bootstrap=f"{project}-bootstrap", main=project)


def parse_parameters(pairs: Iterable[str]) -> dict[str, str]:
    """``["Key=Value", ...]`` -> dict; a malformed pair is an error naming it."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DeployError(f"--parameter {pair!r}: expected Key=Value")
        parsed[key.strip()] = value
    return parsed


def dag_artifacts(dags_dir: Path = REPO_ROOT / "dags") -> list[Artifact]:
    """Everything under dags/ that MWAA should see (caches excluded), .airflowignore included."""
    return [Artifact(f"dags/{name}", path) for name, path in tree_files(dags_dir).items()]


def mwaa_artifacts(built: Mapping[str, Path], repo_root: Path = REPO_ROOT) -> list[Artifact]:
    """All uploads, keyed as the main template expects them."""
    return [
        *dag_artifacts(repo_root / "dags"),
        Artifact("requirements.txt", repo_root / "requirements.txt"),
        Artifact("startup.sh", STARTUP_SCRIPT),
        *(Artifact(key, path) for key, path in built.items()),
        *spark_job_artifacts(repo_root / "spark_jobs"),
        Artifact(MAIN_TEMPLATE_KEY, MAIN_TEMPLATE),
    ]


def prune_prefix(s3: Any, bucket: str, prefix: str, keep: set[str]) -> list[str]:
    """Delete keys under ``prefix`` that are no longer shipped (a removed DAG must leave MWAA).

    The bucket is versioned, so a deleted DAG stays recoverable from its previous version.
    """
    stale = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if obj["Key"] not in keep
    ]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale[start:start + 1000]]})
    for key in stale:
        print(f"removed s3://{bucket}/{key}")
    return stale


def ensure_versioning(s3: Any, bucket: str) -> None:
    """MWAA pins object versions, so its bucket must be versioned (bootstrap.yaml enables it; this also
    covers a bucket whose versioning was suspended by hand)."""
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        print(f"enabling versioning on s3://{bucket}")
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def _stack_status(cfn: Any, name: str) -> str | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def deploy_stack(
    cfn: Any,
    name: str,
    parameters: Mapping[str, str],
    *,
    template_body: str | None = None,
    template_url: str | None = None,
    waiter_config: Mapping[str, int] = STACK_WAITER,
) -> dict[str, str]:
    """Create or update ``name`` and wait; returns its outputs. No change is not an error."""
    source = {"TemplateBody": template_body} if template_body is not None else {"TemplateURL": template_url}
    request = {
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
        "Capabilities": CAPABILITIES,
        **source,
    }
    status = _stack_status(cfn, name)
    if status == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {name} is in ROLLBACK_COMPLETE (its first creation failed; see the stack events). "
            f"Delete it (python -m infra.deploy destroy) and deploy again."
        )
    try:
        if status is None:
            print(f"creating stack {name} ...")
            cfn.create_stack(**request, OnFailure="ROLLBACK")
            waiter = "stack_create_complete"
        else:
            print(f"updating stack {name} ...")
            cfn.update_stack(**request)
            waiter = "stack_update_complete"
        cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig=dict(waiter_config))
    except ClientError as exc:
        if _NO_UPDATES not in str(exc):
            raise DeployError(f"stack {name}: {exc}") from exc
        print(f"stack {name}: no changes")
    except WaiterError as exc:
        raise DeployError(f"stack {name} did not complete: {exc}; see its events in the console") from exc
    return stack_outputs(cfn, name)


def stack_outputs(cfn: Any, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def template_url(bucket: str, region: str, key: str = MAIN_TEMPLATE_KEY) -> str:
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"


def main_stack_parameters(
    project: str,
    bucket: str,
    versions: Mapping[str, str | None],
    overrides: Mapping[str, str],
    *,
    deployment_target: str = "aws",
) -> dict[str, str]:
    """The main stack's parameters: artifacts and their versions, then the operator's overrides."""
    parameters = {
        "DeploymentTarget": deployment_target,
        "ProjectName": project,
        "ArtifactsBucket": bucket,
        "NotifierCodeKey": "lambdas/notifier.zip",
        "NotifierCodeObjectVersion": versions.get("lambdas/notifier.zip") or "",
        "QuickSightEmbedCodeKey": "lambdas/quicksight_embed.zip",
        "QuickSightEmbedCodeObjectVersion": versions.get("lambdas/quicksight_embed.zip") or "",
        "RequirementsObjectVersion": versions.get("requirements.txt") or "",
        "PluginsObjectVersion": versions.get("plugins.zip") or "",
        "StartupScriptObjectVersion": versions.get("startup.sh") or "",
    }
    reserved = sorted(set(overrides) & {"DeploymentTarget", "ProjectName", "ArtifactsBucket"})
    if reserved:
        raise DeployError(f"--parameter {reserved}: set by the deploy script (use --project for ProjectName)")
    return {**parameters, **overrides}


def deploy(
    clients: ClientFactory,
    *,
    project: str,
    region: str,
    overrides: Mapping[str, str],
    offline: bool = False,
    data_only: bool = False,
    repo_root: Path = REPO_ROOT,
    builder: Callable[..., Mapping[str, Path]] = build,
    waiter_config: Mapping[str, int] = STACK_WAITER,
) -> dict[str, str]:
    """The whole deploy; returns the main stack's outputs.

    ``data_only`` deploys DeploymentTarget=local into the account: the lake, tables, stream, catalog,
    workgroup and secrets without MWAA, EMR, the Lambda or the site, for docker-compose on real AWS.
    """
    names = StackNames.for_project(project)
    cfn, s3 = clients("cloudformation"), clients("s3")
    bootstrap = deploy_stack(
        cfn, names.bootstrap, {"ProjectName": project},
        template_body=BOOTSTRAP_TEMPLATE.read_text(encoding="utf-8"), waiter_config=waiter_config,
    )
    bucket = bootstrap["ArtifactsBucketName"]
    ensure_versioning(s3, bucket)
    built = builder(offline=offline)
    artifacts = mwaa_artifacts(built, repo_root)
    versions = upload_artifacts(s3, bucket, artifacts)
    prune_prefix(s3, bucket, "dags/", {a.key for a in artifacts if a.key.startswith("dags/")})
    prune_prefix(s3, bucket, "spark_jobs/", {a.key for a in artifacts if a.key.startswith("spark_jobs/")})
    outputs = deploy_stack(
        cfn, names.main,
        main_stack_parameters(project, bucket, versions, overrides,
                              deployment_target="local" if data_only else "aws"),
        template_url=template_url(bucket, region), waiter_config=waiter_config,
    )
    return outputs


def destroy(clients: ClientFactory, *, project: str, waiter_config: Mapping[str, int] = STACK_WAITER) -> None:
    """Delete the main stack, then the bootstrap stack. Buckets and the job table are retained."""
    cfn = clients("cloudformation")
    for name in (StackNames.for_project(project).main, StackNames.for_project(project).bootstrap):
        if _stack_status(cfn, name) is None:
            print(f"stack {name}: not found")
            continue
        print(f"deleting stack {name} ...")
        cfn.delete_stack(StackName=name)
        cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig=dict(waiter_config))
    print("Retained (DeletionPolicy Retain): the lake and artifacts buckets and the job table; "
          "see docs/deploy.md, 'Teardown', to delete them.")


def _print_outputs(outputs: Mapping[str, str]) -> None:
    width = max((len(k) for k in outputs), default=0)
    for key in sorted(outputs):
        print(f"  {key:<{width}}  {outputs[key]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("deploy", "outputs", "destroy"))
    parser.add_argument("--project", default="covid19-lake", help="ProjectName (prefix of every resource)")
    parser.add_argument("--region", default=None, help="AWS region (default: the AWS CLI/SDK configuration)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="main-stack parameter, e.g. -p VpcId=vpc-123 -p EnableQuickSightEmbed=true")
    parser.add_argument("--offline", action="store_true", help="build the Lambda zip without pip downloads")
    parser.add_argument("--data-only", action="store_true",
                        help="DeploymentTarget=local: data resources only (no MWAA/EMR/Lambda/site), "
                             "for docker-compose against real AWS")
    parser.add_argument("--yes", action="store_true", help="destroy without asking")
    args = parser.parse_args(argv)

    import boto3

    session = boto3.session.Session(region_name=args.region)
    if not session.region_name:
        print("No AWS region: pass --region or set AWS_REGION / a profile region.", file=sys.stderr)
        return 2

    def clients(service: str) -> Any:
        return session.client(service)

    try:
        if args.command == "deploy":
            outputs = deploy(clients, project=args.project, region=session.region_name,
                             overrides=parse_parameters(args.parameter), offline=args.offline,
                             data_only=args.data_only)
            print("Stack outputs:")
            _print_outputs(outputs)
        elif args.command == "outputs":
            _print_outputs(stack_outputs(clients("cloudformation"), StackNames.for_project(args.project).main))
        else:
            if not args.yes and input(f"Delete the stacks of {args.project}? [y/N] ").strip().lower() != "y":
                return 1
            destroy(clients, project=args.project)
    except DeployError as exc:
        print(f"deploy failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
