"""JHU CSSE daily reports, one day a run: land the day's CSV, process it on EMR, catalog it.

A run's report date is its logical date. Catchup is off unless COVID19_LAKE_JHU_CATCHUP is true: history
belongs to `jhu_backfill` (a whole range in one EMR step), not to a step per past day. To run daily runs
for past dates, unpause the DAG, then `airflow backfill create --dag-id jhu_daily_reports --from-date A
--to-date B` (or POST /api/v2/backfills): one run per report date A..B. The run for D waits until JHU
publishes D's file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, PokeReturnValue, chain, task
from airflow.sdk.exceptions import AirflowFailException

from covid19_lake import config, jhu_jobs
from covid19_lake.assets import JHU_DAILY_REPORTS
from covid19_lake.config import JHU_FIRST_DATE, ParseTimeSettings
from covid19_lake.dag_defaults import DEFAULT_ARGS
from covid19_lake.spark_pipeline import emr_spark_job

settings = ParseTimeSettings.from_env()


def report_date(context) -> date:
    """The run's report date: its logical date, or when it runs for a run without one (an Airflow 3 manual
    trigger may leave the logical date empty; the context then has no `logical_date` key)."""
    return (context.get("logical_date") or context["dag_run"].run_after).date()


with DAG(
    dag_id="jhu_daily_reports",
    description="Land, process and catalog one JHU CSSE daily report",
    schedule=CronTriggerTimetable("@daily", timezone="UTC"),
    start_date=datetime.combine(JHU_FIRST_DATE, datetime.min.time(), tzinfo=UTC),
    end_date=datetime.combine(settings.jhu_end_date, datetime.min.time(), tzinfo=UTC),
    catchup=settings.jhu_catchup,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    params={"force": Param(False, type="boolean", description="Reprocess even if the date is COMPLETED")},
    tags=["covid19-lake", "jhu", "emr"],
    doc_md=__doc__,
) as dag:

    @task.sensor(
        poke_interval=settings.land_retry_minutes * 60,
        timeout=timedelta(days=4).total_seconds(),
        # Poking: a rescheduled sensor races the Airflow 3.3 scheduler (docs/configuration.md).
        mode="poke",
    )
    def land_report(**context) -> PokeReturnValue:
        """Copy the day's file into the raw zone; wait while JHU has not published it."""
        day = report_date(context)
        try:
            uri = jhu_jobs.land_or_wait(config.load(), day, datetime.now(UTC))
        except jhu_jobs.NotPublishedInTime as error:
            raise AirflowFailException(str(error)) from error
        return PokeReturnValue(is_done=uri is not None, xcom_value=[day.isoformat()])

    def report_dates(context) -> list[str]:
        """The run's report date, for a failure recorded before land_report returned it."""
        return [report_date(context).isoformat()]

    landed = land_report()
    spark = emr_spark_job(jhu_jobs.SPARK_JOB, landed, outlets=[JHU_DAILY_REPORTS], planned_dates=report_dates)
    chain(
        # LAND: the day's file, once JHU has published it
        landed,
        # SETUP: the EMR cluster, found by name or created for this run
        spark.acquire_cluster,
        # BODY: claim the report date, ONE step, its start and end, Glue partitions, final job records
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
