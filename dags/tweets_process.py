"""Tweets, hourly: wait for the hour's Firehose prefix, then rebuild the created dates it feeds on EMR.

Same building block as the JHU DAGs: job-table claim (job_date is the arrival hour, YYYY-MM-DDTHH),
ONE EMR step, Glue partitions of `tweets` and `tweet_daily_stats`, final job records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, PokeReturnValue, chain, task

from covid19_lake import lake as lake_paths
from covid19_lake import tweet_jobs
from covid19_lake.assets import TWEET_DAILY_STATS, TWEETS
from covid19_lake.config import LakeConfig, ParseTimeSettings
from covid19_lake.dag_defaults import DEFAULT_ARGS
from covid19_lake.lake import Lake
from covid19_lake.spark_pipeline import emr_spark_job

settings = ParseTimeSettings.from_env()

with DAG(
    dag_id="tweets_process",
    description="Process an hour of raw tweets into the tweets and tweet_daily_stats tables",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=datetime(2020, 1, 1, tzinfo=UTC),  # catchup is off: only dates test runs may ask for
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    params={"force": Param(False, type="boolean", description="Reprocess even if the hour is COMPLETED")},
    tags=["covid19", "tweets", "emr"],
    doc_md=__doc__,
) as dag:

    @task.sensor(poke_interval=settings.sensor_poke_seconds * 5, timeout=timedelta(hours=2).total_seconds(),
                 mode=settings.sensor_mode, soft_fail=True)
    def wait_for_hour(**context) -> PokeReturnValue:
        """Firehose writes the hour's prefix once its buffer flushes; no prefix after 2 h: nothing to do."""
        hour = context["data_interval_start"]
        cfg = LakeConfig.load()
        prefix = lake_paths.join(cfg.lake_uri, f"raw/tweets/{hour:%Y/%m/%d/%H}")
        return PokeReturnValue(is_done=Lake(cfg.aws_conn_id).has_prefix(prefix),
                               xcom_value=[f"{hour:%Y-%m-%dT%H}"])

    hours = wait_for_hour()
    chain(hours, emr_spark_job(tweet_jobs.TWEETS_JOB, hours, outlets=[TWEETS, TWEET_DAILY_STATS]))
