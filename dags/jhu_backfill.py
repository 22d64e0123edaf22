"""Backfill JHU daily reports for a date range: land what's missing in parallel, ONE EMR step.

Trigger it from the UI form (start_date, end_date) or the CLI:
    airflow dags trigger jhu_backfill -c '{"start_date": "2020-03-01", "end_date": "2020-03-31"}'
Dates already COMPLETED in the job table are skipped unless `force` is set.
"""

from __future__ import annotations

from datetime import date

from airflow.sdk import DAG, Param, chain, task
from airflow.sdk.exceptions import AirflowFailException

from covid19_lake import config, jhu_jobs, jhu_source
from covid19_lake.assets import JHU_DAILY_REPORTS
from covid19_lake.config import JHU_FIRST_DATE, JHU_LAST_DATE
from covid19_lake.dag_defaults import DEFAULT_ARGS
from covid19_lake.spark_pipeline import emr_spark_job, failure_callback

LAND_BATCH = 50


def requested_dates(context) -> list[str]:
    """The dates the run was asked for (none when the range is not JHU's): a landing failure is recorded
    on them."""
    params = context["params"]
    try:
        start, end = date.fromisoformat(params["start_date"]), date.fromisoformat(params["end_date"])
        if start < JHU_FIRST_DATE or end > JHU_LAST_DATE:
            return []
        return [d.isoformat() for d in jhu_source.date_range(start, end)]
    except (KeyError, TypeError, ValueError):
        return []


with DAG(
    dag_id="jhu_backfill",
    description="Land and process a range of JHU daily reports in one EMR step",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "start_date": Param(JHU_FIRST_DATE.isoformat(), type="string", format="date",
                            description="First report date (inclusive)"),
        "end_date": Param(JHU_FIRST_DATE.isoformat(), type="string", format="date",
                          description="Last report date (inclusive)"),
        "force": Param(False, type="boolean", description="Reprocess dates that are already COMPLETED"),
        "refresh": Param(False, type="boolean", description="Download files again even if already landed"),
    },
    tags=["covid19-lake", "jhu", "emr", "backfill"],
    doc_md=__doc__,
) as dag:

    @task
    def plan_batches(**context) -> list[list[str]]:
        params = context["params"]
        start, end = date.fromisoformat(params["start_date"]), date.fromisoformat(params["end_date"])
        if start < JHU_FIRST_DATE or end > JHU_LAST_DATE:
            raise AirflowFailException(
                f"JHU published daily reports from {JHU_FIRST_DATE} to {JHU_LAST_DATE}; asked {start}..{end}"
            )
        try:
            days = [d.isoformat() for d in jhu_source.date_range(start, end)]
        except ValueError as error:
            raise AirflowFailException(str(error)) from error
        return [days[i:i + LAND_BATCH] for i in range(0, len(days), LAND_BATCH)]

    # A batch that cannot land fails the run before any claim: its failure becomes the run's job record.
    @task(on_failure_callback=failure_callback(jhu_jobs.SPARK_JOB, planned_dates=requested_dates))
    def land_batch(days: list[str], **context) -> dict[str, list[str]]:
        results = jhu_jobs.land_many(config.load(), [date.fromisoformat(d) for d in days],
                                refresh=bool(context["params"]["refresh"]))
        outcome: dict[str, list[str]] = {"landed": [], "present": [], "not_published": []}
        for result in results:
            outcome[result.status].append(result.report_date)
        return outcome

    @task
    def landed_dates(outcomes: list[dict[str, list[str]]]) -> list[str]:
        return sorted(d for o in outcomes for d in o["landed"] + o["present"])

    @task
    def check_unpublished(outcomes: list[dict[str, list[str]]]) -> None:
        missing = sorted(d for o in outcomes for d in o["not_published"])
        if missing:
            raise AirflowFailException(f"{len(missing)} dates are not published at the source: {missing}")

    outcomes = land_batch.expand(days=plan_batches())
    landed = landed_dates(outcomes)
    spark = emr_spark_job(jhu_jobs.SPARK_JOB, landed, outlets=[JHU_DAILY_REPORTS], planned_dates=requested_dates)
    chain(
        # LAND: the missing files, in parallel batches
        landed,
        # SETUP: the EMR cluster, found by name or created for this run
        spark.acquire_cluster,
        # BODY: claim the landed dates, ONE step, its start and end, Glue partitions, final job records
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
    check_unpublished(outcomes)
