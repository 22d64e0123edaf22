"""The local stack runs what the template attaches to DynamoDB streams, by default, in every entry point.

docker-compose's ``aws`` service is started here exactly as compose starts it (its command, working dir
and health check, with the container paths mapped to the host through its own mounts), and a job-table
write reaches the webhook sink through the template's notifier. The mapping from a template Handler to
a module of this repository goes through the zip's builder (lambdas/<name>/package.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from local.cfn import Resolver, TemplateError, load_template, parameter_values
from local.config import REPO_ROOT, TEMPLATE
from local.stack import _parser, running_daemon
from local.template_lambdas import StreamMapping, handler_path, stream_mappings
from local.webhook_sink import read_sink_log
from tests.fixtures.notifier.events import item, to_dynamodb
from tests.fixtures_local_stack import RECORDER, read_invocations

NOTIFIER = "lambdas.notifier.app.handler"
COMPOSE = REPO_ROOT / "docker-compose.yaml"
# What compose may set for its container layout; everything else must be the CLI's default.
COMPOSE_LAYOUT_OPTIONS = {"command", "state_dir", "lake_dir", "spark_jobs_dir", "airflow_base_url"}


def aws_service() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["aws"]


def template_resolver(template: dict[str, Any]) -> Resolver:
    def unavailable(*args: Any) -> Any:
        raise TemplateError(f"{args} is not deployed in this test")

    values = parameter_values(template, {"DeploymentTarget": "local"})
    return Resolver(template, values, {"AWS::Region": "us-east-1"}, unavailable, unavailable)


# -- the template's Lambdas, mapped without a stack ------------------------------------------------------------
@pytest.fixture
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def test_the_templates_stream_lambda_is_the_notifier_module(template):
    mappings, others = stream_mappings(template)
    assert mappings == [StreamMapping("NotifierEventSourceMapping", "JobTable", "NotifierFunction")]
    assert others == {}
    assert handler_path(template, "NotifierFunction", template_resolver(template)) == NOTIFIER


def test_a_zip_laid_out_from_the_package_directory_maps_to_the_same_module(template):
    from lambdas.notifier.package import handler_files

    template["Resources"]["NotifierFunction"]["Properties"]["Handler"] = "app.handler"
    rooted_at_package = {name.removeprefix("lambdas/notifier/"): path for name, path in handler_files().items()}
    assert "app.py" in rooted_at_package
    path = handler_path(template, "NotifierFunction", template_resolver(template),
                        archive_files=lambda key: rooted_at_package)
    assert path == NOTIFIER


@pytest.mark.parametrize(("change", "message"), [
    ({"Handler": "lambdas.notifier.missing.handler"}, "lambdas/notifier/missing.py is not in the zip"),
    ({"Handler": "handler"}, "expected module.function"),
    ({"Code": {"ZipFile": "def handler(event, context): pass"}}, "Code has ZipFile"),
    ({"Code": {"S3Bucket": "b", "S3Key": "other/code.zip"}}, "'other/code.zip' is not a zip this repository"),
    ({"Code": {"S3Bucket": "b", "S3Key": "lambdas/nothing.zip"}}, "no builder lambdas.nothing.package"),
])
def test_a_handler_that_cannot_be_mapped_fails_naming_the_resource(template, change, message):
    template["Resources"]["NotifierFunction"]["Properties"].update(change)
    with pytest.raises(TemplateError) as error:
        handler_path(template, "NotifierFunction", template_resolver(template))
    assert "Resources.NotifierFunction: cannot map its Handler" in str(error.value)
    assert message in str(error.value)


# -- docker-compose's aws service and the CLI ------------------------------------------------------------------
def test_compose_aws_command_and_cli_defaults_agree():
    command = aws_service()["command"]
    assert command[:3] == ["python", "-m", "local.stack"]
    compose = vars(_parser().parse_args(command[3:]))
    defaults = vars(_parser().parse_args(["up"]))
    assert compose["command"] == "serve"  # the foreground form of `up`, which `up` itself runs
    differing = {name for name in defaults if compose[name] != defaults[name]}
    assert differing <= COMPOSE_LAYOUT_OPTIONS, f"compose sets {differing - COMPOSE_LAYOUT_OPTIONS} away from the CLI"
    # Both wire the template's stream Lambdas, and nothing else.
    assert compose["stream_handler"] == defaults["stream_handler"] == []
    assert compose["no_stream_handlers"] is defaults["no_stream_handlers"] is False
    assert compose["template"] is defaults["template"] is None


def _host_paths(service: dict[str, Any], state_dir: Path) -> Any:
    """Container path -> host path through the service's mounts (the compose state dir -> ``state_dir``)."""
    mounts = {}
    for volume in service["volumes"]:
        host, container, *_mode = volume.split(":")
        mounts[container] = state_dir if host == "./.local/compose" else (REPO_ROOT / host).resolve()

    def to_host(value: str) -> str:
        for container in sorted(mounts, key=len, reverse=True):
            if value == container or value.startswith(container + "/"):
                return str(mounts[container]) + value[len(container):]
        return value

    return to_host


