"""The tweets DAGs under the real scheduler, against the local stack's X API stand-in (synthetic corpus,
seed 19), triggered and inspected only through the REST API v2; the stand-in and the stack's Firehose
faults through their loopback control endpoints.

Dates 2020-03-16..2020-03-17 (a Monday and a Tuesday, more than a page of tweets each) are this file's
(no other test of the session fetches them); each interval runs with the stand-in's virtual clock at 00:10
of the next day, so Firehose names objects by that hour.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from covid19_lake.tweets.checkpoint import SearchState
from local import tweets_demo
from local.stack import TWEETS_CHECKPOINT_VARIABLE, FirehoseFaults
from local.tweets_synth import generate, window
from tests.test_tweets_x_api import matches_default_query

pytestmark = pytest.mark.stack
DAYS = (date(2020, 3, 16), date(2020, 3, 17))
CORPUS = generate(seed=19)


@pytest.fixture
def control(local_stack, api):
    """The stand-in's control, the lake cleared for this file's dates, the checkpoint reset; afterwards the
    wall clock, the stack's token, default rate limits and no pending Firehose faults again."""
    x_api = tweets_demo.XApiControl(local_stack.x_api["base_url"])
    tweets_demo.reset_lake(local_stack, *DAYS)
    tweets_demo.seed_checkpoint(api, f"{DAYS[0]}T00:00:00Z")
    try:
        yield x_api
    finally:
        x_api.set_now(None)
        x_api.post("bearer-token", {"token": local_stack.x_api["token"]})
        x_api.post("rate-limits", {"search": {"limit": 450, "window_seconds": 900}})
        x_api.post(FirehoseFaults.PATH.removeprefix("/_stand_in/"), {"fail": []})


def checkpoint(api) -> SearchState:
    return SearchState.from_json(tweets_demo.get_variable(api, TWEETS_CHECKPOINT_VARIABLE))


def task_log(server, dag_id: str, run_id: str, task_id: str) -> str:
    folder = server.log_dir / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "".join(p.read_text(errors="replace") for p in sorted(folder.glob("attempt=*.log")))


def fetched_until(day: date) -> datetime:
    """Where the interval run just after ``day`` stops: recent search's index delay before the virtual now."""
    return tweets_demo.arrival_hour(day) + tweets_demo.FETCH_AFTER_MIDNIGHT - timedelta(seconds=30)


