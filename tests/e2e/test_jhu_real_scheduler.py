"""The JHU DAGs under the real scheduler, triggered and inspected only through the REST API v2.

Each test uses dates no other test of the session touches (the session's local stack and job table are
shared with the dag.test() tier).
"""

from __future__ import annotations

import pytest

from tests.stack_queries import glue_partitions, job_record, processed_rows, steps

pytestmark = pytest.mark.stack
OK_TASK_STATES = {"success", "skipped"}


def sensor_tasks(api, dag_id: str, run_id: str) -> dict[str, dict]:
    return {key: ti for key, ti in api.task_instances(dag_id, run_id).items() if ti["operator"] == "EmrStepSensor"}


def deferred_through_triggerer(server, dag_id: str, run_id: str, task_id: str) -> bool:
    """A deferred task's log folder holds the triggerer's log of its trigger."""
    folder = server.log_dir / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return any(folder.glob("attempt=*.log.trigger.*.log"))


def test_backfill_triggered_through_the_api_succeeds_with_every_task_done(airflow_server, api, local_stack):
    stack = local_stack
    days = ["2020-02-01", "2020-02-02", "2020-02-03"]
    run = api.trigger("jhu_backfill", conf={"start_date": days[0], "end_date": days[-1]})
    done = api.wait_for_run("jhu_backfill", run["dag_run_id"], timeout=300)
    states = api.task_states("jhu_backfill", run["dag_run_id"])
    assert done["state"] == "success", states
    assert set(states.values()) <= OK_TASK_STATES, states
    assert len([s for s in steps(stack) if run["dag_run_id"] in s["Name"]]) == 1
    for day in days:
        record = job_record(stack, day)
        assert record["status"] == "COMPLETED" and record["dag_id"] == "jhu_backfill", record
        assert int(record["rows_written"]) == processed_rows(stack, day) > 0
    assert set(days) <= glue_partitions(stack)
