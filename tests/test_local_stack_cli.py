"""``python -m local.stack up|status|down`` as a user runs it: nothing is left behind."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from local.config import REPO_ROOT

pytestmark = pytest.mark.stack


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "local.stack", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=240, check=False)


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


def test_up_status_down_leaves_no_process_behind(tmp_path):
    state_dir = tmp_path / "state"
    up = cli("up", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    record = json.loads((state_dir / "stack.json").read_text())
    pid = record["pid"]
    assert record["status"] == "running"
    assert processes_mentioning(str(state_dir)) == [pid]
    # stdout is only `export NAME=value` lines, for `eval "$(python -m local.stack up)"`.
    env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in up.stdout.splitlines())
    assert env["AWS_ENDPOINT_URL"] == record["endpoint_url"]
    connection = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert connection["conn_type"] == "aws"
    assert connection["extra"] == {"endpoint_url": record["endpoint_url"], "region_name": "us-east-1"}
    assert record["endpoint_url"].startswith("http://127.0.0.1:")

    again = cli("up", "--state-dir", str(state_dir))  # idempotent: the same stack
    assert again.returncode == 0 and json.loads((state_dir / "stack.json").read_text())["pid"] == pid

    status = cli("status", "--state-dir", str(state_dir))
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == pid

    down = cli("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert processes_mentioning(str(state_dir)) == []
    assert not (state_dir / "stack.pid").exists()
    assert json.loads((state_dir / "stack.json").read_text())["status"] == "stopped"
    assert cli("status", "--state-dir", str(state_dir)).returncode == 3
    assert cli("down", "--state-dir", str(state_dir)).returncode == 0  # nothing to stop is not an error
