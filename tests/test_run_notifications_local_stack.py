"""Notifications per run, end to end on the local stack: the shared EMR building block writes the run item
(SUBMITTED, RUNNING, COMPLETED / FAILED), the job table's stream drives the real notifier into the webhook
sink. A partly failed 40-date backfill posts 3 messages per destination, the last naming every failed date
and its reason; Airflow-side failures (no cluster, landing after the publication window, a crashed claim)
become job records and reach chat once."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from covid19_lake import config, jhu_jobs, job_table, run_records, spark_pipeline
from covid19_lake.job_table import JobTable, RunInfo
from local import airflow_local
from local.webhook_sink import count_messages, read_sink_log
from tests.stack_queries import job_record

pytestmark = pytest.mark.stack
JOB = jhu_jobs.JOB_NAME
DESTINATIONS = ("chime", "slack", "teams")
_PER_DATE_TITLE = re.compile(r": jhu_daily_reports for (\d{4}-\d{2}-\d{2})(?!\.\.)")


@pytest.fixture
def airflow(airflow_on_local_stack):
    return airflow_on_local_stack


def days_from(first: str, count: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=n)).isoformat() for n in range(count)]


def run_title(days: list[str]) -> str:
    return f"for {days[0]}..{days[-1]} ({len(days)} dates)"


def per_date_posts(stack, days: list[str], skip: int) -> list[str]:
    """Dates of `days` that got a message of their own (a date's title, not a run's)."""
    wanted = set(days)
    found = []
    for post in read_sink_log(stack.sink_log)[skip:]:
        found += [d for d in _PER_DATE_TITLE.findall(json.dumps(post.get("body"), ensure_ascii=False))
                  if d in wanted]
    return found


def wait_for_messages(stack, about: str, per_destination: int, skip: int = 0) -> dict:
    def enough():
        counted = count_messages(stack.sink_log, skip, about=about)
        return counted if all(counted["by_destination"].get(d, 0) >= per_destination
                              for d in DESTINATIONS) else None
    return stack.wait_for(enough, timeout=90, message=f"{per_destination} messages per destination {about}")


def sink_length(stack) -> int:
    return len(read_sink_log(stack.sink_log))


def run_item(stack, days: list[str], dag_id: str, run_id: str) -> dict:
    name = run_records.run_item_name(JOB, RunInfo(dag_id, run_id))
    return job_record(stack, f"{days[0]}..{days[-1]}", name)


def with_variable(monkeypatch, **sections) -> None:
    """The test's Airflow Variable with ``sections`` merged in key by key (``emr={"cluster_name": ...}``)."""
    from local.stack import merge_variable

    variable = json.loads(os.environ["AIRFLOW_VAR_COVID19_LAKE"])
    monkeypatch.setenv("AIRFLOW_VAR_COVID19_LAKE", json.dumps(merge_variable(variable, sections)))


