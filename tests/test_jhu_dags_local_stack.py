"""The JHU DAGs end to end on the embedded local stack: Airflow 3.3.1 runs the real DAG files, the
EMR step runner runs the real Spark job with spark-submit, the job table's stream drives the real
notifier into the webhook sink."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from local import airflow_local
from tests.stack_queries import (
    glue_partitions,
    job_record,
    notifications,
    processed_rows,
    steps,
    wait_for_notifications,
)

pytestmark = pytest.mark.stack
JOB = "jhu_daily_reports"


@pytest.fixture
def airflow(airflow_on_local_stack):
    return airflow_on_local_stack


def test_daily_run_lands_processes_catalogs_records_and_notifies(airflow, jhu_mirror):
    stack = airflow
    run = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 3, 1, tzinfo=UTC))
    states = airflow_local.task_states(run)
    assert str(run.state) == "success", states
    assert states["spark_job.acquire_cluster"] == "success"
    assert states["spark_job.release_cluster"] == "skipped"  # found by name: left running

    raw = Path(stack.lake_dir) / "raw/jhu/daily_reports/report_date=2020-03-01/03-01-2020.csv"
    assert raw.read_bytes() == (jhu_mirror / "03-01-2020.csv").read_bytes()
    record = job_record(stack, "2020-03-01")
    assert record["status"] == "COMPLETED" and record["dag_id"] == "jhu_daily_reports"
    assert int(record["rows_written"]) == processed_rows(stack, "2020-03-01") > 0
    assert record["step_id"] in {s["Id"] for s in steps(stack)}
    assert "2020-03-01" in glue_partitions(stack)
    assert "2020-03-01" in glue_partitions(stack, "jhu_field_issues")  # catalogued with the processed table
    sent = wait_for_notifications(stack, "2020-03-01", 9)
    for destination in ("/chime", "/slack", "/teams"):
        assert [s for d, s in sent if d == destination] == ["SUBMITTED", "RUNNING", "COMPLETED"]


def test_rerun_of_a_completed_date_adds_no_step_and_no_notification(airflow):
    stack = airflow
    before_steps, before_sent = len(steps(stack)), len(notifications(stack, "2020-03-01"))
    run = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 3, 1, tzinfo=UTC))
    states = airflow_local.task_states(run)
    assert states["spark_job.claim"] == "skipped" and states["spark_job.add_step"] == "skipped"
    assert states["spark_job.record_results"] == "skipped"  # the run says it processed nothing
    assert len(steps(stack)) == before_steps
    assert job_record(stack, "2020-03-01")["status"] == "COMPLETED"
    assert len(notifications(stack, "2020-03-01")) == before_sent


def test_a_failing_step_records_failed_with_the_reason(airflow):
    stack = airflow
    raw = Path(stack.lake_dir) / "raw/jhu/daily_reports/report_date=2020-04-01/04-01-2020.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("Region,Cases,When\nNowhere,1,2020-04-01\n", encoding="utf-8")  # lands as "present"
    run = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 4, 1, tzinfo=UTC))
    states = airflow_local.task_states(run)
    assert str(run.state) == "failed", states
    # The step ended (FAILED): the sensors succeed, the records say how it ended and fail the run.
    assert states["spark_job.wait_for_end"] == "success" and states["spark_job.record_results"] == "failed"
    record = job_record(stack, "2020-04-01")
    assert record["status"] == "FAILED"
    assert "04-01-2020.csv" in record["error"] and "Region,Cases,When" in record["error"]
    step = next(s for s in steps(stack) if s["Id"] == record["step_id"])
    assert step["Status"]["State"] == "FAILED"
    assert "2020-04-01" not in glue_partitions(stack)
    sent = wait_for_notifications(stack, "2020-04-01", 9)
    assert [s for d, s in sent if d == "/slack"] == ["SUBMITTED", "RUNNING", "FAILED"]
    raw.unlink()


def test_backfill_lands_in_parallel_runs_one_step_and_is_idempotent(airflow):
    stack = airflow
    days = [f"2020-03-{d:02d}" for d in range(9, 14)]  # includes 03-10-2020's WHO-style names
    before = len(steps(stack))
    conf = {"start_date": days[0], "end_date": days[-1]}
    run = airflow_local.run_dag("jhu_backfill", conf=conf)
    states = airflow_local.task_states(run)
    assert str(run.state) == "success", states
    added = steps(stack)[: len(steps(stack)) - before]
    assert len(added) == 1
    args = added[0]["Config"]["Args"]
    assert args[args.index("--start-date") + 1] == days[0] and args[args.index("--end-date") + 1] == days[-1]
    rows = {day: processed_rows(stack, day) for day in days}
    for day in days:
        record = job_record(stack, day)
        assert record["status"] == "COMPLETED" and int(record["rows_written"]) == rows[day] > 0
    assert set(days) <= glue_partitions(stack)

    # Again without force: every date is COMPLETED, nothing runs.
    again = airflow_local.run_dag("jhu_backfill", conf=conf)
    assert airflow_local.task_states(again)["spark_job.claim"] == "skipped"
    assert len(steps(stack)) == before + 1
    # With force: one more step, the same rows (dynamic partition overwrite, no duplicates).
    forced = airflow_local.run_dag("jhu_backfill", conf={**conf, "force": True})
    assert str(forced.state) == "success", airflow_local.task_states(forced)
    assert len(steps(stack)) == before + 2
    assert {day: processed_rows(stack, day) for day in days} == rows
    attempts = json.loads(json.dumps(stack.client("dynamodb").get_item(
        TableName=stack.outputs["JobTableName"], Key={"job_date": {"S": days[0]}, "job_name": {"S": JOB}}
    )["Item"]["attempts"]))
    assert len(attempts["L"]) == 2


def test_transient_cluster_mode_creates_runs_on_and_terminates_its_own_cluster(airflow, monkeypatch):
    stack = airflow
    variable = json.loads(os.environ["AIRFLOW_VAR_COVID19_LAKE"])
    monkeypatch.setenv("AIRFLOW_VAR_COVID19_LAKE", json.dumps({**variable, "emr": {**variable["emr"],
                                                                                "cluster_mode": "transient"}}))
    emr = stack.client("emr")
    before = {c["Id"] for c in emr.list_clusters()["Clusters"]}
    run = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 3, 5, tzinfo=UTC))
    states = airflow_local.task_states(run)
    assert str(run.state) == "success", states
    assert states["spark_job.acquire_cluster"] == "success" and states["spark_job.release_cluster"] == "success"
    created = [c for c in emr.list_clusters()["Clusters"] if c["Id"] not in before]
    assert len(created) == 1 and created[0]["Name"] == "covid19-lake-transient"
    assert created[0]["Status"]["State"] in ("TERMINATING", "TERMINATED")
    record = job_record(stack, "2020-03-05")
    assert record["status"] == "COMPLETED" and record["cluster_id"] == created[0]["Id"]
