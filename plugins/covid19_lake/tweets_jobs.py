"""The tweets processing jobs as SparkJobs for the shared EMR TaskGroup.

`tweets_process` claims arrival hours (job_date "YYYY-MM-DDTHH"), and the Spark job rebuilds every
created date those hours feed; `weekly_tweets_vs_cases` claims ISO weeks by their Monday.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from covid19_lake import job_table
from covid19_lake import lake as lake_paths
from covid19_lake.config import Config
from covid19_lake.spark_pipeline import SparkJob

DONE = ("COMPLETED", "NO_INPUT")
MAX_RANGE_HOURS = 24 * 62
MAX_RANGE_WEEKS = 60


def hour_range(start: str | None, end: str | None) -> list[datetime]:
    """The arrival hours ``start``..``end`` (YYYY-MM-DDTHH, inclusive) of a tweets_process run's conf."""
    if not start or not end:
        raise ValueError("give both start_hour and end_hour (YYYY-MM-DDTHH)")
    first, last = (datetime.strptime(h, "%Y-%m-%dT%H").replace(tzinfo=UTC) for h in (start, end))
    count = int((last - first) / timedelta(hours=1)) + 1
    if not 1 <= count <= MAX_RANGE_HOURS:
        raise ValueError(f"start_hour..end_hour must be 1..{MAX_RANGE_HOURS} hours, got {start}..{end}")
    return [first + timedelta(hours=i) for i in range(count)]


def week_range(start: str | None, end: str | None) -> list[str]:
    """The ISO weeks (their Mondays) ``start``..``end`` of a weekly_tweets_vs_cases run's conf."""
    if not start or not end:
        raise ValueError("give both start_week and end_week (a Monday, YYYY-MM-DD)")
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if first.weekday() or last.weekday():
        raise ValueError(f"start_week and end_week must be Mondays, got {start} and {end}")
    count = (last - first).days // 7 + 1
    if not 1 <= count <= MAX_RANGE_WEEKS:
        raise ValueError(f"start_week..end_week must be 1..{MAX_RANGE_WEEKS} weeks, got {start}..{end}")
    return [(first + timedelta(weeks=i)).isoformat() for i in range(count)]


def run_hours(params: dict[str, Any], data_interval_start: datetime | None) -> list[datetime]:
    """A tweets_process run's arrival hours: its params' range, else its data interval's hour."""
    if params.get("start_hour") or params.get("end_hour"):
        return hour_range(params.get("start_hour"), params.get("end_hour"))
    if data_interval_start is None:
        raise ValueError("tweets_process has no schedule here (COVID19_LAKE_TWEETS_PROCESS_SCHEDULE=none), so a "
                         "run has no hour of its own: trigger it with start_hour and end_hour (YYYY-MM-DDTHH)")
    return [data_interval_start]


def run_weeks(params: dict[str, Any], data_interval_start: datetime | None) -> list[str]:
    """A weekly_tweets_vs_cases run's weeks (their Mondays): its params' range, else its data interval's."""
    if params.get("start_week") or params.get("end_week"):
        return week_range(params.get("start_week"), params.get("end_week"))
    if data_interval_start is None:
        raise ValueError("weekly_tweets_vs_cases has no schedule here (COVID19_LAKE_WEEKLY_SCHEDULE=none), so a "
                         "run has no week of its own: trigger it with start_week and end_week (Mondays)")
    return [data_interval_start.date().isoformat()]


def range_arguments(start_option: str, end_option: str) -> Callable[[Config, list[str], str], list[str]]:
    """A SparkJob's arguments for a job that takes its claimed keys as a range (the first and the last)."""
    def arguments(cfg: Config, keys: list[str], summary: str) -> list[str]:
        return ["--lake", cfg.lake.uri, start_option, min(keys), end_option, max(keys),
                "--reference-uri", lake_paths.join(cfg.lake.spark_jobs_uri, "reference"), "--summary-uri", summary]
    return arguments


tweets_arguments = range_arguments("--start-hour", "--end-hour")  # arrival hours YYYY-MM-DDTHH
weekly_arguments = range_arguments("--start-date", "--end-date")  # the weeks' Mondays


def written_dates(keys: Sequence[str], summary: dict[str, Any] | None) -> list[str]:
    """Created dates the run rebuilt with rows: the partitions of tweets and tweet_daily_stats."""
    per_date = (summary or {}).get("dates", {})
    return sorted(d for d, entry in per_date.items()
                  if entry.get("status") == job_table.COMPLETED and entry.get("rows_written"))


def whole_run_results(keys: Sequence[str], summary: dict[str, Any] | None,
                      step: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every claimed key shares the run's fate: the job rebuilds dates, not the claimed keys."""
    from covid19_lake import emr

    per_date = (summary or {}).get("dates", {})
    totals = (summary or {}).get("totals", {})
    failed = {d: e.get("error") for d, e in per_date.items() if e.get("status") not in DONE}
    if summary is not None and not failed:
        fields = {"status": job_table.COMPLETED, "rows_written": totals.get("rows_written"),
                  "rows_quarantined": totals.get("rows_quarantined"), "error": None}
    else:
        error = "; ".join(f"{d}: {e}" for d, e in sorted(failed.items())) or (
            emr.failure_reason(step) if step else "the Spark job wrote no summary")
        fields = {"status": job_table.FAILED, "rows_written": totals.get("rows_written"),
                  "rows_quarantined": totals.get("rows_quarantined"), "error": error}
    return {key: dict(fields) for key in keys}


TWEETS_JOB = SparkJob(name="tweets", script="tweets.py", arguments=tweets_arguments,
                      glue_tables=("tweets", "tweet_daily_stats"), partition_values=written_dates,
                      results=whole_run_results)
WEEKLY_JOB = SparkJob(name="weekly_tweets_vs_cases", script="weekly_tweets_vs_cases.py",
                      arguments=weekly_arguments, results=whole_run_results,
                      partition_values=lambda keys, summary: [])
