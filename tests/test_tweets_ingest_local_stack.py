"""The tweets half end to end on the session's local stack, driven by Airflow's dag.test():

X API stand-in (local/x_api.py, 127.0.0.1) --tweepy--> tweets_ingest --> Firehose (moto, in the stack)
--> the stack's FirehoseMirror --> {lake}/raw/tweets/YYYY/MM/DD/HH/ --> tweets_process (EMR step runner,
spark-submit) --> processed/tweets + Glue partitions --> weekly_tweets_vs_cases.

The corpus is synthetic and dated around the real clock: Firehose (moto) names objects by their real
arrival hour, and the tweets job quarantines tweets that arrive days after their creation as late.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from covid19_lake.tweets import ingest
from covid19_lake.tweets.checkpoint import SearchState
from local import airflow_local
from local.tweets_synth import generate, window
from local.x_api import SEARCH, RateLimit, XApiStandIn
from tests.test_jhu_dags_local_stack import job_record
from tests.test_tweets_dags_local_stack import partitions
from tests.test_tweets_firehose import inject_failures
from tests.test_tweets_x_api import matches_default_query

pytestmark = pytest.mark.stack
TOKEN = "AAAA-local-stack-x-token-never-logged"


def raw_files(lake: Path) -> set[Path]:
    return {p for p in (lake / "raw" / "tweets").glob("*/*/*/*/*") if p.is_file() and not p.name.startswith(".")}


def landed(files: set[Path]) -> list[dict]:
    return [json.loads(line) for path in sorted(files) for line in path.read_text(encoding="utf-8").splitlines()]


def checkpoint(name: str) -> SearchState:
    from airflow.models import Variable

    return SearchState.from_json(Variable.get(name, default_var=None))


@pytest.fixture
def tweets_env(airflow_on_local_stack, monkeypatch, request):
    """The stand-in with a corpus around now, and the Variable and connection tweets_ingest reads."""
    from airflow.models import Variable

    stack = airflow_on_local_stack
    # The virtual clock stays behind the real one (t0 + 15 min at most): a tweet must not be created after
    # the real hour it arrives in, or the tweets job quarantines it.
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    corpus = generate(seed=19, start=t0 - timedelta(minutes=90), end=t0 + timedelta(minutes=60),
                      tweets_per_day=18_000)
    api = XApiStandIn(corpus, bearer_token=TOKEN, now=t0).start()
    name = f"tweets_checkpoint_{request.node.name}"[:250]
    variable = airflow_local.lake_variable(stack, tweets={"x_api_base_url": api.base_url, "max_pages": 50,
                                                          "max_rate_limit_wait_seconds": 30,
                                                          "checkpoint_variable": name})
    assert variable["tweets"]["delivery_stream"] == stack.outputs["TweetsDeliveryStreamName"]
    monkeypatch.setenv("AIRFLOW_VAR_COVID19_LAKE", json.dumps(variable))
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps({"conn_type": "generic", "password": TOKEN}))
    # The first window starts at a known time (the checkpoint's start_time), not "an hour before the task ran".
    Variable.set(name, SearchState(start_time=(t0 - timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M:%SZ")).to_json())
    try:
        yield stack, api, corpus, t0, name
    finally:
        api.stop()
        Variable.delete(name)


def expected(corpus, start: datetime, end: datetime) -> set[str]:
    return {t["id"] for t in window(corpus, start, end) if matches_default_query(t)}


def test_two_intervals_land_once_through_firehose_then_process_and_join(tweets_env, monkeypatch):
    stack, api, corpus, t0, name = tweets_env
    # tweets_process and the weekly join as scheduled on AWS: each run processes its data interval.
    for schedule in ("COVID19_LAKE_TWEETS_PROCESS_SCHEDULE", "COVID19_LAKE_WEEKLY_SCHEDULE"):
        monkeypatch.delenv(schedule, raising=False)
    lake = Path(stack.lake_dir)
    before = raw_files(lake)
    # Every run's first put_record_batch has three records rejected (Firehose's partial failure).
    real_build_sink = ingest.build_sink
    calls: list[list[int]] = []

    def build_sink_with_partial_failure(config):
        sink = real_build_sink(config)
        calls.append(inject_failures(sink.client, [{1, 3, 4}]))
        return sink

    monkeypatch.setattr(ingest, "build_sink", build_sink_with_partial_failure)

    # Interval 1: the first hour, with a 429 after 4 requests that resets within the run's wait budget.
    api.rate_limits[SEARCH] = RateLimit(4, window_seconds=2)
    run = airflow_local.run_dag("tweets_ingest")
    assert str(run.state) == "success", airflow_local.task_states(run)
    first = expected(corpus, t0 - timedelta(minutes=60), t0 - timedelta(seconds=30))
    statuses = [r["status"] for r in api.requests]
    assert 429 in statuses and statuses[-1] == 200 and statuses.count(200) == -(-len(first) // 100) > 4
    assert calls[0][:2] == [100, 3]  # the whole page, then only the three rejected records
    assert checkpoint(name) == SearchState(since_id=max(first, key=int))

    # Interval 2, 15 minutes later: resumes from since_id; its rate limit resets beyond the wait budget.
    api.set_now(t0 + timedelta(minutes=15))
    api.reset_rate_limits()
    api.rate_limits[SEARCH] = RateLimit(1, window_seconds=900)
    seen = len(api.requests)
    run = airflow_local.run_dag("tweets_ingest")
    assert str(run.state) == "success", airflow_local.task_states(run)
    assert [r["status"] for r in api.requests[seen:]] == [200, 429]
    assert api.requests[seen]["params"]["since_id"] == max(first, key=int)
    deferred = checkpoint(name)
    assert deferred.since_id == max(first, key=int) and deferred.backlog_until_id is not None

    # The next run drains that backlog and catches up.
    api.reset_rate_limits()
    api.rate_limits[SEARCH] = RateLimit(450)
    run = airflow_local.run_dag("tweets_ingest")
    assert str(run.state) == "success", airflow_local.task_states(run)
    second = expected(corpus, t0 - timedelta(seconds=30), t0 + timedelta(minutes=15) - timedelta(seconds=30))
    assert second and checkpoint(name) == SearchState(since_id=max(second, key=int))

    # Firehose -> moto's bucket -> the mirror -> the lake directory: every tweet exactly once.
    want = first | second
    new = stack.wait_for(lambda: (files := raw_files(lake) - before)
                         and sum(1 for _ in landed(files)) >= len(want) and files,
                         timeout=30, message=f"{len(want)} tweets in the lake")
    lines = landed(new)
    ids = [line["data"]["id"] for line in lines]
    assert len(ids) == len(set(ids)) and set(ids) == want
    stream_name = stack.outputs["TweetsDeliveryStreamName"]
    assert all(p.name.startswith(f"{stream_name}-") and p.relative_to(lake).parts[:2] == ("raw", "tweets")
               for p in new)
    assert all(set(line) == {"data", "includes", "matching_rules"} for line in lines)
    assert all(line["includes"]["users"][0]["username"].startswith("synth_") for line in lines)

    # tweets_process for the last arrival hour rebuilds the created dates from all of their raw hours.
    hours = sorted({datetime.strptime("/".join(p.relative_to(lake).parts[2:6]), "%Y/%m/%d/%H").replace(tzinfo=UTC)
                    for p in new})
    run = airflow_local.run_dag("tweets_process", logical_date=hours[-1] + timedelta(hours=1))
    assert str(run.state) == "success", airflow_local.task_states(run)
    record = job_record(stack, f"{hours[-1]:%Y-%m-%dT%H}", job="tweets")
    assert record["status"] == "COMPLETED", record
    created_dates = sorted({line["data"]["created_at"][:10] for line in lines})
    processed = set()
    for day in created_dates:
        for path in (lake / "processed" / "tweets" / f"created_date={day}").glob("*.parquet"):
            processed |= set(pq.read_table(path, columns=["tweet_id"]).column("tweet_id").to_pylist())
    assert {str(i) for i in processed} >= want
    assert set(created_dates) <= partitions(stack, "tweets") and set(created_dates) <= partitions(
        stack, "tweet_daily_stats")

    # The weekly join on what landed (it reads the JHU table too: land one JHU day when the lake has none).
    if not (lake / "processed" / "jhu_daily_reports").is_dir():
        jhu = airflow_local.run_dag("jhu_daily_reports", logical_date=datetime(2020, 3, 1, tzinfo=UTC))
        assert str(jhu.state) == "success", airflow_local.task_states(jhu)
    day = datetime.strptime(created_dates[-1], "%Y-%m-%d").replace(tzinfo=UTC)
    monday = day - timedelta(days=day.weekday())
    run = airflow_local.run_dag("weekly_tweets_vs_cases", logical_date=monday + timedelta(days=7))
    assert str(run.state) == "success", airflow_local.task_states(run)
    weekly = pq.read_table(lake / "processed" / "weekly_tweets_vs_cases" / f"week_start={monday:%Y-%m-%d}")
    counts = dict(zip(weekly.column("country_code").to_pylist(), weekly.column("tweet_count").to_pylist(),
                      strict=True))
    places = {p["id"]: p["country_code"] for p in corpus.places.values()}
    per_country: dict[str, int] = {}
    for line in lines:
        code = places.get((line["data"].get("geo") or {}).get("place_id"))
        if code and line["data"]["created_at"][:10] >= f"{monday:%Y-%m-%d}":
            per_country[code] = per_country.get(code, 0) + 1
    assert per_country and {c: counts.get(c) for c in per_country} == per_country


def test_a_wrong_token_fails_the_run_naming_the_connection_and_never_logging_the_token(
        tweets_env, monkeypatch, caplog, capfd):
    stack, api, _corpus, _t0, name = tweets_env
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps({"conn_type": "generic", "password": "wrong-secret-42"}))
    before = raw_files(Path(stack.lake_dir))
    run = airflow_local.run_dag("tweets_ingest")
    states = airflow_local.task_states(run)
    assert str(run.state) == "failed" and states == {"fetch_tweets": "failed"}, states
    assert [r["status"] for r in api.requests] == [401]  # failed at once: no retries of a refused token
    output = caplog.text + "".join(capfd.readouterr())
    assert "X API rejected the bearer token from Airflow connection 'x_api' (password)" in output
    assert "wrong-secret-42" not in output and TOKEN not in output
    assert raw_files(Path(stack.lake_dir)) == before
    assert checkpoint(name).since_id is None
