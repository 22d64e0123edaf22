"""`make demo`: the main job end to end on the embedded local stack, no AWS account needed.

1. starts the local stack (moto, EMR step runner, webhook sink, and the template's notifier on the job
   table's stream, as every entry point does) and the real Airflow 3.3.1 on it, as `make airflow` does
   (api-server, scheduler, dag-processor, triggerer; both are reused when already up);
2. through the REST API v2, as a user of the UI would: triggers `jhu_backfill` for March 2020 (one EMR
   step, run by local Spark), unpauses `jhu_daily_reports` and triggers its run for 2020-04-01, from the
   JHU mirror in ../shared when it is there, else from GitHub; then the `analytics` DAG;
3. builds the dashboard from the lake;
4. prints a summary, saves it to .local/demo-summary.json; from a terminal (or with --serve) it then
   serves the dashboard on 127.0.0.1:8050 until Ctrl-C; and stops everything it started.

Running it again gives the same numbers: the lake is rewritten partition by partition.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from local import airflow_local, airflow_server
from local.airflow_api import AirflowApi

STATE_DIR = airflow_local.REPO_ROOT / ".local"
BACKFILL = ("2020-03-01", "2020-03-31")
DAILY = "2020-04-01"
JOB = "jhu_daily_reports"
DESTINATIONS = 3  # the webhook sink's Chime, Slack and Teams paths
TRANSITIONS = 3  # SUBMITTED, RUNNING, then COMPLETED or FAILED
RUN_TIMEOUT = 900.0


def job_records(stack: Any) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.outputs["JobTableName"])
    items = [{k: deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]
    return sorted(items, key=lambda i: (i["job_name"], i["job_date"]))


def top_countries(lake: Path, day: str, limit: int = 10) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(lake / "processed" / "jhu_daily_reports" / f"report_date={day}",
                          columns=["country_region", "confirmed", "deaths"])
    grouped = table.group_by("country_region").aggregate([("confirmed", "sum"), ("deaths", "sum")])
    ordered = grouped.sort_by([("confirmed_sum", "descending"), ("country_region", "ascending")])
    rows = ordered.slice(0, limit).to_pylist()
    return [{"country": r["country_region"], "confirmed": r["confirmed_sum"], "deaths": r["deaths_sum"]}
            for r in rows]


def notifications(sink_log: Path, skip_lines: int) -> dict[str, Any]:
    """What the webhook sink received during this demo, by destination and status."""
    from local.webhook_sink import count_messages

    return count_messages(sink_log, skip_lines=skip_lines)


def wait_until_delivered(stack: Any, sink_log: Path, skip_lines: int, expected: int, timeout: float = 60) -> None:
    """The stream bridge delivers asynchronously: wait until the sink has every expected post."""
    try:
        stack.wait_for(lambda: notifications(sink_log, skip_lines)["total"] >= expected, timeout=timeout,
                       interval=0.2, message=f"{expected} webhook posts")
    except TimeoutError as error:
        print(f"warning: {error}", file=sys.stderr)


def summarize(stack: Any, runs: dict[str, Any], started: float, sink_offset: int) -> dict[str, Any]:
    records = [r for r in job_records(stack) if r["job_name"] == JOB]
    completed = [r for r in records if r["status"] == "COMPLETED"]
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - started, 1),
        "source": airflow_local.jhu_source_url() or "GitHub (CSSEGISandData/COVID-19)",
        "dag_runs": runs,
        "dates_processed": len(completed),
        "dates_failed": sorted(r["job_date"] for r in records if r["status"] == "FAILED"),
        "rows_written": sum(int(r.get("rows_written") or 0) for r in completed),
        "rows_quarantined": sum(int(r.get("rows_quarantined") or 0) for r in completed),
        "top_countries_on_last_date": {"date": DAILY, "countries": top_countries(Path(stack.lake_dir), DAILY)},
        "job_records": [
            {k: (str(v) if k == "duration_seconds" else v) for k, v in r.items()
             if k in ("job_date", "status", "rows_written", "rows_quarantined", "step_id", "run_id",
                      "duration_seconds", "error")}
            for r in records
        ],
        "notifications": notifications(stack.sink_log, sink_offset),
    }


def print_summary(summary: dict[str, Any]) -> None:
    print("\n=== covid19-lake demo ===")
    print(f"source: {summary['source']}")
    for name, state in summary["dag_runs"].items():
        print(f"DAG run {name}: {state}")
    print(f"dates processed: {summary['dates_processed']}  failed: {summary['dates_failed'] or 'none'}")
    print(f"rows written: {summary['rows_written']:,}  quarantined: {summary['rows_quarantined']:,}")
    top = summary["top_countries_on_last_date"]
    print(f"top 10 countries by confirmed cases on {top['date']}:")
    for rank, row in enumerate(top["countries"], 1):
        print(f"  {rank:2}. {row['country']:<24} {row['confirmed']:>10,} confirmed {row['deaths']:>8,} deaths")
    note = summary["notifications"]
    print(f"notifications captured by the webhook sink: {note['total']} "
          f"{note['by_destination']} {note['by_status']}")
    print(f"job records: {len(summary['job_records'])} (see .local/demo-summary.json)")


def build_dashboard(stack: Any) -> Path:
    from local.analytics import dashboard, demo

    site = Path(stack.lake_dir).parent / "site"
    demo.prepare(Path(stack.lake_dir), site, dashboard.DEFAULT_BUNDLE)
    return site


def expected_posts(runs: int) -> int:
    """Webhook posts the demo's JHU runs make: one message per transition of each run (a multi-date run
    posts for the run, not per date), to every destination (docs/notifier.md)."""
    return runs * TRANSITIONS * DESTINATIONS


def run_and_wait(api: AirflowApi, dag_id: str, **trigger: Any) -> dict[str, Any]:
    """Trigger a run through the REST API and wait until it ends; its final state and failed tasks."""
    run = api.trigger(dag_id, **trigger)
    done = api.wait_for_run(dag_id, run["dag_run_id"], timeout=RUN_TIMEOUT)
    failed = sorted(k for k, state in api.task_states(dag_id, run["dag_run_id"]).items()
                    if state in ("failed", "upstream_failed"))
    return {"run_id": run["dag_run_id"], "state": done["state"], "failed_tasks": failed}


def wait_for_idle(api: AirflowApi, dag_id: str) -> None:
    """Let runs the scheduler started by itself (asset events) finish before Airflow is stopped."""
    api.wait_for(lambda: all(r["state"] in ("success", "failed") for r in api.runs(dag_id)),
                 timeout=RUN_TIMEOUT, message=f"every {dag_id} run to finish")


def _state_of(result: Any) -> str:
    """A tweets_demo run result as one state: ingest runs come as counts of their states."""
    if isinstance(result, dict) and "states" in result:
        return "success" if set(result["states"]) == {"success"} else "failed"
    return str(result)


def run_dags(api: AirflowApi, stack: Any) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    print(f"running jhu_backfill {BACKFILL[0]}..{BACKFILL[1]} (one EMR step)", flush=True)
    runs[f"jhu_backfill {BACKFILL[0]}..{BACKFILL[1]}"] = run_and_wait(
        api, "jhu_backfill", conf={"start_date": BACKFILL[0], "end_date": BACKFILL[1], "force": True})
    # Scheduled DAGs start paused (as on MWAA); catchup is off, so unpausing starts no run of past dates.
    paused = {dag_id: info["is_paused"] for dag_id, info in api.dags().items()}
    api.set_paused(JOB, False)
    try:
        print(f"running jhu_daily_reports for {DAILY}", flush=True)
        # No logical date (a run of the day's report, run_after naming the day), so the demo can run again;
        # forced, as the backfill, so a rerun processes and notifies again with the same numbers.
        runs[f"jhu_daily_reports {DAILY}"] = run_and_wait(
            api, JOB, conf={"force": True},
            run_after=datetime.combine(date.fromisoformat(DAILY), datetime.min.time(), UTC),
            run_id=f"demo__{DAILY}__{datetime.now(UTC):%Y%m%dT%H%M%S}")
        from local import tweets_demo

        print("running the tweets chain (X API stand-in -> tweets_ingest -> Firehose -> tweets_process -> "
              "weekly_tweets_vs_cases)", flush=True)
        tweets = tweets_demo.run(api, stack, analytics=False)
        runs.update({name: {"run_id": None, "state": _state_of(result), "failed_tasks": []}
                     for name, result in tweets.pop("runs").items() if name != "stream"})
        runs["tweets_summary"] = tweets
        print("running analytics (views on the local lake)", flush=True)
        api.set_paused("analytics", False)
        runs["analytics"] = run_and_wait(api, "analytics")
        wait_for_idle(api, "analytics")
    finally:
        for dag_id in (JOB, "analytics"):
            api.set_paused(dag_id, paused.get(dag_id, True))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    serve = parser.add_mutually_exclusive_group()
    serve.add_argument("--serve", action="store_true", default=None,
                       help="serve the dashboard until Ctrl-C before stopping (default when run from a terminal)")
    serve.add_argument("--no-serve", dest="serve", action="store_false")
    parser.add_argument("--port", type=int, default=8050, help="the dashboard's port")
    parser.add_argument("--airflow-port", type=int, default=int(os.environ.get("AIRFLOW_PORT",
                                                                                airflow_server.DEFAULT_PORT)),
                        help="the Airflow api-server's port (reused when `make airflow` is up on it)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    state_dir = args.state_dir.resolve()
    was_up = airflow_server.is_up(state_dir)
    stack_was_up = airflow_server.stack_is_up(state_dir)
    print("starting the local stack and Airflow (api-server, scheduler, dag-processor, triggerer)", flush=True)
    server = airflow_server.up(state_dir, args.airflow_port)
    from local.stack import RunningStack

    try:
        stack = RunningStack(state_dir)
        sys.path.insert(0, str(airflow_local.REPO_ROOT / "plugins"))  # the dashboard reads the plugin's SQL
        print(f"Airflow is up: {server.base_url}/ (the demo's runs stay there to look at)", flush=True)
        sink_offset = len(stack.sink_log.read_text(encoding="utf-8").splitlines()) if stack.sink_log.exists() else 0
        api = server.api()
        try:
            runs = run_dags(api, stack)
        finally:
            api.close()
        tweets = runs.pop("tweets_summary", None)
        wait_until_delivered(stack, stack.sink_log, sink_offset, expected=expected_posts(2))
        print("building the dashboard", flush=True)
        site = build_dashboard(stack)
        summary = summarize(stack, {name: run["state"] for name, run in runs.items()}, started, sink_offset)
        summary["dag_run_ids"] = {name: run["run_id"] for name, run in runs.items()}
        summary["failed_tasks"] = {name: run["failed_tasks"] for name, run in runs.items() if run["failed_tasks"]}
        summary["airflow_ui"] = server.base_url
        summary["tweets"] = tweets
        summary["dashboard_site"] = str(site)
        out = state_dir / "demo-summary.json"
        out.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        print_summary(summary)
        if tweets:
            from local import tweets_demo

            tweets_demo.print_summary(tweets)
        print(f"dashboard built in {site}; to browse it later: "
              f"{sys.executable} -m local.analytics.serve --dir {site}")
        if args.serve if args.serve is not None else sys.stdin.isatty():
            from local.analytics.serve import serve_until_interrupted

            serve_until_interrupted(site, args.port, "?country=US")
    finally:
        if not was_up:
            server.stop()
        if not stack_was_up:
            from local.stack import stop_daemon

            stop_daemon(state_dir)
    ok = all(run["state"] == "success" for run in runs.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
