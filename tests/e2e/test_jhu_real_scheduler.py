"""The JHU DAGs under the real scheduler, triggered and inspected only through the REST API v2.

Each test uses dates no other test of the session touches, here 2020-02-01..03, 2020-11-02..04 and
December 2020: the
session's local stack and job table are shared with the dag.test() tier.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.stack_queries import glue_partitions, job_record, processed_rows, steps

pytestmark = pytest.mark.stack
OK_TASK_STATES = {"success", "skipped"}


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
    # MWAA's way of waiting on a step that takes a while: deferred to the triggerer.
    assert deferred_through_triggerer(airflow_server, "jhu_backfill", run["dag_run_id"], "spark_job.wait_for_end")


def unpaused(api, dag_id: str):
    """Unpause a scheduled DAG for a with block (they start paused, as on MWAA), then pause it again."""
    from contextlib import contextmanager

    @contextmanager
    def block():
        api.set_paused(dag_id, False)
        try:
            yield
        finally:
            api.set_paused(dag_id, True)
    return block()


def test_backfill_create_runs_the_paused_daily_dag_once_per_date_and_nothing_else(api, local_stack):
    """`POST /api/v2/backfills` (the UI's backfill form, `airflow backfill create`): one daily run per
    report date, each its own step, and unpausing the DAG for it starts no catchup."""
    stack = local_stack
    days = ["2020-11-02", "2020-11-03", "2020-11-04"]
    first, last = (datetime.fromisoformat(day).replace(tzinfo=UTC) for day in (days[0], days[-1]))
    with unpaused(api, "jhu_daily_reports"):
        backfill = api.create_backfill("jhu_daily_reports", first, last, max_active_runs=3)

        def backfill_runs() -> list[dict]:
            return [r for r in api.runs("jhu_daily_reports") if r["run_type"] == "backfill"
                    and first <= datetime.fromisoformat(r["logical_date"]) <= last]

        runs = api.wait_for(lambda: (found := backfill_runs()) and len(found) == len(days) and
                            all(r["state"] in {"success", "failed"} for r in found) and found,
                            timeout=600, message=f"backfill {backfill['id']}'s three runs to finish")
    assert sorted(r["logical_date"][:10] for r in runs) == days
    assert {r["state"] for r in runs} == {"success"}, [api.task_states("jhu_daily_reports", r["dag_run_id"])
                                                       for r in runs]
    for day in days:
        record = job_record(stack, day)
        assert record["status"] == "COMPLETED" and record["dag_id"] == "jhu_daily_reports", record
        assert int(record["rows_written"]) == processed_rows(stack, day) > 0
        assert len([s for s in steps(stack) if day in s["Name"]]) == 1
    assert set(days) <= glue_partitions(stack)
    # Catchup is off: the DAG's end date (JHU's last report, 2023-03-10) is past, so no scheduled run at all.
    assert [r for r in api.runs("jhu_daily_reports") if r["run_type"] == "scheduled"] == []


def hold_the_step_runner(stack, tmp_path) -> tuple[str, Path]:
    """A step that runs until the returned file exists: the local runner, like an EMR cluster running one
    step at a time, keeps the next steps PENDING behind it."""
    release = tmp_path / "release"
    script = tmp_path / "hold.py"
    script.write_text("import pathlib, time\n"
                      f"while not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.1)\n", encoding="utf-8")
    emr = stack.client("emr")
    cluster = stack.outputs["EmrClusterId"]
    held = emr.add_job_flow_steps(JobFlowId=cluster, Steps=[{
        "Name": "hold the cluster", "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", str(script)]}}])["StepIds"][0]
    stack.wait_for(lambda: step_state(stack, held) == "RUNNING", timeout=120, message="the holding step to run")
    return held, release


def step_state(stack, step_id: str) -> str:
    return stack.client("emr").describe_step(ClusterId=stack.outputs["EmrClusterId"],
                                             StepId=step_id)["Step"]["Status"]["State"]


def test_a_failing_step_fails_the_run_and_records_failed_with_the_reason(api, local_stack):
    stack = local_stack
    day = "2020-12-01"
    raw = Path(stack.lake_dir) / f"raw/jhu/daily_reports/report_date={day}/12-01-2020.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("Region,Cases,When\nNowhere,1,2020-12-01\n", encoding="utf-8")  # lands as "present"
    try:
        run = api.trigger("jhu_backfill", conf={"start_date": day, "end_date": day})
        done = api.wait_for_run("jhu_backfill", run["dag_run_id"], timeout=300)
    finally:
        raw.unlink()
    states = api.task_states("jhu_backfill", run["dag_run_id"])
    assert done["state"] == "failed", states
    # The step ended FAILED: the sensors saw it end, the records say how, and the run fails.
    assert states["spark_job.wait_for_end"] == "success" and states["spark_job.record_results"] == "failed"
    record = job_record(stack, day)
    assert record["status"] == "FAILED" and "12-01-2020.csv" in record["error"], record
    assert step_state(stack, record["step_id"]) == "FAILED"
    assert day not in glue_partitions(stack)


def test_a_second_trigger_is_refused_while_the_first_runs_step_is_live(api, local_stack, tmp_path):
    """Run A's step for a date is live (held PENDING behind another step); run B, forced, adds no step."""
    stack = local_stack
    day = "2020-12-05"
    held, release = hold_the_step_runner(stack, tmp_path)
    try:
        first = api.trigger("jhu_backfill", conf={"start_date": day, "end_date": day})
        api.wait_for(lambda: job_record(stack, day).get("step_id") and
                     job_record(stack, day).get("run_id") == first["dag_run_id"], timeout=120,
                     message="run A to record its step")
        first_step = job_record(stack, day)["step_id"]
        # jhu_backfill runs one at a time, so run B comes from the daily DAG for the same date.
        with unpaused(api, "jhu_daily_reports"):
            # Without a logical date, as the UI's trigger form allows: run_after names the report date.
            second = api.trigger("jhu_daily_reports", conf={"force": True}, run_after=datetime(2020, 12, 5, tzinfo=UTC))
            api.wait_for_run("jhu_daily_reports", second["dag_run_id"], timeout=300)
        states = api.task_states("jhu_daily_reports", second["dag_run_id"])
        assert states["land_report"] == "success", states
        assert states["spark_job.claim"] == "skipped" and states["spark_job.add_step"] == "skipped", states
        assert [s["Id"] for s in steps(stack) if day in s["Name"]] == [first_step]
        assert job_record(stack, day)["run_id"] == first["dag_run_id"]
    finally:
        release.write_text("go", encoding="utf-8")
    done = api.wait_for_run("jhu_backfill", first["dag_run_id"], timeout=300)
    assert done["state"] == "success" and job_record(stack, day)["status"] == "COMPLETED"
    assert step_state(stack, held) == "COMPLETED"


def test_a_sensor_failed_by_the_scheduler_leaves_a_record_the_reconcile_dag_settles(api, local_stack, tmp_path):
    """As when the scheduler fails a sensor (or a user marks it failed in the UI) while its step goes on:
    the run fails, the record stays SUBMITTED, and once the step ends job_records_reconcile records its end
    from the job summary, with the Glue partition."""
    stack = local_stack
    day = "2020-12-10"
    held, release = hold_the_step_runner(stack, tmp_path)
    try:
        run = api.trigger("jhu_backfill", conf={"start_date": day, "end_date": day})
        run_id = run["dag_run_id"]
        api.wait_for(lambda: api.task_states("jhu_backfill", run_id).get("spark_job.wait_for_start") == "deferred",
                     timeout=120, message="wait_for_start to defer")
        api.request("PATCH", f"/api/v2/dags/jhu_backfill/dagRuns/{run_id}/taskInstances/spark_job.wait_for_start",
                    json={"new_state": "failed"})
        done = api.wait_for_run("jhu_backfill", run_id, timeout=300)
        assert done["state"] == "failed"
        record = job_record(stack, day)
        assert record["status"] == "SUBMITTED" and step_state(stack, record["step_id"]) == "PENDING", record
    finally:
        release.write_text("go", encoding="utf-8")
    stack.wait_for(lambda: step_state(stack, record["step_id"]) == "COMPLETED", timeout=300,
                   message="the step to complete after the run failed")
    assert job_record(stack, day)["status"] == "SUBMITTED"  # nothing else settles it
    # The reconcile DAG is a safety net that runs unpaused every half hour; here it is triggered at once.
    reconcile = api.trigger("job_records_reconcile")
    assert api.wait_for_run("job_records_reconcile", reconcile["dag_run_id"], timeout=400)["state"] == "success"
    settled = job_record(stack, day)
    assert settled["status"] == "COMPLETED" and settled["run_id"] == run_id, settled
    assert int(settled["rows_written"]) == processed_rows(stack, day) > 0
    assert day in glue_partitions(stack)
    assert step_state(stack, held) == "COMPLETED"


def test_a_spark_step_killed_mid_write_fails_its_dates_and_a_rerun_writes_exactly_their_rows(api, local_stack):
    """A forced rerun of completed dates is killed while Spark writes: its dates are FAILED, the earlier
    output is intact, and the next run writes exactly the rows of the uninterrupted one."""
    stack = local_stack
    days = [f"2020-12-{d:02d}" for d in range(15, 25)]
    table = Path(stack.lake_dir) / "processed" / "jhu_daily_reports"
    conf = {"start_date": days[0], "end_date": days[-1], "force": True}

    def backfill() -> dict:
        run = api.trigger("jhu_backfill", conf=conf)
        return {**run, **api.wait_for_run("jhu_backfill", run["dag_run_id"], timeout=300)}

    assert backfill()["state"] == "success"
    uninterrupted = {day: processed_rows(stack, day) for day in days}
    assert all(uninterrupted.values())

    killed = api.trigger("jhu_backfill", conf=conf)

    def writing_step() -> str | None:
        ours = [s for s in steps(stack) if killed["dag_run_id"] in s["Name"]]
        staging = next(table.glob(".spark-staging-*/**/*.parquet"), None) or next(
            table.glob("_temporary/**/*.parquet"), None)
        return ours[0]["Id"] if ours and ours[0]["Status"]["State"] == "RUNNING" and staging else None

    step_id = stack.wait_for(writing_step, timeout=300, interval=0.02, message="the step to start writing")
    stack.client("emr").cancel_steps(ClusterId=stack.outputs["EmrClusterId"], StepIds=[step_id],
                                     StepCancellationOption="TERMINATE_PROCESS")
    assert api.wait_for_run("jhu_backfill", killed["dag_run_id"], timeout=300)["state"] == "failed"
    assert step_state(stack, step_id) == "CANCELLED"
    for day in days:
        record = job_record(stack, day)
        assert record["status"] == "FAILED" and record["run_id"] == killed["dag_run_id"] and record["error"], record
    assert {day: processed_rows(stack, day) for day in days} == uninterrupted

    assert backfill()["state"] == "success"
    assert {day: processed_rows(stack, day) for day in days} == uninterrupted
    for day in days:
        record = job_record(stack, day)
        assert record["status"] == "COMPLETED" and int(record["rows_written"]) == uninterrupted[day], record
    assert set(days) <= glue_partitions(stack)
