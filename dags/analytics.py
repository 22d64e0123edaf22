"""analytics: Athena views over the processed tables and the dashboard's JSON extracts.

Runs whenever a processed table changes (Airflow Assets). Each view's AthenaOperator creates or replaces
it once the views it reads exist; then the extracts are written next to the dashboard site. Settings
(Glue database, workgroup, result location, site bucket, engine) come from the Variable covid19_lake, read
when a task runs: the operators' templated fields call the `covid19_lake_config()` macro (the loader).
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.athena import AthenaOperator
from airflow.sdk import DAG, task

from covid19_lake import config
from covid19_lake.analytics import tasks
from covid19_lake.assets import JHU_DAILY_REPORTS, TWEET_DAILY_STATS, TWEETS
from covid19_lake.dag_defaults import DEFAULT_ARGS

with DAG(
    dag_id="analytics",
    description="Athena views over the processed tables and the dashboard's JSON extracts",
    schedule=(JHU_DAILY_REPORTS | TWEETS | TWEET_DAILY_STATS),
    default_args=DEFAULT_ARGS,
    catchup=False,
    max_active_runs=1,
    tags=["covid19-lake", "analytics", "athena", "dashboard"],
    doc_md=__doc__,
    # Rendered per task run, never at parse time: the validated Variable (covid19_lake.config.load).
    user_defined_macros={"covid19_lake_config": config.load},
) as dag:
    views = {
        view.name: AthenaOperator(
            task_id=f"create_view_{view.name}",
            query=tasks.athena_statement(view),
            database="{{ covid19_lake_config().lake.glue_database }}",
            workgroup="{{ covid19_lake_config().analytics.athena_workgroup }}",
            output_location="{{ covid19_lake_config().analytics.athena_output }}",
            aws_conn_id="{{ covid19_lake_config().lake.aws_conn_id }}",
            sleep_time=5,
            doc_md=view.description,
        )
        for view in tasks.VIEWS
    }
    for view in tasks.VIEWS:
        for upstream in view.reads:
            if upstream in views:
                views[upstream] >> views[view.name]

    @task(task_id="write_dashboard_extracts")
    def write_dashboard_extracts() -> dict:
        return tasks.write_dashboard_extracts()

    list(views.values()) >> write_dashboard_extracts()
