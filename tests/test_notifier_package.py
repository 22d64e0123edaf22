"""The deployment zip holds the handler and its dependencies, and runs from an extracted copy on its own.

The test builds from this interpreter's site-packages (``--from-site-packages``: no network in tests); the
release build runs pip for python3.12 manylinux. Both read the same pin and produce the same file list.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lambdas.notifier import package
from tests.fixtures.notifier.events import event, item, record
from tests.lambda_runtime import link_runtime

# What the Lambda Python runtime ships beside the function's code (boto3 and what it needs).


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return package.build(tmp_path_factory.mktemp("dist") / "notifier.zip", from_site_packages=True)


def test_zip_holds_handler_and_dependencies_but_not_boto3(built):
    names = zipfile.ZipFile(built).namelist()
    assert names == sorted(names)
    for expected in ("lambdas/__init__.py", "lambdas/notifier/__init__.py", "lambdas/notifier/app.py",
                     "lambdas/notifier/chime.py", "lambdas/notifier/slack.py", "lambdas/notifier/teams.py",
                     "aws_lambda_powertools/utilities/batch/__init__.py", "jmespath/__init__.py",
                     "typing_extensions.py", "aws_lambda_powertools-3.37.0.dist-info/METADATA"):
        assert expected in names, expected
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"boto3", "botocore", "s3transfer", "bin", "tests"}
    assert "lambdas/notifier/package.py" not in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert built.stat().st_size < 3_000_000


def test_build_is_reproducible(built, tmp_path):
    again = package.build(tmp_path / "again.zip", from_site_packages=True)
    assert again.read_bytes() == built.read_bytes()


def test_bundled_list_covers_the_pinned_requirements():
    requirements = importlib.metadata.requires("aws-lambda-powertools") or []
    core = {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in requirements if "extra ==" not in r}
    assert core <= set(package.BUNDLED_DISTRIBUTIONS) | set(package.RUNTIME_PROVIDED)
    assert importlib.metadata.version("aws-lambda-powertools") == package.POWERTOOLS_PIN.split("==")[1]




PROBE = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import aws_lambda_powertools, boto3, jmespath
from lambdas.notifier import app
event = json.loads(sys.argv[3])
print(json.dumps({
    "powertools": aws_lambda_powertools.__file__, "jmespath": jmespath.__file__, "boto3": boto3.__file__,
    "site": [p for p in sys.path if "site-packages" in p],
    "response": app.handler(event, None),
}))
"""


def test_handler_runs_from_the_extracted_zip_alone(built, tmp_path):
    task = tmp_path / "task"
    zipfile.ZipFile(built).extractall(task)
    runtime = link_runtime(tmp_path / "runtime")
    batch = event(
        record("REMOVE", old=item("COMPLETED"), sequence="1"),
        record("MODIFY", new={**item("RUNNING"), "version": 9}, old=item("RUNNING"), sequence="2"),
        record("INSERT", new=item("SUBMITTED"), sequence="3"),  # fails: WEBHOOKS_SECRET_NAME is unset
    )
    env = {"PATH": os.environ.get("PATH", ""), "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "IDEMPOTENCY_TABLE_NAME": "notifier-idempotency"}
    # -S: no site-packages at all, so every import comes from the zip or the runtime stand-in.
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-c", PROBE, str(task), str(runtime), json.dumps(batch)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["site"] == []
    assert report["powertools"].startswith(str(task)) and report["jmespath"].startswith(str(task))
    assert report["boto3"].startswith(str(runtime))
    assert report["response"] == {"batchItemFailures": [{"itemIdentifier": "3"}]}
    assert "WEBHOOKS_SECRET_NAME is not set" in result.stdout
