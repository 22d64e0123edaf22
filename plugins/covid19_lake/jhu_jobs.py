"""JHU daily reports: the Spark job's arguments and the landing tasks' logic."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from covid19_lake import jhu_source
from covid19_lake import lake as lake_paths
from covid19_lake.config import Config
from covid19_lake.lake import Lake
from covid19_lake.spark_pipeline import SparkJob

JOB_NAME = "jhu_daily_reports"


def spark_arguments(cfg: Config, dates: list[str], summary: str) -> list[str]:
    first, last = min(dates), max(dates)
    args = ["--lake", cfg.lake.uri, "--start-date", first, "--end-date", last]
    full_range = [d.isoformat() for d in jhu_source.date_range(date.fromisoformat(first), date.fromisoformat(last))]
    if sorted(dates) != full_range:
        args += ["--only-dates", ",".join(sorted(dates))]
    mapping = lake_paths.join(cfg.lake.spark_jobs_uri, "reference", "jhu_country_mapping.csv")
    return [*args, "--country-mapping", mapping, "--summary-uri", summary]


SPARK_JOB = SparkJob(name=JOB_NAME, script="jhu_daily_reports.py", arguments=spark_arguments,
                     glue_tables=("jhu_daily_reports", "jhu_field_issues"))


class NotPublishedInTime(RuntimeError):
    """The publication window is over and the day's file is still missing at the source."""


def land_or_wait(cfg: Config, day: date, now: datetime, refresh: bool = False) -> str | None:
    """Land the day's file; None means 'not published yet, poke again'. Fails after the window.

    JHU publishes a day's report in the early hours of the next day (UTC), so the window counts from
    the end of the report date.
    """
    result = jhu_source.land(Lake(cfg.lake.aws_conn_id), cfg.lake.uri, cfg.jhu.source_url, day, refresh=refresh)
    if result.status != "not_published":
        return result.uri
    deadline = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo) + timedelta(
        hours=cfg.jhu.publish_window_hours
    )
    if now >= deadline:
        raise NotPublishedInTime(
            f"JHU report {jhu_source.file_name(day)} was not published at "
            f"{jhu_source.source_url(cfg.jhu.source_url, day)} by {deadline.isoformat()} "
            f"({cfg.jhu.publish_window_hours}h after the report date)"
        )
    return None


def land_many(cfg: Config, days: list[date], refresh: bool = False) -> list[jhu_source.LandResult]:
    """Land several days concurrently: each is one small GET and one PUT, so threads hide the latency."""
    lake = Lake(cfg.lake.aws_conn_id)
    with ThreadPoolExecutor(max_workers=max(1, cfg.jhu.land_parallelism)) as pool:
        return list(pool.map(
            lambda day: jhu_source.land(lake, cfg.lake.uri, cfg.jhu.source_url, day, refresh=refresh), days
        ))
