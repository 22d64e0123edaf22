"""docker-compose.yaml, validated offline (no Docker engine here) against the Compose schema."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE = REPO_ROOT / "docker-compose.yaml"
AWS_OVERRIDE = REPO_ROOT / "infra" / "docker" / "compose.aws.yaml"
SCHEMA = Path(__file__).resolve().parent / "fixtures" / "compose" / "compose_spec.json"
AIRFLOW_SERVICES = {
    "airflow-init": ["airflow", "db", "migrate"],
    "airflow-api-server": ["airflow", "api-server", "--port", "8080"],
    "airflow-scheduler": ["airflow", "scheduler"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "airflow-triggerer": ["airflow", "triggerer"],
}
ENTRY = "/opt/covid19-lake/infra/docker/with-stack-env.sh"


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))  # resolves anchors and << merges


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


@pytest.mark.parametrize("path", [COMPOSE, AWS_OVERRIDE], ids=lambda p: p.name)
def test_matches_the_compose_specification(path: Path) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(_load(path)), key=str)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (short syntax, without the mode)."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container, *_mode = volume.split(":")
        mounts[container] = host
    return mounts


def test_services_and_their_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"aws", "postgres", *AIRFLOW_SERVICES}
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == ["bash", ENTRY, *command], name
        assert services[name]["network_mode"] == "service:aws", name
    assert services["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"] == (
        "service_completed_successfully")
    # The UI is published on the host's loopback only, never on all interfaces.
    assert services["aws"]["ports"] == ["127.0.0.1:8080:8080"]


def test_airflow_image_is_mwaa_airflow(compose: dict[str, Any]) -> None:
    build = compose["services"]["airflow-scheduler"]["build"]
    dockerfile = (REPO_ROOT / build["dockerfile"]).read_text(encoding="utf-8")
    assert "FROM apache/airflow:3.3.1-python3.12" in dockerfile
    assert "-r /tmp/requirements.txt" in dockerfile
    ignore = (REPO_ROOT / f"{build['dockerfile']}.dockerignore").read_text(encoding="utf-8").split()
    assert ignore[-2:] == ["*", "!requirements.txt"] or "!requirements.txt" in ignore


def test_dags_and_plugins_are_mounted_where_mwaa_puts_them(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env, mounts = service["environment"], _mounts(service)
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
        assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/usr/local/airflow/dags"
        assert env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] == "True"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://localhost:8080/")


def test_local_stack_service_runs_the_local_stack_cli(compose: dict[str, Any]) -> None:
    from local.stack import _parser

    aws = compose["services"]["aws"]
    assert aws["command"][:3] == ["python", "-m", "local.stack"]
    args = _parser().parse_args(aws["command"][3:])
    assert args.command == "serve"  # the foreground form of `up`
    state_dir = str(args.state_dir)
    assert aws["healthcheck"]["test"][1:] == ["python", "-m", "local.stack", "status", "--state-dir", state_dir]
    assert _mounts(aws)[state_dir] == "./.local/compose"
    dockerfile = (REPO_ROOT / aws["build"]["dockerfile"]).read_text(encoding="utf-8")
    assert "-r requirements-dev.txt" in dockerfile and "openjdk-17" in dockerfile
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        # stack.json and the file:// lake resolve to the same paths in every container.
        assert service["environment"]["COVID19_LAKE_STATE_DIR"] == state_dir
        assert _mounts(service)[state_dir] == "./.local/compose"
        assert _mounts(service)["/opt/covid19-lake/spark_jobs"] == "./spark_jobs"


def test_the_variable_comes_from_the_stack_not_from_compose(compose: dict[str, Any]) -> None:
    """One Variable, written by the template: the aws service puts the local target's into stack.json's env
    (with-stack-env.sh exports it), so compose itself sets none, and the paths it names are mounted alike."""
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert not [key for key in env if key.startswith("AIRFLOW_VAR_")], name
    command = compose["services"]["aws"]["command"]
    lake_dir, spark_jobs = (command[command.index(flag) + 1] for flag in ("--lake-dir", "--spark-jobs-dir"))
    mounts = _mounts(compose["services"]["airflow-scheduler"])
    assert spark_jobs in mounts and lake_dir.startswith(compose["services"]["airflow-scheduler"]["environment"]
                                                       ["COVID19_LAKE_STATE_DIR"])


def test_aws_override_uses_the_mwaa_secrets_backend(compose: dict[str, Any]) -> None:
    from cfnlint.decode import decode

    override = _load(AWS_OVERRIDE)
    assert set(override["services"]) == set(AIRFLOW_SERVICES)
    template, _ = decode(str(REPO_ROOT / "infra" / "covid19-lake.yaml"))
    options = template["Resources"]["MwaaEnvironment"]["Properties"]["AirflowConfigurationOptions"]
    mwaa_kwargs = json.loads(options["secrets.backend_kwargs"]["Fn::Sub"].replace("${ProjectName}", "covid19-lake"))
    for name, service in override["services"].items():
        env = service["environment"]
        assert env["COVID19_LAKE_TARGET"] == "aws", name
        assert env["AIRFLOW__SECRETS__BACKEND"] == options["secrets.backend"]
        kwargs = json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"].replace("${PROJECT_NAME:-covid19-lake}",
                                                                             "covid19-lake"))
        assert kwargs == mwaa_kwargs
        # compose merges volume lists by container path; the override keeps the same MWAA mounts
        base = _mounts(compose["services"][name])
        assert {path: _mounts(service)[path] for path in base} == base
        assert _mounts(service)["/home/airflow/.aws"] == "${HOME}/.aws"


def _entry(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = REPO_ROOT / "infra" / "docker" / "with-stack-env.sh"
    shown = "env | grep -E '^(AWS_ENDPOINT_URL|AIRFLOW_CONN_|AIRFLOW_VAR_|COVID19_LAKE_SENSOR_MODE)'"
    return subprocess.run(
        ["bash", str(script), "bash", "-c", shown],
        capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"], **env},
    )


def test_entry_script_exports_the_running_stack_environment(tmp_path: Path) -> None:
    record = {"status": "running", "env": {"AWS_ENDPOINT_URL": "http://127.0.0.1:40123",
                                           "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws"}',
                                           "AIRFLOW_VAR_COVID19_LAKE": '{"lake": {}}'}}
    (tmp_path / "stack.json").write_text(json.dumps(record))
    result = _entry(tmp_path, {"COVID19_LAKE_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = set(result.stdout.splitlines())
    assert {"AWS_ENDPOINT_URL=http://127.0.0.1:40123", 'AIRFLOW_CONN_AWS_DEFAULT={"conn_type": "aws"}',
            'AIRFLOW_VAR_COVID19_LAKE={"lake": {}}', "COVID19_LAKE_SENSOR_MODE=deferrable"} <= lines


def test_entry_script_leaves_aws_alone_on_the_aws_target(tmp_path: Path) -> None:
    result = _entry(tmp_path, {"COVID19_LAKE_TARGET": "aws"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["COVID19_LAKE_SENSOR_MODE=deferrable"]
