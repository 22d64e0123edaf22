"""Benchmark: the JHU DAGs under the real Airflow 3.3.1 scheduler on a fresh local stack, driven through the
REST API v2 as users and MWAA's API drive them (api-server, scheduler, dag-processor, triggerer,
LocalExecutor; step sensors deferred to the triggerer).

Prints, each measured from the API call that triggers the run, with each task's wait and duration:
  - one daily run (jhu_daily_reports, one report date): to the run's end and to its COMPLETED chat message
    arriving at the webhook sink (goal < 30 s locally);
  - `POST /api/v2/backfills` of the daily DAG for 2020-04-01..2020-04-03 (3 runs, one step each): to the
    last run's end, and how many runs the DAG has besides those three (at most one: the daily run above);
  - the 31-date backfill (jhu_backfill 2020-03-01..2020-03-31) and the whole 495-date backfill
    (2020-01-22..2021-05-30, goal < 90 s): to the run's end and to the last COMPLETED record.

    .venv/bin/python bench/real_scheduler.py [--skip-whole] [--spark-master local[2]]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from local.airflow_server import AirflowServer, server_env  # noqa: E402
from local.stack import running_daemon  # noqa: E402

DAILY = "2020-04-10"
DAILY_BACKFILL = ("2020-04-01", "2020-04-03")
MONTH = ("2020-03-01", "2020-03-31")
WHOLE = ("2020-01-22", "2021-05-30")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sink_lines(stack) -> list[dict]:
    path = stack.sink_log
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def completed_post_for(stack, day: str, skip: int) -> bool:
    for post in sink_lines(stack)[skip:]:
        text = json.dumps(post.get("body"), ensure_ascii=False)
        if day in text and "COMPLETED" in text:
            return True
    return False


def _seconds(later: str | None, earlier: str | None) -> float | None:
    if not later or not earlier:
        return None
    return round((datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds(), 1)


def timeline(api, dag_id: str, run_id: str) -> list[dict]:
    """Per task: when it started after the run did, how long it waited once scheduled, how long it took."""
    run = api.run(dag_id, run_id)
    tasks = sorted(api.task_instances(dag_id, run_id).items(), key=lambda kv: kv[1]["start_date"] or "")
    # A deferred task's scheduled_when is its resumption, after its start: no wait to report then.
    return [{"task": key, "start_s": _seconds(ti["start_date"], run["start_date"]),
             "waited_s": max(0.0, _seconds(ti["start_date"], ti["scheduled_when"]) or 0.0),
             "took_s": _seconds(ti["end_date"], ti["start_date"])}
            for key, ti in tasks]


def timed_run(api, stack, dag_id: str, days: list[str], **trigger) -> dict:
    skip = len(sink_lines(stack))
    began = time.monotonic()
    run = api.trigger(dag_id, **trigger)
    done = api.wait_for_run(dag_id, run["dag_run_id"], timeout=1800, interval=0.2)
    run_seconds = time.monotonic() - began
    stack.wait_for(lambda: completed_post_for(stack, days[-1], skip), timeout=120, interval=0.1,
                   message=f"the COMPLETED message about {days[-1]}")
    notified_seconds = time.monotonic() - began
    states = api.task_states(dag_id, run["dag_run_id"])
    return {"dag_id": dag_id, "dates": len(days), "state": done["state"], "trigger_to_end_s": round(run_seconds, 1),
            "trigger_to_completed_message_s": round(notified_seconds, 1),
            "not_ok_tasks": {k: v for k, v in states.items() if v not in ("success", "skipped")},
            "timeline": timeline(api, dag_id, run["dag_run_id"])}


def timed_daily_backfill(api, stack) -> dict:
    """POST /api/v2/backfills over the (unpaused) daily DAG; every run's end and its COMPLETED message."""
    first, last = (datetime.fromisoformat(day).replace(tzinfo=UTC) for day in DAILY_BACKFILL)
    days = day_range(*DAILY_BACKFILL)
    skip = len(sink_lines(stack))
    began = time.monotonic()
    backfill = api.create_backfill("jhu_daily_reports", first, last, max_active_runs=len(days))

    def ours() -> list[dict]:
        return [r for r in api.runs("jhu_daily_reports") if r["run_type"] == "backfill"
                and first <= datetime.fromisoformat(r["logical_date"]) <= last]

    runs = api.wait_for(lambda: (found := ours()) and len(found) == len(days) and
                        all(r["state"] in ("success", "failed") for r in found) and found,
                        timeout=1800, interval=0.2, message=f"backfill {backfill['id']} to finish")
    run_seconds = time.monotonic() - began
    for day in days:
        stack.wait_for(lambda day=day: completed_post_for(stack, day, skip), timeout=120, interval=0.1,
                       message=f"the COMPLETED message about {day}")
    notified_seconds = time.monotonic() - began
    others = [r["dag_run_id"] for r in api.runs("jhu_daily_reports") if r["dag_run_id"] not in
              {o["dag_run_id"] for o in runs}]
    state = "success" if all(r["state"] == "success" for r in runs) and len(others) <= 1 else "failed"
    return {"dag_id": "jhu_daily_reports (POST /api/v2/backfills)", "dates": len(days), "state": state,
            "trigger_to_end_s": round(run_seconds, 1), "trigger_to_completed_message_s": round(notified_seconds, 1),
            "not_ok_tasks": {r["dag_run_id"]: r["state"] for r in runs if r["state"] != "success"},
            "other_runs_of_the_dag": others,
            "timeline": timeline(api, "jhu_daily_reports", sorted(r["dag_run_id"] for r in runs)[0])}


