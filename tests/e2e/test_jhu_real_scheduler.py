"""The JHU DAGs under the real scheduler, triggered and inspected only through the REST API v2.

Each test uses dates no other test of the session touches (the session's local stack and job table are
shared with the dag.test() tier).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.stack_queries import glue_partitions, job_record, processed_rows, steps, wait_for_notifications

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
    # The EMR sensors waited in the triggerer (operators.default_deferrable, as on MWAA), not in a worker slot.
    sensors = sensor_tasks(api, "jhu_backfill", run["dag_run_id"])
    assert sensors and all(deferred_through_triggerer(airflow_server, "jhu_backfill", run["dag_run_id"], task)
                           for task, ti in sensors.items() if ti["state"] == "success"), sensors


def test_backfill_create_runs_one_daily_run_per_report_date(api, local_stack):
    stack = local_stack
    days = ["2020-07-01", "2020-07-02", "2020-07-03"]
    backfill = api.create_backfill("jhu_daily_reports", datetime(2020, 7, 1, tzinfo=UTC),
                                   datetime(2020, 7, 3, tzinfo=UTC))
    runs = api.wait_for(lambda: len(found := api.backfill_runs("jhu_daily_reports", backfill["id"])) == 3
                        and found, timeout=60, message="the backfill's three runs")
    assert sorted(r["logical_date"][:10] for r in runs) == days
    for r in runs:
        finished = api.wait_for_run("jhu_daily_reports", r["dag_run_id"], timeout=300)
        assert finished["state"] == "success", api.task_states("jhu_daily_reports", r["dag_run_id"])
    for day in days:
        assert job_record(stack, day)["status"] == "COMPLETED"
    # Catchup is off: unpausing started at most one scheduled run besides the backfill's.
    others = [r for r in api.runs("jhu_daily_reports") if r.get("backfill_id") != backfill["id"]
              and r["run_type"] == "scheduled"]
    assert len(others) <= 1, others


def test_a_failing_step_fails_the_run_and_records_failed(api, local_stack):
    stack = local_stack
    day = "2020-07-10"
    raw = Path(stack.lake_dir) / f"raw/jhu/daily_reports/report_date={day}/07-10-2020.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("Region,Cases,When\nNowhere,1,2020-07-10\n", encoding="utf-8")  # lands as "present"
    try:
        run = api.trigger("jhu_daily_reports", logical_date=datetime(2020, 7, 10, tzinfo=UTC))
        done = api.wait_for_run("jhu_daily_reports", run["dag_run_id"], timeout=300)
        assert done["state"] == "failed"
        record = job_record(stack, day)
        assert record["status"] == "FAILED" and "07-10-2020.csv" in record["error"]
        assert day not in glue_partitions(stack)
        sent = wait_for_notifications(stack, day, 9)
        assert [s for d, s in sent if d == "/slack"] == ["SUBMITTED", "RUNNING", "FAILED"]
    finally:
        raw.unlink()
