"""Run items in the job table: their shapes, idempotent conditional writes, and the stream they produce (moto)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from covid19_lake import run_records
from covid19_lake.job_table import RunInfo, utc_now
from covid19_lake.run_records import (
    FAILURES_BUDGET_BYTES,
    RunRecords,
    bounded_failures,
    failed_item,
    finished_item,
    needs_run_item,
    run_item_name,
    run_key,
    truncate_bytes,
)
from local.dynamodb_atomic import serialize_dynamodb_writes
from tests.job_table_schema import moto_job_table

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RUN = RunInfo("jhu_backfill", "manual__2026-11-28T12:00:00+00:00", 1)
JOB = "jhu_daily_reports"
MARCH = [f"2020-03-{n:02d}" for n in range(1, 32)]


def results(dates, failed=(), error="boom"):
    return {day: ({"status": "FAILED", "rows_written": 0, "rows_quarantined": 0, "error": f"{error} {day}"}
                  if day in failed else
                  {"status": "COMPLETED", "rows_written": 100, "rows_quarantined": 2, "error": None})
            for day in dates}


def test_key_and_name_follow_the_contract():
    assert run_item_name(JOB, RUN) == "jhu_daily_reports#run:jhu_backfill:manual__2026-11-28T12:00:00+00:00"
    assert run_key(JOB, RUN, ["2020-03-31", "2020-03-01", "2020-03-15", "2020-03-01"]) == {
        "job_date": "2020-03-01..2020-03-31", "job_name": run_item_name(JOB, RUN)}
    assert needs_run_item(["2020-03-01", "2020-03-02"]) and not needs_run_item(["2020-03-01", "2020-03-01"])
    with pytest.raises(ValueError, match="no dates"):
        run_key(JOB, RUN, [])


def test_finished_item_totals_and_names_every_failed_date():
    item = finished_item(JOB, RUN, results(MARCH[:10], failed={"2020-03-04", "2020-03-07"}),
                         ended_at=NOW, now=NOW, previous=None, dates=MARCH[:11])
    assert item is not None
    assert (item["status"], item["dates_completed"], item["dates_failed"], item["date_count"]) == ("FAILED", 8, 3, 11)
    assert (item["rows_written"], item["rows_quarantined"]) == (800, 16)
    assert item["failures"] == {"2020-03-04": "boom 2020-03-04", "2020-03-07": "boom 2020-03-07",
                                "2020-03-11": "no result was recorded for this date"}
    assert item["record_type"] == "run" and item["job"] == JOB and item["version"] == 1
    done = finished_item(JOB, RUN, results(MARCH[:3]), ended_at=NOW, now=NOW, previous=None)
    assert done is not None and done["status"] == "COMPLETED" and done["failures"] is None
    with pytest.raises(ValueError, match="COMPLETED or FAILED"):
        finished_item(JOB, RUN, {"2020-03-01": {"status": "RUNNING"}}, ended_at=NOW, now=NOW, previous=None)


def test_truncation_is_byte_exact_and_keeps_head_and_tail():
    text = "HEAD " + "é" * 5000 + " TAIL"
    for limit in (20, 100, 777, 2000):
        cut = truncate_bytes(text, limit)
        assert len(cut.encode("utf-8")) <= limit
    assert truncate_bytes(text, 200).startswith("HEAD") and truncate_bytes(text, 200).endswith("TAIL")
    assert truncate_bytes("short", 10) == "short"


def test_failures_stay_within_their_budget_however_many_dates_fail():
    days = [(datetime(2020, 1, 22) + timedelta(days=n)).date().isoformat() for n in range(2000)]
    kept, without = bounded_failures({day: "x" * 10_000 + "😀" for day in days})
    size = sum(len(day) + len(reason.encode("utf-8")) for day, reason in kept.items())
    assert size <= FAILURES_BUDGET_BYTES and without == 2000 - len(kept) and without > 0
    kept, without = bounded_failures({day: "E" * 10_000 for day in days[:495]})
    assert without == 0 and len(kept) == 495
    assert all(len(reason.encode("utf-8")) <= FAILURES_BUDGET_BYTES // 495 - 10 for reason in kept.values())
    kept, _ = bounded_failures({"2020-03-01": "line one\n\tline two", "2020-03-02": None})
    assert kept == {"2020-03-01": "line one line two", "2020-03-02": "no reason recorded"}


def test_failed_item_with_one_reason_or_one_per_date():
    item = failed_item(JOB, RUN, MARCH, "no cluster named covid19-lake was found", ended_at=NOW, now=NOW,
                       previous=None)
    assert item is not None
    assert (item["status"], item["dates_failed"], item["dates_completed"]) == ("FAILED", 31, 0)
    assert item["error"] == "no cluster named covid19-lake was found" and item["failures"] is None
    per_date = failed_item(JOB, RUN, MARCH[:3], {"2020-03-02": "not published within 48 h"}, ended_at=NOW,
                           now=NOW, previous=None)
    assert per_date is not None and per_date["failures"] == {
        "2020-03-01": "no reason recorded", "2020-03-02": "not published within 48 h",
        "2020-03-03": "no reason recorded"}


@pytest.fixture
def table(monkeypatch):
    with moto_job_table(monkeypatch) as name:
        yield RunRecords(name)


def stream_statuses() -> list[tuple[str, str | None, str | None]]:
    """(eventName, old status, new status) of every stream record so far: what the notifier would see."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = client.describe_table(TableName="jobs")["Table"]["LatestStreamArn"]
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for rec in streams.get_records(ShardIterator=iterator)["Records"]:
            images = {k: {n: TypeDeserializer().deserialize(v) for n, v in rec["dynamodb"].get(k, {}).items()}
                      for k in ("OldImage", "NewImage")}
            out.append((rec["eventName"], images["OldImage"].get("status"), images["NewImage"].get("status")))
    return out