def day_range(first: str, last: str) -> list[str]:
    from datetime import date, timedelta

    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-whole", action="store_true", help="skip the 495-date backfill")
    parser.add_argument("--spark-master", default="local[2]")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="covid19-lake-bench-scheduler-"))
    results = []
    with running_daemon(state, "--spark-master", args.spark_master) as stack:
        home = state / "airflow"
        started = time.monotonic()
        server = AirflowServer(home, server_env(stack, home, free_port())).start()
        print(f"Airflow up (4 components healthy, DAGs parsed) in {time.monotonic() - started:.1f} s", flush=True)
        api = server.api()
        try:
            api.set_paused("jhu_daily_reports", False)
            results.append(timed_run(api, stack, "jhu_daily_reports", [DAILY],
                                     logical_date=datetime.fromisoformat(DAILY).replace(tzinfo=UTC)))
            results.append(timed_daily_backfill(api, stack))
            results.append(timed_run(api, stack, "jhu_backfill", day_range(*MONTH),
                                     conf={"start_date": MONTH[0], "end_date": MONTH[1]}))
            if not args.skip_whole:
                results.append(timed_run(api, stack, "jhu_backfill", day_range(*WHOLE),
                                         conf={"start_date": WHOLE[0], "end_date": WHOLE[1], "force": True}))
        finally:
            api.close()
            server.stop()
    for result in results:
        print(f"{result['dag_id']} ({result['dates']} dates): {result['state']}; trigger -> run end "
              f"{result['trigger_to_end_s']:.1f} s, trigger -> COMPLETED message "
              f"{result['trigger_to_completed_message_s']:.1f} s"
              + (f"; tasks not ok: {result['not_ok_tasks']}" if result["not_ok_tasks"] else "")
              + (f"; other runs of the DAG: {result['other_runs_of_the_dag']}"
                 if "other_runs_of_the_dag" in result else ""))
        for task in result["timeline"]:
            print(f"    {task['task']:<36} starts +{task['start_s']} s, waited {task['waited_s']} s, "
                  f"took {task['took_s']} s")
    print("RESULT " + json.dumps(results))
    return 0 if all(r["state"] == "success" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
