"""The local stack's fixed settings and its one runtime record, ``{state_dir}/stack.json``.

Ports are never fixed: every server binds port 0 on 127.0.0.1 and the chosen ports are written to
stack.json, which every client (CLI, tests, docker-compose, the demo) reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"
STACK_NAME = "covid19-lake"
PROJECT_NAME = "covid19-lake"
EMR_RELEASE_LABEL = "emr-7.9.0"  # Spark 3.5 on Python 3.11, like the local pyspark
TEMPLATE = REPO_ROOT / "infra" / "covid19-lake.yaml"
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
STACK_FILE = "stack.json"
PID_FILE = "stack.pid"
LOG_FILE = "stack.log"
SINK_LOG = "webhooks.jsonl"
WEBHOOK_PATHS = {"chime": "/chime", "slack": "/slack", "teams": "/teams"}


def write_stack_file(state_dir: Path, record: dict[str, Any]) -> None:
    """Atomic write, so a reader never sees half a file."""
    path = Path(state_dir) / STACK_FILE
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_stack_file(state_dir: Path) -> dict[str, Any] | None:
    path = Path(state_dir) / STACK_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