def test_lifecycle_writes_each_transition_once_and_repeats_nothing(table):
    days = MARCH[:10] + MARCH[11:]  # a gap: 2020-03-11 was completed before
    assert table.submitted(JOB, RUN, days, cluster_id="j-1")
    assert not table.submitted(JOB, RUN, days, cluster_id="j-1")  # the claim task retried
    assert table.running(JOB, RUN, days, NOW + timedelta(seconds=30), step_id="s-1")
    assert not table.running(JOB, RUN, days, NOW + timedelta(seconds=31), step_id="s-1")
    assert not table.submitted(JOB, RUN, days, cluster_id="j-1")  # late: the item is further on
    outcome = results(days, failed={"2020-03-05", "2020-03-20"})
    assert table.finished(JOB, RUN, outcome, NOW + timedelta(minutes=10, seconds=30))
    assert not table.finished(JOB, RUN, outcome, NOW + timedelta(minutes=11))
    assert not table.failed(JOB, RUN, days, "the record_results task crashed")

    item = table.get(JOB, RUN, days)
    assert item is not None
    assert item["job_date"] == "2020-03-01..2020-03-31" and item["job_name"] == run_item_name(JOB, RUN)
    assert (item["status"], item["version"], item["try_number"]) == ("FAILED", 3, 1)
    assert (item["date_count"], item["dates_completed"], item["dates_failed"]) == (30, 28, 2)
    assert item["dates"] == days and "2020-03-11" not in item["dates"]
    assert (item["rows_written"], item["rows_quarantined"]) == (2800, 56)
    assert (item["cluster_id"], item["step_id"]) == ("j-1", "s-1")
    assert item["started_at"] == "2026-11-28T12:00:30Z" and float(item["duration_seconds"]) == 600.0
    assert set(item["failures"]) == {"2020-03-05", "2020-03-20"}
    assert "error" not in item and "failures_without_reason" not in item
    assert stream_statuses() == [("INSERT", None, "SUBMITTED"), ("MODIFY", "SUBMITTED", "RUNNING"),
                                 ("MODIFY", "RUNNING", "FAILED")]