def test_partly_failed_40_date_backfill_posts_three_messages_per_destination_naming_each_failure(airflow):
    stack = airflow
    days = days_from("2020-08-01", 40)
    bad = {"2020-08-05", "2020-08-06", "2020-08-20"}
    raws = []
    for day in sorted(bad):  # lands as "present": the Spark job quarantines the file and fails the date
        stamp = date.fromisoformat(day).strftime("%m-%d-%Y")
        raw = Path(stack.lake_dir) / f"raw/jhu/daily_reports/report_date={day}/{stamp}.csv"
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(f"Region,Cases,When\nNowhere {day},1,{day}\n", encoding="utf-8")
        raws.append(raw)
    skip = sink_length(stack)
    try:
        run = airflow_local.run_dag("jhu_backfill", conf={"start_date": days[0], "end_date": days[-1]})
    finally:
        for raw in raws:
            raw.unlink()
    states = airflow_local.task_states(run)
    assert str(run.state) == "failed" and states["spark_job.record_results"] == "failed", states

    item = run_item(stack, days, "jhu_backfill", run.run_id)
    assert item["status"] == "FAILED" and item["record_type"] == "run"
    assert (int(item["dates_completed"]), int(item["dates_failed"]), int(item["date_count"])) == (37, 3, 40)
    assert set(item["failures"]) == bad
    for day in days:  # every date's record is final and names the run item: its run item reports it
        record = job_record(stack, day)
        assert record["status"] == ("FAILED" if day in bad else "COMPLETED")
        assert record["run_item"] == run_records.run_item_name(JOB, RunInfo("jhu_backfill", run.run_id))

    counted = wait_for_messages(stack, run_title(days), 3, skip)
    for destination in DESTINATIONS:
        assert counted["by_destination_and_status"][destination] == {
            "SUBMITTED": 1, "RUNNING": 1, "PARTLY FAILED": 1}, counted
    assert count_messages(stack.sink_log, skip)["by_destination"] == {d: 3 for d in DESTINATIONS}
    assert per_date_posts(stack, days, skip) == []
    final = [p for p in read_sink_log(stack.sink_log)[skip:] if "PARTLY FAILED" in json.dumps(p["body"])]
    for post in final:  # one message names each failed date and its reason (the file the job rejected)
        text = json.dumps(post["body"], ensure_ascii=False)
        assert "3 failed" in text
        for day in bad:
            assert day in text or "2020-08-05..2020-08-06" in text
            assert date.fromisoformat(day).strftime("%m-%d-%Y") + ".csv" in text, (post["path"], day)

    # Retries and repeats write nothing: the run item is final, so the stream carries nothing new.
    cfg = config.load()
    owner = RunInfo("jhu_backfill", run.run_id, 1)
    before = run_item(stack, days, "jhu_backfill", run.run_id)["version"]
    records = run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id)
    assert not records.submitted(JOB, owner, days, cluster_id=item["cluster_id"])
    assert not records.running(JOB, owner, days, job_table.utc_now())
    with pytest.raises(Exception, match="3 of 40 dates failed"):  # record_results' retry (try 3)
        spark_pipeline.record_run_results(cfg, jhu_jobs.SPARK_JOB, RunInfo("jhu_backfill", run.run_id, 3),
                                          item["cluster_id"], item["step_id"], days,
                                          spark_pipeline.emr_hook(cfg), step_timeout=timedelta(hours=6),
                                          run_item=True)
    assert run_item(stack, days, "jhu_backfill", run.run_id)["version"] == before


def test_no_cluster_reaches_chat_once_as_the_dates_or_the_runs_failed_record(airflow, monkeypatch):
    stack = airflow
    with_variable(monkeypatch, emr={"cluster_name": "no-such-cluster"})
    skip = sink_length(stack)
    day = "2020-10-01"
    run = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 10, 1, tzinfo=UTC))
    states = airflow_local.task_states(run)
    assert str(run.state) == "failed" and states["spark_job.acquire_cluster"] == "failed", states
    record = job_record(stack, day)
    assert record["status"] == "FAILED" and record["run_id"] == run.run_id and "run_item" not in record
    assert "No EMR cluster named 'no-such-cluster'" in record["error"]
    assert record["error"].startswith("spark_job.acquire_cluster failed: ")
    counted = wait_for_messages(stack, f"for {day}", 1, skip)
    assert counted["by_destination_and_status"] == {d: {"FAILED": 1} for d in DESTINATIONS}

    # A second run of the date fails the same way: its record says FAILED already, nothing more is posted.
    again = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 10, 1, tzinfo=UTC),
                                  conf={"force": True})
    assert str(again.state) == "failed"
    assert job_record(stack, day)["run_id"] == again.run_id

    # A backfill over several dates: ONE message per destination, from its run item.
    days = days_from("2020-10-02", 3)
    backfill = airflow_local.run_dag("jhu_backfill", conf={"start_date": days[0], "end_date": days[-1]})
    assert str(backfill.state) == "failed", airflow_local.task_states(backfill)
    item = run_item(stack, days, "jhu_backfill", backfill.run_id)
    assert item["status"] == "FAILED" and "No EMR cluster named" in item["error"]
    assert all(job_record(stack, d)["status"] == "FAILED" and job_record(stack, d)["run_item"] for d in days)
    counted = wait_for_messages(stack, run_title(days), 1, skip)
    assert counted["by_destination_and_status"] == {d: {"FAILED": 1} for d in DESTINATIONS}
    assert per_date_posts(stack, days, skip) == []
    # The stream is delivered in order: by now the second daily run's write would have posted too.
    assert count_messages(stack.sink_log, skip, about=f"for {day}")["by_destination"] == {d: 1 for d in DESTINATIONS}


def test_landing_after_the_publication_window_reaches_chat_once(airflow, monkeypatch, tmp_path):
    stack = airflow
    empty = tmp_path / "jhu-empty"
    empty.mkdir()
    with_variable(monkeypatch, jhu={"source_url": empty.as_uri()})
    skip = sink_length(stack)
    day = "2020-10-06"
    run = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 10, 6, tzinfo=UTC))
    states = airflow_local.task_states(run)
    assert str(run.state) == "failed" and states["land_report"] == "failed", states
    record = job_record(stack, day)
    assert record["status"] == "FAILED" and "was not published" in record["error"]
    assert record["error"].startswith("land_report failed: JHU report 10-06-2020.csv")
    counted = wait_for_messages(stack, f"for {day}", 1, skip)
    assert counted["by_destination_and_status"] == {d: {"FAILED": 1} for d in DESTINATIONS}


