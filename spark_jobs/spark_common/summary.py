"""The run summary every Spark job writes to `--summary-uri` and prints as its last stdout line.

One schema for all jobs (docs/architecture.md, "The job summary"):

    {"job": "tweets", "application_id": "local-1...", "started_at": "2026-01-01T00:00:00Z",
     "duration_seconds": 12.3, ...the job's own top-level keys...,
     "dates": {"<key>": {"status": "COMPLETED" | "NO_INPUT" | "FAILED", "rows_read": n, "rows_written": n,
                         "rows_quarantined": n, "error": null | "why", ...the job's own per-date keys...}},
     "totals": {"rows_read": n, "rows_written": n, "rows_quarantined": n, ...the job's other counters...,
                "dates_completed": n, "dates_failed": n}}

A key of `dates` is what the job rebuilt: a report date (JHU), a created date (tweets) or a week's Monday
(weekly). The Airflow side reads each date's status, rows and error (spark_pipeline.final_statuses,
tweets_jobs.whole_run_results); the exit code is 1 when `dates_failed` > 0.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyspark.sql import SparkSession

from spark_common import as_uri, build_spark_session, write_text

COMPLETED, NO_INPUT, FAILED = "COMPLETED", "NO_INPUT", "FAILED"
# The counters every date entry and the totals have; a job adds its own after them.
COUNTERS = ("rows_read", "rows_written", "rows_quarantined")


def failed_entry(error: str, counters: Iterable[str] = COUNTERS, **fields: Any) -> dict[str, Any]:
    """A date that failed: its counters zero, its error (and any job-specific fields)."""
    return {"status": FAILED, **fields, **dict.fromkeys(counters, 0), "error": error}


def totals(dates: Mapping[str, Mapping[str, Any]], counters: Iterable[str] = COUNTERS) -> dict[str, int]:
    """Each counter summed over the dates (a date without it counts 0), then dates completed and failed."""
    result = {name: sum(entry.get(name, 0) for entry in dates.values()) for name in counters}
    result["dates_completed"] = sum(entry["status"] == COMPLETED for entry in dates.values())
    result["dates_failed"] = sum(entry["status"] == FAILED for entry in dates.values())
    return result


class Clock:
    """When a run started (wall clock, for `started_at`) and how long it took (monotonic)."""

    def __init__(self) -> None:
        self.started = time.time()
        self._monotonic = time.monotonic()

    def started_at(self) -> str:
        return dt.datetime.fromtimestamp(self.started, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def seconds(self) -> float:
        return round(time.monotonic() - self._monotonic, 3)


def build(job: str, spark: SparkSession, clock: Clock, dates: dict[str, dict[str, Any]],
          counters: Iterable[str] = COUNTERS, **extra: Any) -> dict[str, Any]:
    """The summary of one run, in the schema above; `extra` are the job's own top-level keys."""
    return {"job": job, "application_id": spark.sparkContext.applicationId, "started_at": clock.started_at(),
            "duration_seconds": clock.seconds(), **extra, "dates": dates, "totals": totals(dates, counters)}


def run_with_summary(app_name: str, run: Callable[[SparkSession, Any], dict], args: Any,
                     spark: SparkSession | None = None) -> int:
    """A job's main(): run it, write the summary to `args.summary_uri` (when given), report the failed dates on
    stderr and the summary as the last stdout line (`SUMMARY {...}`); 0 when no date failed, else 1.

    Without `spark` a session is built (spark-submit, EMR or local, configures the master; a plain `python`
    run defaults to local[*]) and stopped at the end unless one was already active (as in tests).
    """
    own_session = spark is None and SparkSession.getActiveSession() is None
    spark = spark or build_spark_session(app_name)
    try:
        summary = run(spark, args)
        text = json.dumps(summary)
        if args.summary_uri:
            write_text(spark, as_uri(args.summary_uri), text + "\n")
    finally:
        if own_session:
            spark.stop()
    for day, entry in summary["dates"].items():
        if entry["status"] == FAILED:
            print(f"FAILED {day}: {entry['error']}", file=sys.stderr)
    print(f"SUMMARY {text}", flush=True)
    return 1 if summary["totals"]["dates_failed"] else 0
