"""tweets_ingest: X API recent search -> Kinesis Data Firehose -> {lake}/raw/tweets/YYYY/MM/DD/HH/.

Thin wiring only: the work is in covid19_lake.tweets.ingest. Configuration (the tweets section of the
Variable covid19_lake), the bearer token (connection x_api) and AWS clients are all resolved when the task runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from covid19_lake.config import ParseTimeSettings
from covid19_lake.dag_defaults import DEFAULT_ARGS

settings = ParseTimeSettings.from_env()

with DAG(
    dag_id="tweets_ingest",
    description="Fetch COVID-19 tweets from X recent search into the lake's raw zone via Firehose",
    schedule=settings.tweets_ingest_schedule,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    # The since_id checkpoint assumes runs never overlap.
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    default_args=DEFAULT_ARGS,
    tags=["covid19-lake", "tweets", "ingest"],
) as dag:

    @task(execution_timeout=timedelta(minutes=12))
    def fetch_tweets() -> dict:
        from covid19_lake.tweets.ingest import ingest_from_airflow

        return ingest_from_airflow()

    fetch_tweets()
