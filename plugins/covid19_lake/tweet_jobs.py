"""The tweets processing jobs as SparkJobs for the shared EMR TaskGroup.

`tweets_process` claims arrival hours (job_date "YYYY-MM-DDTHH"), and the Spark job rebuilds every
created date those hours feed; `weekly_tweets_vs_cases` claims ISO weeks by their Monday.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from covid19_lake import job_table
from covid19_lake import lake as lake_paths
from covid19_lake.config import LakeConfig
from covid19_lake.spark_pipeline import SparkJob

DONE = ("COMPLETED", "NO_INPUT")


def tweets_arguments(cfg: LakeConfig, hours: list[str], summary: str) -> list[str]:
    return ["--lake", cfg.lake_uri, "--start-hour", min(hours), "--end-hour", max(hours),
            "--reference-uri", lake_paths.join(cfg.spark_jobs_uri, "reference"), "--summary-uri", summary]


def weekly_arguments(cfg: LakeConfig, weeks: list[str], summary: str) -> list[str]:
    return ["--lake", cfg.lake_uri, "--start-date", min(weeks), "--end-date", max(weeks),
            "--reference-uri", lake_paths.join(cfg.spark_jobs_uri, "reference"), "--summary-uri", summary]


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