@pytest.mark.stack
def test_stack_started_as_compose_starts_it_posts_job_notifications(tmp_path):
    service = aws_service()
    state_dir = tmp_path / "compose"
    state_dir.mkdir()
    to_host = _host_paths(service, state_dir)
    command = [sys.executable if arg == "python" else to_host(arg) for arg in service["command"]]
    health = [sys.executable if arg == "python" else to_host(arg) for arg in service["healthcheck"]["test"][1:]]
    dockerfile = (REPO_ROOT / service["build"]["dockerfile"]).read_text(encoding="utf-8")
    pythonpath = re.search(r"PYTHONPATH=(\S+)", dockerfile).group(1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": ":".join(to_host(p) for p in pythonpath.split(":"))}
    with open(tmp_path / "aws-service.log", "wb") as log:
        process = subprocess.Popen(command, cwd=to_host(service["working_dir"]), env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def healthy() -> subprocess.CompletedProcess[str] | None:
            assert process.poll() is None, (tmp_path / "aws-service.log").read_text()
            result = subprocess.run(health, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
            return result if result.returncode == 0 else None

        deadline = time.monotonic() + 180
        while (status := healthy()) is None:
            assert time.monotonic() < deadline, "the aws service never became healthy"
            time.sleep(0.2)
        wired = json.loads(status.stdout)["stream_handlers"]
        assert wired["JobTable"]["handler"] == NOTIFIER and wired["JobTable"]["from"] == "template"

        record = json.loads((state_dir / "stack.json").read_text())
        assert record["resources"]["NotifierFunction"] == record["resources"]["NotifierEventSourceMapping"] == (
            "stream-bridge")
        import boto3

        dynamodb = boto3.client("dynamodb", endpoint_url=record["endpoint_url"], region_name=record["region"],
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        day = "2020-06-15"
        dynamodb.put_item(TableName=record["outputs"]["JobTableName"],
                          Item=to_dynamodb(item("SUBMITTED", job_date=day)))
        sink_log = state_dir / "webhooks.jsonl"
        assert Path(record["sink_log"]) == sink_log

        def posts() -> list[dict[str, Any]]:
            return [p for p in read_sink_log(sink_log) if day in json.dumps(p["body"])] if sink_log.exists() else []

        deadline = time.monotonic() + 60
        while len(posts()) < 3:
            assert time.monotonic() < deadline, f"3 notifications about {day}, got {posts()}"
            time.sleep(0.1)
        assert sorted(p["path"] for p in posts()) == ["/chime", "/slack", "/teams"]
        assert all("SUBMITTED" in json.dumps(p["body"]) for p in posts())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # what `docker compose stop` sends
        returncode = process.wait(timeout=60)
    assert returncode == 0
    assert json.loads((state_dir / "stack.json").read_text())["status"] == "stopped"


# -- turning the template's handlers off, or replacing one -----------------------------------------------------
@pytest.mark.stack
def test_no_stream_handlers_leaves_the_notifier_off_and_says_so(tmp_path):
    with running_daemon(tmp_path / "state", "--no-stream-handlers", "--spark-master", "local[1]") as stack:
        record = stack.refresh()
    assert record["stream_handlers"] == {} and record["template_stream_handlers"] is False
    for lid in ("NotifierFunction", "NotifierEventSourceMapping"):
        assert record["resources"][lid] == "not-emulated"
        assert "--no-stream-handlers" in record["not_emulated"][lid]


@pytest.mark.stack
def test_stream_handler_by_table_name_replaces_the_templates_and_keeps_its_mapping(tmp_path):
    records = tmp_path / "invocations.jsonl"
    spec = {"handler": RECORDER, "environment": {"LOCAL_STACK_TEST_RECORDS": str(records)}}
    with running_daemon(tmp_path / "state", "--spark-master", "local[1]",
                        "--stream-handler", f"covid19-lake-jobs={json.dumps(spec)}") as stack:
        record = stack.refresh()
        stack.client("dynamodb").put_item(TableName=stack.outputs["JobTableName"],
                                          Item=to_dynamodb(item("SUBMITTED", job_date="2020-06-16")))
        stack.wait_for(lambda: read_invocations(records), timeout=30, message="the replacement's invocation")
    wired = record["stream_handlers"]
    assert list(wired) == ["JobTable"]
    assert wired["JobTable"]["handler"] == RECORDER and wired["JobTable"]["from"] == "--stream-handler"
    # The template's mapping still says how the stream is read: batch size, retries, destination.
    assert wired["JobTable"]["batch_size"] == 10 and wired["JobTable"]["maximum_retry_attempts"] == 5
    assert wired["JobTable"]["on_failure_destination"].endswith(":covid19-lake-notifier-dlq")
    assert record["resources"]["NotifierEventSourceMapping"] == "stream-bridge"
    assert record["resources"]["NotifierFunction"] == "not-emulated"
    assert RECORDER in record["not_emulated"]["NotifierFunction"]
