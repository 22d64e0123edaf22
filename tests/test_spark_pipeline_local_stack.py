"""The shared EMR building block's failure paths on the local stack, with real EMR steps (the step runner),
the real job table and Glue: stale records settled (by the next claim and by job_records_reconcile), a
step cancelled after a claim takeover, a step still running when the results are due, the step time
limit, and the poke sensor mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException

from covid19_lake import config, jhu_jobs, job_table, spark_pipeline
from covid19_lake.job_table import JobTable, RunInfo
from local import airflow_local
from tests.stack_queries import glue_partitions, job_record, processed_rows, steps

pytestmark = pytest.mark.stack
JOB = jhu_jobs.JOB_NAME
TIMEOUT = timedelta(minutes=30)


@pytest.fixture
def airflow(airflow_on_local_stack):
    return airflow_on_local_stack


def table_resource(stack):
    return boto3.resource("dynamodb", endpoint_url=stack.env()["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          ).Table(stack.outputs["JobTableName"])


def make_stale(stack, day: str) -> dict:
    """What a run whose record_results was killed leaves: its step COMPLETED and its summary written, the
    record still RUNNING, no Glue partition."""
    table = table_resource(stack)
    item = table.get_item(Key={"job_date": day, "job_name": JOB}, ConsistentRead=True)["Item"]
    assert item["status"] == "COMPLETED", item
    for name in ("ended_at", "duration_seconds", "rows_written", "rows_quarantined", "error"):
        item.pop(name, None)
    item["attempts"][-1] = {k: v for k, v in item["attempts"][-1].items() if k not in ("ended_at", "error")}
    item["attempts"][-1]["status"] = "RUNNING"
    item.update(status="RUNNING", version=item["version"] + 1)
    table.put_item(Item=item)
    stack.client("glue").batch_delete_partition(
        DatabaseName=stack.outputs["GlueDatabaseName"], TableName="jhu_daily_reports",
        PartitionsToDelete=[{"Values": [day]}])
    assert day not in glue_partitions(stack)
    return item


def hold_step(stack, tmp_path: Path, name: str) -> tuple[str, Path]:
    """A step that runs until the returned file exists."""
    release = tmp_path / f"release-{name}"
    script = tmp_path / f"hold-{name}.py"
    script.write_text("import pathlib, time\n"
                      f"while not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.2)\n", encoding="utf-8")
    cluster = stack.outputs["EmrClusterId"]
    emr = stack.client("emr")
    step_id = emr.add_job_flow_steps(JobFlowId=cluster, Steps=[{
        "Name": name, "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", str(script)]}}])["StepIds"][0]
    stack.wait_for(lambda: step_state(stack, step_id) == "RUNNING", timeout=120, message=f"{name} to run")
    return step_id, release


def step_state(stack, step_id: str) -> str:
    return stack.client("emr").describe_step(ClusterId=stack.outputs["EmrClusterId"],
                                             StepId=step_id)["Step"]["Status"]["State"]


def test_poke_mode_runs_a_day_and_the_next_claim_settles_its_stale_record_instead_of_reclaiming(airflow,
                                                                                                monkeypatch):
    """(3, 4a) A record left RUNNING after its step COMPLETED is settled from the job summary (COMPLETED
    with its rows, Glue partition added) by the next run of the date, which then has nothing to do."""
    stack = airflow
    day = "2020-07-01"
    monkeypatch.setenv("COVID19_LAKE_SENSOR_MODE", "poke")
    dag = airflow_local.load_dag("jhu_daily_reports")
    assert not dag.get_task("spark_job.wait_for_start").deferrable
    assert not dag.get_task("spark_job.wait_for_end").deferrable
    first = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 7, 1, tzinfo=UTC))
    assert str(first.state) == "success", airflow_local.task_states(first)
    rows = processed_rows(stack, day)
    stale = make_stale(stack, day)
    before = len(steps(stack))

    again = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 7, 1, tzinfo=UTC))
    states = airflow_local.task_states(again)
    assert states["spark_job.claim"] == "skipped" and states["spark_job.add_step"] == "skipped", states
    assert states["spark_job.record_results"] == "skipped"
    assert len(steps(stack)) == before  # not re-claimed: no second step
    record = job_record(stack, day)
    assert record["status"] == "COMPLETED" and int(record["rows_written"]) == rows > 0
    assert record["run_id"] == stale["run_id"] and record["step_id"] == stale["step_id"]
    step = stack.client("emr").describe_step(ClusterId=record["cluster_id"], StepId=record["step_id"])["Step"]
    assert record["ended_at"] == job_table.iso(step["Status"]["Timeline"]["EndDateTime"])
    assert day in glue_partitions(stack)


def test_reconcile_dag_settles_ended_steps_and_expired_claims_and_leaves_live_steps_alone(airflow, tmp_path):
    stack = airflow
    completed, failed, expired, live = "2020-07-02", "2020-07-03", "2020-07-04", "2020-07-05"
    run = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 7, 2, tzinfo=UTC))
    assert str(run.state) == "success", airflow_local.task_states(run)
    rows = processed_rows(stack, completed)
    make_stale(stack, completed)

    cluster = stack.outputs["EmrClusterId"]
    table = JobTable(stack.outputs["JobTableName"])
    killed = RunInfo("jhu_backfill", "manual__killed", 1)
    # A step that ended FAILED while its record still said SUBMITTED.
    bad = stack.client("emr").add_job_flow_steps(JobFlowId=cluster, Steps=[{
        "Name": "fails", "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "/nonexistent/job.py"]}}])["StepIds"][0]
    stack.wait_for(lambda: step_state(stack, bad) == "FAILED", timeout=120, message="the bad step to fail")
    assert table.claim(failed, JOB, killed, cluster_id=cluster, force=False, claim_timeout=TIMEOUT,
                       step_state=lambda c, s: None).action == "claim"
    assert table.record_step(failed, JOB, killed, cluster, bad)
    # A claim that never got its step, long ago.
    assert table.claim(expired, JOB, killed, cluster_id=cluster, force=False, claim_timeout=TIMEOUT,
                       step_state=lambda c, s: None,
                       now=job_table.utc_now() - TIMEOUT - timedelta(minutes=1)).action == "claim"
    # A step that is still running.
    holding, release = hold_step(stack, tmp_path, "reconcile-live")
    try:
        assert table.claim(live, JOB, killed, cluster_id=cluster, force=False, claim_timeout=TIMEOUT,
                           step_state=lambda c, s: None).action == "claim"
        assert table.record_step(live, JOB, killed, cluster, holding)

        reconciled = airflow_local.run_dag("job_records_reconcile")
        assert str(reconciled.state) == "success", airflow_local.task_states(reconciled)
        record = job_record(stack, completed)
        assert record["status"] == "COMPLETED" and int(record["rows_written"]) == rows > 0
        assert completed in glue_partitions(stack)
        record = job_record(stack, failed)
        assert record["status"] == "FAILED" and record["error"].startswith(f"EMR step {bad} FAILED")
        record = job_record(stack, expired)
        assert record["status"] == "FAILED" and "expired" in record["error"]
        assert job_record(stack, live)["status"] == "SUBMITTED"
        # Settled records are final: a second pass writes nothing.
        versions = {d: job_record(stack, d)["version"] for d in (completed, failed, expired)}
        airflow_local.run_dag("job_records_reconcile")
        assert {d: job_record(stack, d)["version"] for d in versions} == versions
    finally:
        release.write_text("go", encoding="utf-8")
    stack.wait_for(lambda: step_state(stack, holding) == "COMPLETED", timeout=120, message="the hold to end")


def test_submit_step_cancels_its_step_when_a_date_was_taken_over(airflow):
    """(4b) Run X's claim of one date expired and run Y took it before X recorded its step: X's step is
    cancelled at once, X's other date recorded FAILED, Y's claim untouched."""
    stack = airflow
    mine, taken = "2020-07-06", "2020-07-07"
    cfg = config.load()
    cluster = stack.outputs["EmrClusterId"]
    table = JobTable(cfg.lake.job_table)
    run_x, run_y = RunInfo("jhu_backfill", "manual__x", 1), RunInfo("jhu_backfill", "manual__y", 1)
    old = job_table.utc_now() - TIMEOUT - timedelta(minutes=1)
    for day in (mine, taken):
        assert table.claim(day, JOB, run_x, cluster_id=cluster, force=False, claim_timeout=TIMEOUT,
                           step_state=lambda c, s: None, now=old).action == "claim"
    assert table.claim(taken, JOB, run_y, cluster_id=cluster, force=False, claim_timeout=TIMEOUT,
                       step_state=lambda c, s: None).action == "claim"
    before = len(steps(stack))
    with pytest.raises(AirflowFailException, match=f"claimed by another run.*{taken}"):
        spark_pipeline.submit_step(cfg, jhu_jobs.SPARK_JOB, run_x, cluster, [mine, taken], spark_pipeline.emr_hook(cfg))
    added = steps(stack)[: len(steps(stack)) - before]
    assert len(added) == 1
    stack.wait_for(lambda: step_state(stack, added[0]["Id"]) == "CANCELLED", timeout=60, message="the cancel")
    record = job_record(stack, mine)
    assert record["status"] == "FAILED" and "cancelled" in record["error"] and record["run_id"] == "manual__x"
    record = job_record(stack, taken)
    assert record["status"] == "SUBMITTED" and record["run_id"] == "manual__y" and "step_id" not in record


def test_results_of_a_running_step_wait_for_its_end_unless_it_passed_the_time_limit(airflow, tmp_path):
    """A killed wait_for_end: record_results finds the step still running, writes nothing and says so. Past
    the step time limit the step is cancelled and its dates recorded FAILED."""
    stack = airflow
    day = "2020-07-08"
    cfg = config.load()
    cluster = stack.outputs["EmrClusterId"]
    table = JobTable(cfg.lake.job_table)
    run = RunInfo("jhu_daily_reports", "manual__slow", 1)
    holding, release = hold_step(stack, tmp_path, "slow")
    try:
        table.claim(day, JOB, run, cluster_id=cluster, force=False, claim_timeout=TIMEOUT, step_state=lambda c, s: None)
        table.record_step(day, JOB, run, cluster, holding)
        table.mark_running(day, JOB, run, job_table.utc_now())
        hook = spark_pipeline.emr_hook(cfg)
        with pytest.raises(AirflowFailException, match="still RUNNING: its 1 dates stay RUNNING"):
            spark_pipeline.record_run_results(cfg, jhu_jobs.SPARK_JOB, run, cluster, holding, [day], hook,
                                              step_timeout=timedelta(hours=6))
        assert job_record(stack, day)["status"] == "RUNNING"
        # Without the step id (add_step's XCom lost), the step recorded on the date is the one asked about.
        with pytest.raises(AirflowFailException, match=f"step {holding} is still RUNNING"):
            spark_pipeline.record_run_results(cfg, jhu_jobs.SPARK_JOB, run, None, None, [day], hook,
                                              step_timeout=timedelta(hours=6))
        with pytest.raises(AirflowFailException, match="1 of 1 dates failed"):
            spark_pipeline.record_run_results(cfg, jhu_jobs.SPARK_JOB, run, cluster, holding, [day], hook,
                                              step_timeout=timedelta(0))
        record = job_record(stack, day)
        assert record["status"] == "FAILED" and "ran longer than the step time limit" in record["error"]
        stack.wait_for(lambda: step_state(stack, holding) == "CANCELLED", timeout=60, message="the cancel")
    finally:
        release.write_text("go", encoding="utf-8")


def test_a_run_that_claims_nothing_names_each_dates_decision():
    message = spark_pipeline.nothing_to_run(JOB, {
        "2020-03-01": "skip (completed by run scheduled__2020-03-01; trigger with force to redo)",
        "2020-03-02": "refuse (step s-1 on j-1 is RUNNING for run jhu_backfill/manual__a)"})
    assert message == (
        "nothing to run for jhu_daily_reports: none of its 2 dates was claimed: "
        "2020-03-01: skip (completed by run scheduled__2020-03-01; trigger with force to redo); "
        "2020-03-02: refuse (step s-1 on j-1 is RUNNING for run jhu_backfill/manual__a)")
    many = spark_pipeline.nothing_to_run(JOB, {f"2020-03-{d:02d}": "skip (x)" for d in range(1, 31)})
    assert many.endswith("2020-03-20: skip (x); and 10 more")