def test_a_crashed_claim_fails_its_claimed_dates_and_run_item_once(airflow):
    """The claim's last try crashed after claiming two of three dates (named for the run item, no run
    item written yet): the failure callback settles the claims and writes the run item FAILED, once."""
    stack = airflow
    cfg = config.load()
    table = JobTable(cfg.lake.job_table)
    run = RunInfo("jhu_backfill", "manual__crashed_claim", 3)
    days = days_from("2020-10-10", 3)
    name = run_records.run_item_name(JOB, run)
    for day in days[:2]:
        assert table.claim(day, JOB, run, cluster_id=stack.outputs["EmrClusterId"], force=False,
                           claim_timeout=timedelta(minutes=30), step_state=lambda c, s: None,
                           run_item=name).action == "claim"
    skip = sink_length(stack)
    reason = "spark_job.claim failed: ClientError: ProvisionedThroughputExceededException"
    outcome = spark_pipeline.record_airflow_failure(cfg, jhu_jobs.SPARK_JOB, run, days, reason)
    assert outcome == {"dates": days, "run_item": name, "reported": True}
    for day in days:
        record = job_record(stack, day)
        assert record["status"] == "FAILED" and record["error"] == reason and record["run_item"] == name
    versions = {day: job_record(stack, day)["version"] for day in days}
    # The callback again (a rerun of the failed task's callback): nothing is written.
    assert spark_pipeline.record_airflow_failure(cfg, jhu_jobs.SPARK_JOB, run, days, reason)["reported"] is False
    assert {day: job_record(stack, day)["version"] for day in days} == versions
    item = run_item(stack, days, "jhu_backfill", run.run_id)
    assert item["status"] == "FAILED" and item["error"] == reason and int(item["dates_failed"]) == 3
    counted = wait_for_messages(stack, run_title(days), 1, skip)
    assert counted["by_destination_and_status"] == {d: {"FAILED": 1} for d in DESTINATIONS}
    assert per_date_posts(stack, days, skip) == []


def test_reconcile_finishes_a_run_item_whose_dates_were_settled_without_it(airflow):
    """record_results never ran (its worker was killed); the dates were settled by someone else: the
    job_records_reconcile DAG finishes the run item from the dates' records, and posts it once."""
    stack = airflow
    cfg = config.load()
    table = JobTable(cfg.lake.job_table)
    run = RunInfo("jhu_backfill", "manual__killed_results", 1)
    days = days_from("2020-10-20", 2)
    name = run_records.run_item_name(JOB, run)
    cluster = stack.outputs["EmrClusterId"]
    skip = sink_length(stack)
    for day in days:
        assert table.claim(day, JOB, run, cluster_id=cluster, force=False, claim_timeout=timedelta(minutes=30),
                           step_state=lambda c, s: None, run_item=name).action == "claim"
    records = run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id)
    assert records.submitted(JOB, run, days, cluster_id=cluster)
    ended = job_table.utc_now()
    assert table.finish(days[0], JOB, run, status="COMPLETED", ended_at=ended, rows_written=10, rows_quarantined=1)
    assert table.finish(days[1], JOB, run, status="FAILED", ended_at=ended, error="bad file 10-21-2020.csv")
    reconciled = airflow_local.run_dag("job_records_reconcile")
    assert str(reconciled.state) == "success", airflow_local.task_states(reconciled)
    item = run_item(stack, days, "jhu_backfill", run.run_id)
    assert item["status"] == "FAILED" and int(item["dates_completed"]) == 1
    assert {d: r["S"] for d, r in item["failures"].items()} == {days[1]: "bad file 10-21-2020.csv"}
    assert int(item["rows_written"]) == 10
    version = item["version"]
    airflow_local.run_dag("job_records_reconcile")
    assert run_item(stack, days, "jhu_backfill", run.run_id)["version"] == version
    counted = wait_for_messages(stack, run_title(days), 2, skip)
    assert counted["by_destination_and_status"] == {d: {"SUBMITTED": 1, "PARTLY FAILED": 1} for d in DESTINATIONS}
    assert per_date_posts(stack, days, skip) == []
