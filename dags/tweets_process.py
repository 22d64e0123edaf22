"""Tweets, hourly: wait for the hour's Firehose prefix, then rebuild the created dates it feeds on EMR.

Same building block as the JHU DAGs: job-table claim (job_date is the arrival hour, YYYY-MM-DDTHH),
ONE EMR step, Glue partitions of `tweets` and `tweet_daily_stats`, final job records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, PokeReturnValue, chain, task

from covid19_lake import config, tweets_jobs
from covid19_lake import lake as lake_paths
from covid19_lake.assets import TWEET_DAILY_STATS, TWEETS
from covid19_lake.config import ParseTimeSettings
from covid19_lake.dag_defaults import DEFAULT_ARGS
from covid19_lake.lake import Lake
from covid19_lake.spark_pipeline import emr_spark_job

settings = ParseTimeSettings.from_env()

with DAG(
    dag_id="tweets_process",
    description="Process an hour of raw tweets into the tweets and tweet_daily_stats tables",
    schedule=CronDataIntervalTimetable(settings.tweets_process_schedule, timezone="UTC")
    if settings.tweets_process_schedule else None,
    start_date=datetime(2020, 1, 1, tzinfo=UTC),  # catchup is off: only dates test runs may ask for
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    params={"force": Param(False, type="boolean", description="Reprocess even if the hour is COMPLETED"),
            "start_hour": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}$",
                                description="With end_hour: every arrival hour of this range that has raw "
                                            "tweets, in one step (YYYY-MM-DDTHH), instead of the run's hour"),
            "end_hour": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}$",
                              description="Last arrival hour of the range (inclusive)")},
    tags=["covid19-lake", "tweets", "emr"],
    doc_md=__doc__,
) as dag:

    # Poking: a rescheduled sensor races the Airflow 3.3 scheduler (docs/configuration.md).
    @task.sensor(poke_interval=settings.tweets_hour_poke_seconds, timeout=timedelta(hours=2).total_seconds(),
                 mode="poke", soft_fail=True)
    def wait_for_hour(**context) -> PokeReturnValue:
        """Firehose writes the hour's prefix once its buffer flushes; no prefix after 2 h: nothing to do."""
        cfg = config.load()
        lake = Lake(cfg.lake.aws_conn_id)
        hours = tweets_jobs.run_hours(context["params"], context.get("data_interval_start"))
        present = [f"{h:%Y-%m-%dT%H}" for h in hours
                   if lake.has_prefix(lake_paths.join(cfg.lake.uri, f"raw/tweets/{h:%Y/%m/%d/%H}"))]
        return PokeReturnValue(is_done=bool(present), xcom_value=present)

    def planned_hours(context) -> list[str]:
        """The run's arrival hours, for a failure recorded before wait_for_hour returned them."""
        return [f"{h:%Y-%m-%dT%H}" for h in tweets_jobs.run_hours(context["params"],
                                                                   context.get("data_interval_start"))]

    hours = wait_for_hour()
    spark = emr_spark_job(tweets_jobs.TWEETS_JOB, hours, outlets=[TWEETS, TWEET_DAILY_STATS],
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
