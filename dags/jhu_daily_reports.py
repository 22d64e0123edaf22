"""JHU CSSE daily reports, one day a run: land the day's CSV, process it on EMR, catalog it.

Catchup runs one date per run from 2020-01-22; for history, `jhu_backfill` does a whole range in one
EMR step. A run's report date is its logical date, so `airflow backfill create --from-date A --to-date B`
processes the reports A..B; the run for D starts at midnight and waits until JHU publishes D's file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, PokeReturnValue, chain, task
from airflow.sdk.exceptions import AirflowFailException

from covid19_lake import jhu
from covid19_lake.assets import JHU_DAILY_REPORTS
from covid19_lake.config import JHU_FIRST_DATE, LakeConfig, ParseTimeSettings
from covid19_lake.dag_defaults import DEFAULT_ARGS
from covid19_lake.spark_pipeline import emr_spark_job

settings = ParseTimeSettings.from_env()

with DAG(
    dag_id="jhu_daily_reports",
    description="Land, process and catalog one JHU CSSE daily report",
    schedule=CronTriggerTimetable("@daily", timezone="UTC"),
    start_date=datetime.combine(JHU_FIRST_DATE, datetime.min.time(), tzinfo=UTC),
    end_date=datetime.combine(settings.jhu_end_date, datetime.min.time(), tzinfo=UTC),
    catchup=True,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    params={"force": Param(False, type="boolean", description="Reprocess even if the date is COMPLETED")},
    tags=["covid19", "jhu", "emr"],
    doc_md=__doc__,
) as dag:

    @task.sensor(
        poke_interval=settings.land_retry_minutes * 60,
        timeout=timedelta(days=4).total_seconds(),
        mode=settings.sensor_mode,
    )
    def land_report(**context) -> PokeReturnValue:
        """Copy the day's file into the raw zone; wait while JHU has not published it."""
        day = (context["logical_date"] or context["dag_run"].run_after).date()
        try:
            uri = jhu.land_or_wait(LakeConfig.load(), day, datetime.now(UTC))
        except jhu.NotPublishedInTime as error:
            raise AirflowFailException(str(error)) from error
        return PokeReturnValue(is_done=uri is not None, xcom_value=[day.isoformat()])

    landed = land_report()
    chain(landed, emr_spark_job(jhu.SPARK_JOB, landed, outlets=[JHU_DAILY_REPORTS]))
