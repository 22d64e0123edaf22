"""Pure pieces of the run-level notifications: which records an Airflow-side failure takes, which run
item a claim plans, and how the webhook sink's posts are counted per destination."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from covid19_lake import jhu_jobs, run_records, spark_pipeline
from covid19_lake.job_table import RunInfo, failure_decision
from local.webhook_sink import count_messages, post_status

RUN = RunInfo("jhu_backfill", "manual__1", 2)
OTHER = RunInfo("jhu_backfill", "manual__0", 1)
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def record(status, run=OTHER, **extra):
    return {"status": status, "dag_id": run.dag_id, "run_id": run.run_id, "version": 1, **extra}


def test_a_failure_before_any_step_takes_only_the_dates_no_run_holds():
    assert failure_decision(None, RUN, force=False) == "fail"
    assert failure_decision(record("FAILED"), RUN, force=False) == "fail"
    assert failure_decision(record("SUBMITTED", RUN), RUN, force=False) == "fail"  # its own claim, no step
    assert failure_decision(record("SUBMITTED", RUN, step_id="s-1"), RUN, force=False).startswith("in flight")
    assert failure_decision(record("RUNNING"), RUN, force=True).startswith("in flight for run jhu_backfill/manual__0")
    assert failure_decision(record("COMPLETED"), RUN, force=False) == "completed by run manual__0"
    assert failure_decision(record("COMPLETED"), RUN, force=True) == "fail"
    assert failure_decision(record("FAILED", RUN), RUN, force=True) == "already failed for this run"


def test_the_claim_plans_a_run_item_only_for_two_claimable_dates_or_more():
    def plan(items, force=False):
        return spark_pipeline.planned_run_item(jhu_jobs.SPARK_JOB, RUN, items, force=force,
                                               claim_timeout=timedelta(minutes=30),
                                               step_state=lambda c, s: None, now=NOW)
    name = run_records.run_item_name(jhu_jobs.JOB_NAME, RUN)
    assert plan({"2020-03-01": None, "2020-03-02": record("FAILED")}) == name
    completed = {"2020-03-01": None, "2020-03-02": record("COMPLETED")}
    assert plan(completed) is None  # one date will run: its own record reports it
    assert plan(completed, force=True) == name
    assert plan({"2020-03-01": None}) is None


def post(path, status_title, **more):
    return {"path": path, "body": {"text": f"x {status_title}: jhu_daily_reports for 2020-03-01..2020-03-31 "
                                           "(31 dates)", **more}}


def test_count_messages_counts_delivered_posts_per_destination_and_status(tmp_path):
    log = tmp_path / "sink.jsonl"
    posts = [post("/chime", "SUBMITTED"), post("/slack", "SUBMITTED"), post("/slack", "RUNNING"),
             post("/slack", "PARTLY FAILED", failures="2020-03-04: EMR step s-1 FAILED: boom"),
             post("/status/500/teams", "SUBMITTED"), post("/teams", "COMPLETED"),
             {"path": "/teams", "body": {"text": "✅ COMPLETED: jhu_daily_reports for 2020-04-01"}}]
    log.write_text("".join(json.dumps(p) + "\n" for p in posts), encoding="utf-8")
    assert post_status(posts[3]) == "PARTLY FAILED"
    counted = count_messages(log)
    assert counted["total"] == 6  # the 500 was not delivered
    assert counted["by_destination"] == {"chime": 1, "slack": 3, "teams": 2}
    assert counted["by_destination_and_status"]["slack"] == {"SUBMITTED": 1, "RUNNING": 1, "PARTLY FAILED": 1}
    assert count_messages(log, about="for 2020-03-01..2020-03-31")["by_destination"] == {
        "chime": 1, "slack": 3, "teams": 1}
    assert count_messages(log, skip_lines=5)["by_destination"] == {"teams": 2}
    assert count_messages(tmp_path / "missing.jsonl")["total"] == 0
