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

    # Poking: a rescheduled sensor races the Airflow 3.3 scheduler (docs/configuration.md).
    @task.sensor(poke_interval=settings.tweets_hour_poke_seconds, timeout=timedelta(hours=2).total_seconds(),
                 mode="poke", soft_fail=True)
    def wait_for_hour(**context) -> PokeReturnValue:
        """Firehose writes the hour's prefix once its buffer flushes; no prefix after 2 h: nothing to do."""
        hour = context["data_interval_start"]
        cfg = LakeConfig.load()
        prefix = lake_paths.join(cfg.lake_uri, f"raw/tweets/{hour:%Y/%m/%d/%H}")
        return PokeReturnValue(is_done=Lake(cfg.aws_conn_id).has_prefix(prefix),
                               xcom_value=[f"{hour:%Y-%m-%dT%H}"])

    def planned_hours(context) -> list[str]:
        """The run's arrival hour, for a failure recorded before wait_for_hour returned it."""
        return [f"{context['data_interval_start']:%Y-%m-%dT%H}"]

    hours = wait_for_hour()
    spark = emr_spark_job(tweet_jobs.TWEETS_JOB, hours, outlets=[TWEETS, TWEET_DAILY_STATS],
                          planned_dates=planned_hours)
    chain(
        # WAIT: the hour's raw tweets
        hours,
        # SETUP: the EMR cluster, found by name or created for this run
        spark.acquire_cluster,
        # BODY: claim the arrival hour, ONE step, its start and end, Glue partitions, final job records
        spark.claim,
        spark.add_step,
        spark.wait_for_start,
        spark.mark_running,
        spark.wait_for_end,
        spark.add_partitions,
        spark.record_results,
        # TEARDOWN: terminate the cluster only if this run created it
        spark.release_cluster,
    )
