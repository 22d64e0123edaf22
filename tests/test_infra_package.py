"""Packaging (plugins.zip, Spark jobs, uploads) and the deploy script, against moto."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra import deploy as deploy_mod
from infra.package import Artifact, build_plugins_zip, spark_job_artifacts, stage_spark_jobs, upload_artifacts

REPO_ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
FAST_WAITER = {"Delay": 0, "MaxAttempts": 5}
# moto's CloudFormation skips Glue, Firehose, Athena and Secrets Manager resources with this warning.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


def test_plugins_zip_has_the_package_at_its_root_and_imports(tmp_path: Path) -> None:
    output = build_plugins_zip(REPO_ROOT / "plugins", tmp_path / "plugins.zip")
    names = zipfile.ZipFile(output).namelist()
    assert "covid19_lake/__init__.py" in names and "covid19_lake/config.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("plugins/")]
    # MWAA puts the unpacked plugins folder on sys.path; importing straight from the zip proves the layout.
    code = f"import sys; sys.path.insert(0, {str(output)!r}); import covid19_lake.config as c; print(c.__file__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
    assert str(output) in result.stdout


def test_plugins_zip_is_reproducible(tmp_path: Path) -> None:
    first = build_plugins_zip(REPO_ROOT / "plugins", tmp_path / "a.zip").read_bytes()
    second = build_plugins_zip(REPO_ROOT / "plugins", tmp_path / "b.zip").read_bytes()
    assert first == second


def test_plugins_zip_without_a_package_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "README.md").write_text("no package here")
    with pytest.raises(SystemExit, match="no Python package"):
        build_plugins_zip(tmp_path / "plugins", tmp_path / "plugins.zip")


def test_spark_job_artifacts_are_the_scripts_their_packages_in_lib_zip_and_the_reference(tmp_path: Path) -> None:
    artifacts = {a.key: a.path for a in spark_job_artifacts(REPO_ROOT / "spark_jobs", dist=tmp_path)}
    assert {"spark_jobs/jhu_daily_reports.py", "spark_jobs/tweets.py", "spark_jobs/weekly_tweets_vs_cases.py",
            "spark_jobs/lib.zip", "spark_jobs/reference/jhu_country_mapping.csv"} <= set(artifacts)
    assert "spark_jobs/__init__.py" not in artifacts and all(k.startswith("spark_jobs/") for k in artifacts)
    # the packages go in lib.zip only, never as loose files (an EMR step would not see them)
    assert not [k for k in artifacts if k.startswith(("spark_jobs/spark_common", "spark_jobs/jhu/"))]
    names = zipfile.ZipFile(artifacts["spark_jobs/lib.zip"]).namelist()
    assert {"spark_common/__init__.py", "spark_common/summary.py", "jhu/__init__.py", "jhu/transform.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or not n.startswith(("spark_common/", "jhu/"))]
    again = {a.key: a.path for a in spark_job_artifacts(REPO_ROOT / "spark_jobs", dist=tmp_path / "again")}
    # reproducible: an unchanged tree is not uploaded again
    assert again["spark_jobs/lib.zip"].read_bytes() == artifacts["spark_jobs/lib.zip"].read_bytes()


def test_a_staged_job_script_imports_its_packages_from_lib_zip_alone(tmp_path: Path) -> None:
    """What EMR (and the local step runner) run: the script beside lib.zip, nothing of the source on sys.path."""
    staged = stage_spark_jobs(REPO_ROOT / "spark_jobs", tmp_path / "spark_jobs")
    assert sorted(p.name for p in staged.iterdir()) == sorted(
        ["jhu_daily_reports.py", "tweets.py", "weekly_tweets_vs_cases.py", "lib.zip", "reference"])
    code = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); sys.argv = [sys.argv[2], '--help'];"
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    for script in ("jhu_daily_reports.py", "tweets.py", "weekly_tweets_vs_cases.py"):
        result = subprocess.run([sys.executable, "-c", code, str(staged / "lib.zip"), str(staged / script)],
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
        assert result.returncode == 0 and "--summary-uri" in result.stdout, (script, result.stderr[-2000:])
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import jhu.transform, spark_common.summary;"
            "print(jhu.transform.__file__, spark_common.summary.__file__)")
    imported = subprocess.run([sys.executable, "-c", code, str(staged / "lib.zip")], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path).stdout
    assert imported.count(str(staged / "lib.zip")) == 2


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def test_upload_skips_unchanged_files_and_keeps_their_version(aws: Any, tmp_path: Path) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_bucket_versioning(Bucket="artifacts", VersioningConfiguration={"Status": "Enabled"})
    source = tmp_path / "requirements.txt"
    source.write_text("tweepy==4.17.0\n")
    first = upload_artifacts(s3, "artifacts", [Artifact("requirements.txt", source)])
    again = upload_artifacts(s3, "artifacts", [Artifact("requirements.txt", source)])
    assert first == again and first["requirements.txt"]
    source.write_text("tweepy==4.17.0\n# changed\n")
    changed = upload_artifacts(s3, "artifacts", [Artifact("requirements.txt", source)])
    assert changed["requirements.txt"] != first["requirements.txt"]
    versions = s3.list_object_versions(Bucket="artifacts", Prefix="requirements.txt")["Versions"]
    assert len(versions) == 2


def test_parse_parameters_and_reserved_names() -> None:
    assert deploy_mod.parse_parameters(["VpcId=vpc-1", "AirflowBaseUrl=https://x/y=z"]) == {
        "VpcId": "vpc-1", "AirflowBaseUrl": "https://x/y=z"}
    with pytest.raises(deploy_mod.DeployError, match="expected Key=Value"):
        deploy_mod.parse_parameters(["VpcId"])
    with pytest.raises(deploy_mod.DeployError, match="ArtifactsBucket"):
        deploy_mod.main_stack_parameters("p", "b", {}, {"ArtifactsBucket": "other"})


def _fake_repo(root: Path) -> Path:
    (root / "dags").mkdir(parents=True)
    (root / "dags" / "one.py").write_text("# dag one\n")
    (root / "dags" / "two.py").write_text("# dag two\n")
    (root / "dags" / ".airflowignore").write_text("**/__pycache__/\n")
    (root / "spark_jobs").mkdir()
    (root / "spark_jobs" / "job.py").write_text("print('job')\n")
    (root / "requirements.txt").write_text("tweepy==4.17.0\n")
    return root


def _fake_builder(dist: Path):
    def build(offline: bool = False) -> dict[str, Path]:
        dist.mkdir(exist_ok=True)
        (dist / "plugins.zip").write_bytes(b"plugins")
        (dist / "notifier.zip").write_bytes(b"notifier")
        return {"plugins.zip": dist / "plugins.zip", "lambdas/notifier.zip": dist / "notifier.zip"}
    return build


def _deploy(aws: Any, repo: Path) -> dict[str, str]:
    # moto cannot model MWAA, so the flow is exercised with the data-only target (same code path).
    return deploy_mod.deploy(aws, project="covid19-lake", region=REGION, overrides={}, data_only=True,
                             repo_root=repo, builder=_fake_builder(repo / "dist"), waiter_config=FAST_WAITER)


def _parameters(aws: Any) -> dict[str, str]:
    stack = aws("cloudformation").describe_stacks(StackName="covid19-lake")["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_deploy_bootstraps_uploads_and_pins_versions(aws: Any, tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    outputs = _deploy(aws, repo)
    assert outputs["JobTableName"] == "covid19-lake-jobs"
    s3 = aws("s3")
    bucket = "airflow-covid19-lake-123456789012-us-east-1"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys >= {"dags/one.py", "dags/two.py", "dags/.airflowignore", "requirements.txt", "startup.sh",
                    "plugins.zip", "lambdas/notifier.zip", "spark_jobs/job.py", deploy_mod.MAIN_TEMPLATE_KEY}
    parameters = _parameters(aws)
    assert parameters["ArtifactsBucket"] == bucket
    for key, parameter in (("requirements.txt", "RequirementsObjectVersion"), ("plugins.zip", "PluginsObjectVersion"),
                           ("startup.sh", "StartupScriptObjectVersion"),
                           ("lambdas/notifier.zip", "NotifierCodeObjectVersion")):
        assert parameters[parameter] == s3.head_object(Bucket=bucket, Key=key)["VersionId"], key

    # Re-running changes nothing MWAA pins; a removed DAG disappears from the bucket.
    (repo / "dags" / "two.py").unlink()
    _deploy(aws, repo)
    assert _parameters(aws) == parameters
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert "dags/two.py" not in keys and "dags/one.py" in keys


def test_destroy_deletes_both_stacks(aws: Any, tmp_path: Path) -> None:
    _deploy(aws, _fake_repo(tmp_path / "repo"))
    deploy_mod.destroy(aws, project="covid19-lake", waiter_config=FAST_WAITER)
    cfn = aws("cloudformation")
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == []


def test_startup_script_exports_mwaa_defaults_and_keeps_overrides() -> None:
    script = REPO_ROOT / "infra" / "mwaa" / "startup.sh"
    shown = "env | grep -E '^(COVID19_LAKE_|AWS_RETRY_MODE)' | sort"
    env = {"PATH": os.environ["PATH"], "COVID19_LAKE_SENSOR_POKE_SECONDS": "42"}
    result = subprocess.run(["bash", "-c", f"source {script} >/dev/null && {shown}"],
                            capture_output=True, text=True, check=True, env=env)
    exported = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert exported["COVID19_LAKE_SENSOR_MODE"] == "deferrable"
    assert exported["COVID19_LAKE_SENSOR_POKE_SECONDS"] == "42"
    assert exported["AWS_RETRY_MODE"] == "standard"
    # Every value the script exports is one the DAGs' parse-time settings accept.
    from covid19_lake.config import ParseTimeSettings

    settings = ParseTimeSettings.from_env(exported)
    assert settings.sensor_mode == "deferrable" and settings.sensor_poke_seconds == 42.0


def _parsed(dags_dir: Path) -> set[str]:
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    found = find_path_from_directory(dags_dir, ".airflowignore", "glob")
    return {Path(p).relative_to(dags_dir).as_posix() for p in found if p.endswith(".py")}


def test_airflowignore_keeps_non_dag_files_out(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    for name in ("daily.py", "sub/weekly.py", "helpers/util.py", "_shared.py", "test_daily.py",
                 "__pycache__/daily.cpython-312.py", "fixtures/sample.py", ".hidden/x.py"):
        (dags / name).parent.mkdir(parents=True, exist_ok=True)
        (dags / name).write_text("# from airflow import DAG\n")
    (dags / ".airflowignore").write_bytes((REPO_ROOT / "dags" / ".airflowignore").read_bytes())
    assert _parsed(dags) == {"daily.py", "sub/weekly.py"}


def test_airflowignore_ignores_none_of_the_real_dags() -> None:
    dags = REPO_ROOT / "dags"
    shipped = {p.relative_to(dags).as_posix() for p in dags.rglob("*.py") if "__pycache__" not in p.parts}
    assert shipped and _parsed(dags) == shipped
