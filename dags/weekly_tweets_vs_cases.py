"""Weekly: tweets per country and ISO week next to the week's new cases and deaths from JHU.

The original project's third job. One run a week (Monday to Sunday, UTC), on EMR through the same
building block as every processing DAG.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, chain, task

from covid19_lake import tweets_jobs
from covid19_lake.config import ParseTimeSettings
from covid19_lake.dag_defaults import DEFAULT_ARGS
from covid19_lake.spark_pipeline import emr_spark_job

settings = ParseTimeSettings.from_env()

with DAG(
    dag_id="weekly_tweets_vs_cases",
    description="Tweets per country and week next to new cases and deaths",
    schedule=CronDataIntervalTimetable(settings.weekly_schedule, timezone="UTC") if settings.weekly_schedule
    else None,
    start_date=datetime(2020, 1, 20, tzinfo=UTC),  # a Monday; catchup is off
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"force": Param(False, type="boolean", description="Rebuild even if the week is COMPLETED"),
            "start_week": Param(None, type=["null", "string"], format="date",
                                description="With end_week: these weeks (Mondays) in one step instead of "
                                            "the run's week"),
            "end_week": Param(None, type=["null", "string"], format="date",
                              description="Monday of the last week (inclusive)")},
    tags=["covid19-lake", "tweets", "jhu", "emr"],
    doc_md=__doc__,
) as dag:

    @task
    def week(**context) -> list[str]:
        return tweets_jobs.run_weeks(context["params"], context.get("data_interval_start"))

    weeks = week()
    spark = emr_spark_job(tweets_jobs.WEEKLY_JOB, weeks)
    chain(
        weeks,
        # SETUP: the EMR cluster, found by name or created for this run
        spark.acquire_cluster,
        # BODY: claim the week, ONE step, its start and end, Glue partitions, final job records
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