def test_single_date_runs_write_no_run_item(table):
    assert not table.submitted(JOB, RUN, ["2020-03-01"], cluster_id="j-1")
    assert not table.failed(JOB, RUN, ["2020-03-01"], "no cluster")
    assert not table.finished(JOB, RUN, results(["2020-03-01"]), NOW)
    assert stream_statuses() == []


def test_airflow_side_failure_before_any_step_reaches_the_table_once(table):
    assert table.failed(JOB, RUN, MARCH, "no cluster named covid19-lake was found")
    assert not table.failed(JOB, RUN, MARCH, "no cluster named covid19-lake was found")  # task retried
    item = table.get(JOB, RUN, MARCH)
    assert item is not None and item["status"] == "FAILED" and item["dates_failed"] == 31
    assert "duration_seconds" not in item and "started_at" not in item
    # The run is cleared and tried again: a newer try submits afresh, then completes.
    retry = RunInfo(RUN.dag_id, RUN.run_id, 2)
    assert table.submitted(JOB, retry, MARCH, cluster_id="j-2")
    item = table.get(JOB, retry, MARCH)
    assert item is not None and (item["status"], item["try_number"], item["version"]) == ("SUBMITTED", 2, 2)
    assert "error" not in item and "dates_failed" not in item
    assert table.finished(JOB, RunInfo(RUN.dag_id, RUN.run_id, 1), results(MARCH), NOW + timedelta(minutes=5))
    item = table.get(JOB, retry, MARCH)
    assert item is not None and (item["status"], item["try_number"], item["dates_completed"]) == ("COMPLETED", 2, 31)
    assert stream_statuses() == [("INSERT", None, "FAILED"), ("MODIFY", "FAILED", "SUBMITTED"),
                                 ("MODIFY", "SUBMITTED", "COMPLETED")]


def test_failure_after_submission_keeps_the_runs_times(table):
    table.submitted(JOB, RUN, MARCH, cluster_id="j-1")
    assert table.failed(JOB, RUN, MARCH, "the EMR step was not added", ended_at=utc_now() + timedelta(hours=1))
    item = table.get(JOB, RUN, MARCH)
    assert item is not None and item["cluster_id"] == "j-1" and item["error"] == "the EMR step was not added"
    assert float(item["duration_seconds"]) > 0


def test_a_huge_failed_run_stays_far_below_the_item_limit(table):
    days = [(datetime(2020, 1, 22) + timedelta(days=n)).date().isoformat() for n in range(495)]
    huge = {day: {"status": "FAILED", "error": "Traceback " + "frame\n" * 20_000 + "root cause"} for day in days}
    assert table.finished(JOB, RUN, huge, NOW)
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName="jobs", Key={k: {"S": v} for k, v in run_key(JOB, RUN, days).items()})["Item"]
    assert len(str(item).encode("utf-8")) < 150_000  # DynamoDB's limit is 400 KB
    assert item["dates_failed"] == {"N": "495"} and len(item["failures"]["M"]) == 495


def test_concurrent_writers_write_one_transition(table):
    serialize_dynamodb_writes()
    table.submitted(JOB, RUN, MARCH, cluster_id="j-1")
    barrier = threading.Barrier(6)
    wrote: list[bool] = []

    def contend() -> None:
        writer = RunRecords("jobs")
        barrier.wait()
        wrote.append(writer.running(JOB, RUN, MARCH, NOW, step_id="s-1"))

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wrote) == [False] * 5 + [True]
    assert [s for s in stream_statuses() if s[2] == "RUNNING"] == [("MODIFY", "SUBMITTED", "RUNNING")]


def test_module_reuses_the_job_tables_helpers():
    from covid19_lake import job_table

    assert run_records.iso is job_table.iso and run_records.RunInfo is job_table.RunInfo
