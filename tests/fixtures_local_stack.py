"""The session's one local AWS stack, as a pytest plugin.

tests/conftest.py enables it with::

    pytest_plugins = ["tests.fixtures_local_stack"]

The stack runs as ``python -m local.stack up`` in its own process (moto keeps global state, and
``mock_aws`` in other tests resets every backend of its process: the stack must not share it). Stream
handlers therefore run in that process too; this module's ``recording_handler`` is importable there as
``tests.fixtures_local_stack.recording_handler``. The stack wires what the template wires, as every
entry point does: the job table's stream drives the real notifier Lambda (``lambdas.notifier.app.handler``).
Override ``local_stack_stream_handlers`` in a conftest to add handlers or replace the template's (a
table's logical ID or name -> dotted path or spec, as ``--stream-handler`` takes them).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack import RunningStack, running_daemon

RECORDING_TABLE = "local-stack-test-events"
RECORDER = "tests.fixtures_local_stack.recording_handler"
RECORDS_ENV = "LOCAL_STACK_TEST_RECORDS"

# Behaviours, chosen per item by its "behaviour" attribute, remembered per eventID in the stack process.
_seen: set[str] = set()
_seen_lock = threading.Lock()


def _first_time(event_id: str) -> bool:
    with _seen_lock:
        if event_id in _seen:
            return False
        _seen.add(event_id)
        return True


def recording_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Lambda handler for tests: appends each invocation to $LOCAL_STACK_TEST_RECORDS.

    Item attribute ``behaviour``: ``fail_item_once`` reports the item as failed the first time,
    ``raise_once`` raises the first time, ``raise_always`` always raises; anything else succeeds.
    """
    failures: list[dict[str, str]] = []
    error: str | None = None
    for record in event["Records"]:
        image = record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage") or {}
        behaviour = image.get("behaviour", {}).get("S", "")
        if behaviour == "raise_always" or (behaviour == "raise_once" and _first_time(record["eventID"])):
            error = f"handler raised on {record['dynamodb']['SequenceNumber']}"
            break
        if behaviour == "fail_item_once" and _first_time(record["eventID"]):
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    entry = {
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {name: os.environ.get(name) for name in ("AWS_ENDPOINT_URL", "WEBHOOKS_SECRET_NAME",
                                                         "IDEMPOTENCY_TABLE_NAME", "AIRFLOW_BASE_URL")},
        "outcome": "raised" if error else ("partial" if failures else "ok"),
        "event": event,
    }
    with open(os.environ[RECORDS_ENV], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
    if error:
        raise RuntimeError(error)
    return {"batchItemFailures": failures}


def read_invocations(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def local_stack_stream_handlers() -> dict[str, Any]:
    """Stream handlers of the session stack besides the template's (table logical ID or name -> dotted path
    or spec); one for a table the template wires replaces the template's handler."""
    return {}


@pytest.fixture(scope="session")
def local_stack_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``recording_handler`` writes the invocations it receives."""
    return tmp_path_factory.mktemp("local-stack-records") / "invocations.jsonl"


@pytest.fixture(scope="session")
def local_stack(
    tmp_path_factory: pytest.TempPathFactory, local_stack_stream_handlers: dict[str, Any], local_stack_records: Path
) -> Iterator[RunningStack]:
    """The session's local stack (moto server, EMR step runner, stream bridge, webhook sink), stopped at
    the end. Use ``local_stack.client(service)``, ``.env()``, ``.outputs``, ``.sink_log``, ``.wait_for``."""
    state_dir = tmp_path_factory.mktemp("local-stack")
    recorder = {
        "handler": RECORDER,
        "function_name": "local-stack-test-recorder",
        "batch_size": 10,
        "report_batch_item_failures": True,
        "maximum_retry_attempts": 2,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "poll_seconds": 0.1,
        "environment": {RECORDS_ENV: str(local_stack_records)},
    }
    handlers = {RECORDING_TABLE: recorder, **local_stack_stream_handlers}
    options = [option for table, spec in handlers.items()
               for option in ("--stream-handler", f"{table}={spec if isinstance(spec, str) else json.dumps(spec)}")]
    with running_daemon(state_dir, "--spark-master", "local[1]", *options) as stack:
        yield stack
