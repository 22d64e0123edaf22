"""job_records_reconcile: settle job records whose EMR step ended without its run recording the end.

A job record must not stay SUBMITTED or RUNNING after its step ended (a killed task, a sensor the
scheduler failed). Every half hour (COVID19_LAKE_RECONCILE_SCHEDULE) this scans the job table's in-flight
records, asks EMR about each one's step (once per step), and settles those whose step ended from the job
summary the step names: COMPLETED with the summary's numbers (Glue partition first) or FAILED with the
reason; a claim that expired without a step becomes FAILED. Records of live steps are left alone. Then
the in-flight run items (the notifier's, one per multi-date run) whose dates are all final are finished
from those dates' records, so the run's outcome is posted once. The
claim of the next run of a date does the same for its dates (covid19_lake.spark_pipeline.settle_stale).
Cheap: one scan, one DescribeStep per in-flight step, one summary read per ended step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, task

from covid19_lake import config, jhu_jobs, tweets_jobs
from covid19_lake.config import ParseTimeSettings
from covid19_lake.dag_defaults import DEFAULT_ARGS
from covid19_lake.job_table import JobTable
from covid19_lake.spark_pipeline import StepLookup, emr_hook, settle_run_items, settle_stale

settings = ParseTimeSettings.from_env()
SPARK_JOBS = {job.name: job for job in (jhu_jobs.SPARK_JOB, tweets_jobs.TWEETS_JOB, tweets_jobs.WEEKLY_JOB)}

with DAG(
    dag_id="job_records_reconcile",
    description="Settle job records whose EMR step ended without its run recording the end",
    schedule=CronTriggerTimetable(settings.reconcile_schedule, timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=20),
    # A safety net: it runs without anyone unpausing it.
    is_paused_upon_creation=False,
    default_args=DEFAULT_ARGS,
    tags=["covid19-lake", "job-table", "emr"],
    doc_md=__doc__,
) as dag:

    @task(execution_timeout=timedelta(minutes=15))
    def reconcile() -> dict[str, int]:
        cfg = config.load()
        in_flight = JobTable(cfg.lake.job_table, cfg.lake.aws_conn_id).in_flight()
        settled = settle_stale(cfg, SPARK_JOBS, in_flight, StepLookup(emr_hook(cfg)))
        # Then the run items (the notifier's) whose dates are all final by now.
        runs = settle_run_items(cfg, SPARK_JOBS, in_flight)
        unknown = sorted({i.get("job_name") for i in in_flight if i.get("record_type") != "run"} - set(SPARK_JOBS))
        if unknown:
            print(f"records of jobs this DAG does not know are left alone: {unknown}")
        statuses = list(settled.values())
        summary = {"in_flight": len(in_flight), "settled": len(settled),
                   "completed": statuses.count("COMPLETED"), "failed": statuses.count("FAILED"),
                   "run_items_settled": len(runs)}
        print(f"job records: {summary}")
        return summary

    reconcile()