def expected(day: date) -> set[str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if day > DAYS[0]:
        start = fetched_until(day - timedelta(days=1))
    return {t["id"] for t in window(CORPUS, start, fetched_until(day)) if matches_default_query(t)}


def raw_lines(lake: Path, day: date) -> list[dict]:
    folder = lake / "raw" / "tweets" / f"{tweets_demo.arrival_hour(day):%Y/%m/%d/%H}"
    return [json.loads(line) for p in sorted(folder.glob("*")) if not p.name.startswith(".")
            for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_revoked_token_fails_the_run_naming_the_connection_and_never_logging_a_token(
        airflow_server, api, local_stack, control):
    control.set_now(tweets_demo.arrival_hour(DAYS[0]))
    control.post("bearer-token", {"token": "rotated-elsewhere-4242"})
    run = tweets_demo.trigger_and_wait(api, "tweets_ingest", timeout=300)
    assert run["state"] == "failed" and run["tasks"] == {"fetch_tweets": "failed"}, run
    text = task_log(airflow_server, "tweets_ingest", run["dag_run_id"], "fetch_tweets")
    assert "X API rejected the bearer token from Airflow connection 'x_api' (password)" in text
    assert local_stack.x_api["token"] not in text and "rotated-elsewhere-4242" not in text
    assert checkpoint(api).since_id is None and not raw_lines(Path(local_stack.lake_dir), DAYS[0])


def test_two_intervals_resume_from_since_id_through_429_and_firehose_faults_then_process_and_join(
        airflow_server, api, local_stack, control):
    stack, lake = local_stack, Path(local_stack.lake_dir)
    faults = FirehoseFaults.PATH.removeprefix("/_stand_in/")
    first, second = expected(DAYS[0]), expected(DAYS[1])
    assert len(first) > 100 and len(second) > 100  # more than a page each

    # Interval 1: a 429 after one page resets within the run's wait budget; Firehose rejects 3 records.
    control.post("rate-limits", {"search": {"limit": 1, "window_seconds": 2}})
    control.post(faults, {"fail": [[1, 3, 4]], "clear_log": True})
    run = tweets_demo.ingest(api, control, DAYS[0])
    assert run["state"] == "success", run
    assert "X API rate limit reached; waiting" in task_log(airflow_server, "tweets_ingest", run["dag_run_id"],
                                                           "fetch_tweets")
    batches = control.post(faults, {"fail": []})["batches"]
    assert [(b["records"], b["failed"]) for b in batches[:2]] == [(100, [1, 3, 4]), (3, [])]
    assert run["result"]["tweets"] == len(first)
    assert checkpoint(api) == SearchState(since_id=max(first, key=int))

    # Interval 2: resumes from since_id; the rate limit resets beyond the wait budget: the window stays open.
    control.post("rate-limits", {"search": {"limit": 1, "window_seconds": 900}})
    run = tweets_demo.ingest(api, control, DAYS[1])
    assert run["state"] == "success" and run["result"]["deferred_reason"], run
    deferred = checkpoint(api)
    assert deferred.since_id == max(first, key=int) and deferred.backlog_until_id is not None

    # The next run (same clock) drains the backlog and catches up, without repeating a tweet.
    control.post("rate-limits", {"search": {"limit": 450, "window_seconds": 900}})
    run = tweets_demo.ingest(api, control, DAYS[1])
    assert run["state"] == "success", run
    assert checkpoint(api) == SearchState(since_id=max(second, key=int))
    control.set_now(None)

    for day, ids in zip(DAYS, (first, second), strict=True):
        def mirrored(d: date = day, want: int = len(ids)) -> list[dict]:
            lines = raw_lines(lake, d)
            return lines if len(lines) >= want else []

        got = [line["data"]["id"] for line in stack.wait_for(mirrored, timeout=30, message=f"{day}'s tweets")]
        assert len(got) == len(set(got)) and set(got) == ids, day

    # tweets_process for both arrival hours in one step, then the weekly join on what landed.
    hours = [f"{tweets_demo.arrival_hour(d):%Y-%m-%dT%H}" for d in DAYS]
    run = tweets_demo.trigger_and_wait(api, "tweets_process", conf={"start_hour": hours[0], "end_hour": hours[1]})
    assert run["state"] == "success", run
    processed = []
    for day in (*DAYS, DAYS[-1] + timedelta(days=1)):  # the last run also fetched the next day's first minutes
        files = sorted((lake / "processed" / "tweets" / f"created_date={day}").glob("*.parquet"))
        processed += pq.read_table(files, columns=["tweet_id", "country_code"]).to_pylist()
    ids = [str(r["tweet_id"]) for r in processed]
    assert len(ids) == len(set(ids)) and set(ids) == first | second

    week = tweets_demo.mondays(*DAYS)
    assert week == ["2020-03-16"]
    if not (lake / "processed" / "jhu_daily_reports" / f"report_date={DAYS[0]}").is_dir():  # the join's other side
        jhu = tweets_demo.trigger_and_wait(api, "jhu_backfill", conf={"start_date": f"{DAYS[0]}",
                                                                      "end_date": f"{DAYS[-1]}"})
        assert jhu["state"] == "success", jhu
    run = tweets_demo.trigger_and_wait(api, "weekly_tweets_vs_cases", conf={"start_week": week[0], "end_week": week[0]})
    assert run["state"] == "success", run
    weekly = pq.read_table(lake / "processed" / "weekly_tweets_vs_cases" / f"week_start={week[0]}").to_pylist()
    counts = {r["country_code"]: r["tweet_count"] for r in weekly}
    assert {r["country_code"] for r in weekly if r["new_cases"]} >= {"IT", "US"}  # cases joined by ISO code
    per_country = Counter(r["country_code"] for r in processed if r["country_code"])
    assert per_country and {c: counts.get(c) for c in per_country} == dict(per_country)
