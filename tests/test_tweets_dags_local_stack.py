"""tweets_process on the embedded local stack: the shared EMR building block with the tweets job."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from covid19_lake import tweets_jobs
from local import airflow_local
from tests.test_jhu_dags_local_stack import job_record, steps
from tests.test_tweets_spark import build_lake

pytestmark = pytest.mark.stack


def partitions(stack, table: str) -> set[str]:
    pages = stack.client("glue").get_paginator("get_partitions").paginate(DatabaseName="covid19", TableName=table)
    return {p["Values"][0] for page in pages for p in page["Partitions"]}


def test_hourly_run_rebuilds_the_created_date_and_catalogs_both_tables(airflow_on_local_stack, monkeypatch):
    # As scheduled on AWS: the run at 19:00 processes its data interval, the arrival hour 18.
    monkeypatch.delenv("COVID19_LAKE_TWEETS_PROCESS_SCHEDULE", raising=False)
    stack = airflow_on_local_stack
    build_lake(Path(stack.lake_dir))  # raw/tweets/2021/03/02/18 ... 2021/03/03/10, recorded API pages
    before = len(steps(stack))
    run = airflow_local.run_dag("tweets_process", logical_date=datetime(2021, 3, 2, 19, tzinfo=UTC))
    states = airflow_local.task_states(run)
    assert str(run.state) == "success", states
    assert len(steps(stack)) == before + 1, states
    record = job_record(stack, "2021-03-02T18", job="tweets")
    assert record["status"] == "COMPLETED" and int(record["rows_written"]) > 0
    assert "2021-03-02" in partitions(stack, "tweets")
    assert "2021-03-02" in partitions(stack, "tweet_daily_stats")
    folder = Path(stack.lake_dir) / "processed" / "tweets" / "created_date=2021-03-02"
    assert any(folder.glob("*.parquet"))


def test_whole_run_results_fail_every_key_when_a_date_failed():
    summary = {"dates": {"2021-03-02": {"status": "COMPLETED", "rows_written": 5},
                         "2021-03-01": {"status": "FAILED", "error": "AnalysisException: bad path"}},
               "totals": {"rows_written": 5, "rows_quarantined": 1}}
    results = tweets_jobs.whole_run_results(["2021-03-02T18"], summary, None)
    assert results["2021-03-02T18"]["status"] == "FAILED"
    assert results["2021-03-02T18"]["error"] == "2021-03-01: AnalysisException: bad path"
    assert tweets_jobs.written_dates(["2021-03-02T18"], summary) == ["2021-03-02"]
    step = {"Id": "s-1", "Status": {"State": "FAILED", "FailureDetails": {"Reason": "boom"}}}
    assert tweets_jobs.whole_run_results(["k"], None, step)["k"]["error"] == "EMR step s-1 FAILED: boom"
    ok = {"dates": {"2021-03-02": {"status": "NO_INPUT"}}, "totals": {"rows_written": 0}}
    assert tweets_jobs.whole_run_results(["k"], ok, None)["k"]["status"] == "COMPLETED"
