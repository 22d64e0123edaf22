"""The tweets half of the main job on the local stack, driven through a real Airflow's REST API v2.

    from local import tweets_demo
    summary = tweets_demo.run(api, stack)      # api: local.airflow_api.AirflowApi, stack: RunningStack
    tweets_demo.print_summary(summary)

X API stand-in (the stack's, SYNTHETIC corpus, seed 19) --tweepy--> tweets_ingest, once per demo day
with the stand-in's virtual clock at 00:10 of the next day (the checkpoint starts at 2020-03-01) -->
Firehose (moto; the stack's local-only Firehose clock follows the virtual clock, so objects land under
raw/tweets/YYYY/MM/DD/HH/ of the demo's dates) --> the filtered-stream producer
(``python -m covid19_lake.tweets.stream``) for a bounded time on the last day --> tweets_process for
every arrival hour in one EMR step --> weekly_tweets_vs_cases for the demo's weeks (it joins the JHU
table: run the JHU DAGs first) --> analytics. ``summarize`` then reads the lake.

Rerunning gives the same numbers: ``run`` first removes the raw, quarantined and processed tweets of
the demo's dates (local lake and moto's bucket) and resets the checkpoint, the corpus is seeded, and the
Spark jobs rewrite whole partitions.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from local.stack import TWEETS_CHECKPOINT_VARIABLE
from local.tweets_synth import DEMO_END, DEMO_START

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_START = "2020-03-01T00:00:00Z"
# Each day's tweets are fetched at 00:10 of the next day: they arrive within their day's window
# (spark_jobs/tweets.py --late-hours), so none is quarantined as late.
FETCH_AFTER_MIDNIGHT = timedelta(minutes=10)
STREAM_RULES = [{"value": "covid OR covid19 OR coronavirus -is:retweet", "tag": "covid19-lake demo"}]
RUN_TIMEOUT = 900.0


class XApiControl:
    """The stand-in's loopback control endpoints (no token)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/_stand_in/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_stand_in/state", timeout=30)
        response.raise_for_status()
        return response.json()

    def set_now(self, moment: datetime | None) -> None:
        self.post("clock", {"now": moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None})


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def arrival_hour(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def mondays(first: date, last: date) -> list[str]:
    start = first - timedelta(days=first.weekday())
    return [(start + timedelta(weeks=i)).isoformat() for i in range((last - start).days // 7 + 1)]


# -- Airflow ------------------------------------------------------------------------------------------------
def set_variable(api: Any, key: str, value: str, description: str = "") -> None:
    """Create or replace a Variable in the metadata DB (where tasks write the checkpoint)."""
    try:
        api.request("DELETE", f"/api/v2/variables/{key}")
    except Exception as error:  # absent is fine
        if "404" not in str(error):
            raise
    api.request("POST", "/api/v2/variables", json={"key": key, "value": value, "description": description})


def get_variable(api: Any, key: str) -> str | None:
    try:
        return api.request("GET", f"/api/v2/variables/{key}")["value"]
    except Exception as error:
        if "404" in str(error):
            return None
        raise


def seed_checkpoint(api: Any, start_time: str = CHECKPOINT_START, key: str = TWEETS_CHECKPOINT_VARIABLE) -> None:
    """tweets_ingest's since_id checkpoint, reset: its first window starts at ``start_time``."""
    from covid19_lake.tweets.checkpoint import SearchState

    set_variable(api, key, SearchState(start_time=start_time).to_json(), "since_id checkpoint of tweets_ingest")


def xcom(api: Any, dag_id: str, run_id: str, task_id: str) -> Any:
    entry = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                               "/xcomEntries/return_value", params={"deserialize": "true", "stringify": "false"})
    value = entry.get("value")
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return ast.literal_eval(value)
    return value


def trigger_and_wait(api: Any, dag_id: str, conf: dict[str, Any] | None = None,
                     timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """One run of ``dag_id`` (a paused DAG is unpaused for it and paused again after, so its scheduled runs
    stay out of the demo)."""
    paused = bool(api.dags().get(dag_id, {}).get("is_paused"))
    if paused:
        api.set_paused(dag_id, False)
    try:
        run = api.trigger(dag_id, conf=conf)
        done = api.wait_for_run(dag_id, run["dag_run_id"], timeout=timeout)
    finally:
        if paused:
            api.set_paused(dag_id, True)
    return {"dag_run_id": run["dag_run_id"], "state": done["state"],
            "tasks": api.task_states(dag_id, run["dag_run_id"])}


def ingest(api: Any, control: XApiControl, day: date) -> dict[str, Any]:
    """tweets_ingest with the virtual clock just after ``day``: everything up to then, from since_id."""
    control.set_now(arrival_hour(day) + FETCH_AFTER_MIDNIGHT)
    run = trigger_and_wait(api, "tweets_ingest")
    run["result"] = xcom(api, "tweets_ingest", run["dag_run_id"], "fetch_tweets") if run["state"] == "success" \
        else None
    return run


# -- the stream producer ------------------------------------------------------------------------------------
def stream(stack: Any, control: XApiControl, day: date, seconds: float = 20.0) -> dict[str, Any]:
    """The filtered-stream producer (the container's command) for at most ``seconds``, or until the stand-in
    has sent every tweet of ``day`` (it streams from that day's start, up to its virtual clock); stopped with
    SIGTERM as ECS stops it, so it flushes what it buffered."""
    control.post("stream", {"from": f"{day:%Y-%m-%d}T00:00:00Z"})
    before = control.state()["stream"]
    env = {**os.environ, **stack.aws_env(), "X_BEARER_TOKEN": stack.x_api["token"],
           "X_API_BASE_URL": stack.x_api["base_url"], "FIREHOSE_STREAM": stack.outputs["TweetsDeliveryStreamName"],
           "TWEETS_STREAM_RULES": json.dumps(STREAM_RULES), "FLUSH_SECONDS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)])}
    log_path = Path(stack.lake_dir).parent / "tweets-stream.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "covid19_lake.tweets.stream"], cwd=REPO_ROOT, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        seen: list[int] = []

        def idle() -> bool:
            """Exited, or connected and nothing new sent over the last three polls."""
            if process.poll() is not None:
                return True
            sent = control.state()["stream"]
            if sent["connections"] > before["connections"]:
                seen.append(sent["tweets"])
            return len(seen) >= 4 and seen[-1] > before["tweets"] and len(set(seen[-4:])) == 1
        with suppress(TimeoutError):  # bounded: whatever was streamed by then is what the demo has
            stack.wait_for(idle, timeout=seconds, interval=0.5, message="the stream to go idle")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    after = control.state()["stream"]
    return {"exit_code": process.returncode, "log": str(log_path),
            **{k: after[k] - before.get(k, 0) for k in ("tweets", "malformed_lines", "keep_alives", "connections")}}


# -- the lake -----------------------------------------------------------------------------------------------
def reset_lake(stack: Any, first: date, last: date) -> None:
    """Remove the tweets of the demo's dates (raw and quarantine by arrival hour, processed by date)."""
    lake = Path(stack.lake_dir)
    s3 = stack.client("s3")
    bucket = stack.outputs["LakeBucketName"]
    covered = days(first, last + timedelta(days=1))
    for day in covered:
        raw = f"raw/tweets/{day:%Y/%m/%d}/"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=raw):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
        for path in (lake / raw, lake / "quarantine" / "tweets" / f"raw_date={day}",
                     lake / "processed" / "tweets" / f"created_date={day}",
                     lake / "processed" / "tweet_daily_stats" / f"date={day}"):
            shutil.rmtree(path, ignore_errors=True)


def _lines(paths: list[Path]) -> int:
    return sum(sum(1 for line in p.read_bytes().splitlines() if line.strip()) for p in paths)


def summarize(stack: Any, first: date = DEMO_START, last: date = DEMO_END, top: int = 3) -> dict[str, Any]:
    """What the lake holds for the demo's dates: landed, deduplicated, quarantined, top hashtags per
    country, the weekly tweets-vs-cases rows. Reads files only (pyarrow), so it works with any engine."""
    import pyarrow.parquet as pq

    lake = Path(stack.lake_dir)
    covered = days(first, last + timedelta(days=1))
    raw = [p for d in covered for p in (lake / "raw" / "tweets" / f"{d:%Y/%m/%d}").glob("*/*")
           if p.is_file() and not p.name.startswith(".")]
    quarantine = [p for d in covered for p in (lake / "quarantine" / "tweets" / f"raw_date={d}").glob("*/*")
                  if p.is_file() and p.suffix == ".json"]
    reasons: Counter[str] = Counter()
    for path in quarantine:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                reasons[str(json.loads(line).get("reason", "")).split(":")[0]] += 1
    tags: dict[str, Counter[str]] = {}
    per_day: dict[str, int] = {}
    distinct = 0
    for day in covered:  # the last fetch (00:10 of the next day) also brings the next day's first minutes
        folder = lake / "processed" / "tweets" / f"created_date={day}"
        files = sorted(folder.glob("*.parquet"))
        if not files:
            continue
        table = pq.read_table(files, columns=["country_code", "hashtags"])
        per_day[day.isoformat()] = table.num_rows
        distinct += table.num_rows
        for code, hashtags in zip(table.column("country_code").to_pylist(), table.column("hashtags").to_pylist(),
                                  strict=True):
            if code:
                tags.setdefault(code, Counter()).update(h.lower() for h in hashtags or [])
    weekly = []
    for week in mondays(first, last):
        folder = lake / "processed" / "weekly_tweets_vs_cases" / f"week_start={week}"
        files = sorted(folder.glob("*.parquet"))
        if files:
            rows = pq.read_table(files, columns=["country_code", "tweet_count", "new_cases", "new_deaths"]).to_pylist()
            weekly += [{"week_start": week, **r} for r in rows if r["tweet_count"]]  # countries with tweets
    weekly.sort(key=lambda r: (r["week_start"], -(r["tweet_count"] or 0), r["country_code"] or ""))
    landed, quarantined = _lines(raw), sum(reasons.values())
    return {
        "synthetic": True,
        "dates": [first.isoformat(), last.isoformat()],
        "tweets_landed": landed,
        "raw_files": len(raw),
        "tweets_distinct": distinct,
        "duplicates_removed": landed - quarantined - distinct,
        "tweets_quarantined": quarantined,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "tweets_per_day": per_day,
        "top_hashtags_per_country": {code: [tag for tag, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
                                            [:top]] for code, c in sorted(tags.items())},
        "weekly_tweets_vs_cases": weekly,
    }


def run(api: Any, stack: Any, first: date = DEMO_START, last: date = DEMO_END, stream_seconds: float = 20.0,
        weekly: bool = True, analytics: bool = True) -> dict[str, Any]:
    """The whole tweets chain for ``first``..``last`` on a running Airflow; returns the summary with the
    runs' states. The JHU DAGs should have landed those dates first (the weekly join reads them)."""
    control = XApiControl(stack.x_api["base_url"])
    reset_lake(stack, first, last)
    control.post("reset-rate-limits", {})
    seed_checkpoint(api, f"{first:%Y-%m-%d}T00:00:00Z")
    runs: dict[str, Any] = {}
    ingested = []
    try:
        for day in days(first, last):
            result = ingest(api, control, day)
            ingested.append(result)
            if result["state"] != "success":
                break
        runs["tweets_ingest"] = {"runs": len(ingested), "states": dict(Counter(r["state"] for r in ingested)),
                                 "tweets": sum((r["result"] or {}).get("tweets", 0) for r in ingested)}
        runs["stream"] = stream(stack, control, last, stream_seconds)
    finally:
        control.set_now(None)
    hours = [f"{arrival_hour(first):%Y-%m-%dT%H}", f"{arrival_hour(last):%Y-%m-%dT%H}"]
    # force: a rerun rebuilds what reset_lake removed (the job table already says COMPLETED for these).
    process = trigger_and_wait(api, "tweets_process",
                               conf={"start_hour": hours[0], "end_hour": hours[1], "force": True})
    runs["tweets_process"] = process["state"]
    if weekly:
        weeks = mondays(first, last)
        result = trigger_and_wait(api, "weekly_tweets_vs_cases",
                                  conf={"start_week": weeks[0], "end_week": weeks[-1], "force": True})
        runs["weekly_tweets_vs_cases"] = result["state"]
    if analytics:
        runs["analytics"] = trigger_and_wait(api, "analytics")["state"]
    return {"runs": runs, **summarize(stack, first, last)}


def print_summary(summary: dict[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    first, last = summary["dates"]
    print(f"tweets (SYNTHETIC, seed 19) {first}..{last}: {summary['tweets_landed']:,} landed in "
          f"{summary['raw_files']} Firehose objects, {summary['tweets_distinct']:,} distinct, "
          f"{summary['duplicates_removed']:,} duplicates removed, {summary['tweets_quarantined']:,} quarantined "
          f"{summary['quarantine_reasons']}", file=out)
    for name, state in summary.get("runs", {}).items():
        print(f"  {name}: {state}", file=out)
    print("top hashtags per country:", file=out)
    for code, tags in summary["top_hashtags_per_country"].items():
        print(f"  {code}: {', '.join('#' + t for t in tags)}", file=out)
    print("weekly tweets vs cases (week, country, tweets, new cases, new deaths):", file=out)
    for row in summary["weekly_tweets_vs_cases"]:
        print(f"  {row['week_start']} {row['country_code']} {row['tweet_count']:>6} {row['new_cases'] or 0:>9,} "
              f"{row['new_deaths'] or 0:>7,}", file=out)


def main(argv: list[str] | None = None) -> int:
    """``python -m local.tweets_demo``: the real Airflow on a local stack (as ``make airflow``), the JHU
    backfill of the dates (the weekly join reads it), then ``run``; prints and saves the summary."""
    import argparse

    from local import airflow_server
    from local.stack import RunningStack

    parser = argparse.ArgumentParser(prog="python -m local.tweets_demo", description=main.__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".local")
    parser.add_argument("--port", type=int, default=airflow_server.DEFAULT_PORT)
    parser.add_argument("--first", type=date.fromisoformat, default=DEMO_START)
    parser.add_argument("--last", type=date.fromisoformat, default=DEMO_END)
    parser.add_argument("--no-jhu", action="store_true", help="the lake already holds the JHU dates")
    parser.add_argument("--down", action="store_true", help="stop Airflow and the stack afterwards")
    args = parser.parse_args(argv)
    if str(REPO_ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "plugins"))  # covid19_lake, as Airflow's plugins folder has it
    server = airflow_server.up(args.state_dir, args.port)
    api = server.api()
    try:
        stack = RunningStack(args.state_dir)
        jhu = None
        if not args.no_jhu:
            jhu = trigger_and_wait(api, "jhu_backfill", conf={"start_date": args.first.isoformat(),
                                                              "end_date": args.last.isoformat()})["state"]
        summary = run(api, stack, args.first, args.last)
        if jhu:
            summary["runs"] = {"jhu_backfill": jhu, **summary["runs"]}
        out = args.state_dir / "tweets-demo-summary.json"
        out.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        print_summary(summary)
        print(f"summary saved to {out}")
    finally:
        api.close()
        if args.down:
            airflow_server.down(args.state_dir)
    ok = all(state in ("success", None) for name, state in summary["runs"].items() if isinstance(state, str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
