"""The `analytics` DAG: structure, the Athena statements it submits, and both extract paths.

moto's Athena accepts queries without executing them: the view tasks are run against it and the
submitted statements are read back. The Athena extract path is fed by moto with the rows DuckDB computes
from the same views, and must produce the same extracts as the DuckDB path.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID

from covid19_lake.analytics import extracts, tasks
from covid19_lake.analytics.views import VIEWS
from covid19_lake.config import AnalyticsSettings
from local.analytics import dashboard, duck, fixture_lake
from tests.variable import set_variable, variable

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "analytics.py"
WINDOW = [date(2020, 7, 1) + timedelta(days=i) for i in range(9)]
REGION = "us-east-1"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["analytics"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, jhu_mirror: Path) -> Path:
    root = tmp_path_factory.mktemp("lake")
    fixture_lake.build(jhu_mirror, root, WINDOW)
    tweets = fixture_lake.sample_tweets(WINDOW, count=200)
    fixture_lake.write_table(root, "tweets", tweets, "created_date")
    fixture_lake.write_table(root, "tweet_daily_stats", fixture_lake.daily_stats_of(tweets), "date")
    return root


def test_scheduled_by_any_processed_table_change(dag) -> None:
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny"
    assert {a.uri for a in condition.objects} == {
        "covid19-lake://processed/jhu_daily_reports", "covid19-lake://processed/tweets",
        "covid19-lake://processed/tweet_daily_stats"}
    assert dag.default_args["owner"] == "covid19-lake" and dag.default_args["retries"] >= 1
    assert "analytics" in dag.tags and not dag.catchup


def test_views_are_created_after_the_views_they_read(dag) -> None:
    for view in VIEWS:
        task = dag.get_task(f"create_view_{view.name}")
        assert task.task_type == "AthenaOperator"
        assert task.query == tasks.athena_statement(view)
        assert "{{" not in task.query
        assert {t.removeprefix("create_view_") for t in task.upstream_task_ids} == \
            {name for name in view.reads if name.startswith("analytics_")}
    extract = dag.get_task("write_dashboard_extracts")
    assert extract.upstream_task_ids == {f"create_view_{v.name}" for v in VIEWS}


def test_settings_are_templates_rendered_at_run_time_by_the_loader(dag) -> None:
    task = dag.get_task("create_view_analytics_country_daily")
    assert task.database == "{{ covid19_lake_config().lake.glue_database }}"
    assert task.output_location == "{{ covid19_lake_config().analytics.athena_output }}"
    assert task.workgroup == "{{ covid19_lake_config().analytics.athena_workgroup }}"
    assert task.aws_conn_id == "{{ covid19_lake_config().lake.aws_conn_id }}"


def _context():
    from airflow.sdk.execution_time.context import VariableAccessor

    return {"var": {"value": VariableAccessor(deserialize_json=False),
                    "json": VariableAccessor(deserialize_json=True)}}


def _project_workgroup() -> str:
    """The workgroup the stack creates (named after the project), which is the DAG's default."""
    name = AnalyticsSettings.athena_workgroup
    boto3.client("athena", region_name=REGION).create_work_group(Name=name)
    return name


def test_view_statements_are_submitted_to_athena(dag, monkeypatch: pytest.MonkeyPatch) -> None:
    set_variable(monkeypatch, variable(lake={"glue_database": "covid19_it"},
                                       analytics={"athena_output": "s3://athena-results/analytics/"}))
    with mock_aws():
        workgroup = _project_workgroup()
        for task in dag.topological_sort():
            if task.task_type == "AthenaOperator":
                task = task.prepare_for_execution()
                task.render_template_fields(_context())
                task.execute(_context())
        client = boto3.client("athena", region_name=REGION)
        submitted = [client.get_query_execution(QueryExecutionId=i)["QueryExecution"]
                     for i in client.list_query_executions()["QueryExecutionIds"]]
    assert sorted(q["Query"] for q in submitted) == sorted(tasks.athena_statement(v) for v in VIEWS)
    assert {q["QueryExecutionContext"]["Database"] for q in submitted} == {"covid19_it"}
    assert {q["WorkGroup"] for q in submitted} == {workgroup}
    # Athena reports the result object: <output location><query id>.csv
    assert all(q["ResultConfiguration"]["OutputLocation"] == f"s3://athena-results/analytics/{q['QueryExecutionId']}.csv"
               for q in submitted)


def test_local_extracts_are_written_next_to_the_site(lake: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "data" / "countries").mkdir(parents=True)
    (site / "data" / "countries" / "atlantis.json").write_text("{}")  # stale, must go
    set_variable(monkeypatch, variable(lake.as_uri(), "spark_jobs", analytics={"local_site": str(site)}))
    for _ in range(2):  # idempotent
        meta = tasks.write_dashboard_extracts()
    assert meta["latest_report_date"] == WINDOW[-1].isoformat() and meta["engine"] == "duckdb"
    written = json.loads((site / "data" / "countries" / "germany.json").read_text())
    assert written["daily"]["dates"] == [d.isoformat() for d in WINDOW]
    assert not (site / "data" / "countries" / "atlantis.json").exists()
    assert sorted(p.name for p in site.iterdir() if p.name.startswith(".")) == []


def test_duckdb_engine_without_the_local_package_fails_clearly(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # On MWAA plugins.zip holds no local/ (and no DuckDB): the duckdb engine must say so, not crash obscurely.
    monkeypatch.setitem(sys.modules, "local.analytics.dashboard", None)
    set_variable(monkeypatch, variable(str(tmp_path / "lake"), "spark_jobs",
                                       analytics={"local_site": str(tmp_path / "site")}))
    with pytest.raises(RuntimeError, match=r"covid19_lake\.analytics\.engine is 'duckdb'.*not part of plugins.zip"):
        tasks.write_dashboard_extracts()


def _athena_type(duck_type: str) -> str:
    kind = str(duck_type).upper()
    if kind in ("BIGINT", "HUGEINT", "INTEGER", "SMALLINT"):
        return "bigint"
    return {"DOUBLE": "double", "DATE": "date", "BOOLEAN": "boolean", "VARCHAR": "varchar",
            "TIMESTAMP": "timestamp"}[kind]


def _athena_cell(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"VarCharValue": "true" if value else "false"}
    return {"VarCharValue": value.isoformat() if isinstance(value, date) else str(value)}


def _queue_results_as_athena_would(con, sql: str) -> None:
    cursor = con.execute(sql)
    names = [c[0] for c in cursor.description]
    types = [_athena_type(c[1]) for c in cursor.description]
    rows = [{"Data": [{"VarCharValue": n} for n in names]}]
    rows += [{"Data": [_athena_cell(v) for v in row]} for row in cursor.fetchall()]
    info = [{"Name": n, "Type": t, "CatalogName": "hive", "SchemaName": "", "TableName": "", "Label": n,
             "Nullable": "UNKNOWN", "CaseSensitive": True} for n, t in zip(names, types, strict=True)]
    athena_backends[DEFAULT_ACCOUNT_ID][REGION].query_results_queue.append(QueryResults(rows, info))


def test_athena_extracts_match_duckdb_and_land_in_the_site_bucket(lake: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    set_variable(monkeypatch, variable(analytics={"engine": "athena", "site_bucket": "covid19-site",
                                                  "site_prefix": "dashboard", "athena_output": "s3://athena-results/"}))
    with mock_aws():
        _project_workgroup()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="covid19-site")
        s3.put_object(Bucket="covid19-site", Key="dashboard/data/countries/atlantis.json", Body=b"{}")
        s3.put_object(Bucket="covid19-site", Key="dashboard/index.html", Body=b"<html>")
        with duck.session(lake) as con:
            for sql in extracts.QUERIES.values():  # the task runs them in this order
                _queue_results_as_athena_would(con, sql)
        meta = tasks.write_dashboard_extracts()
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="covid19-site")["Contents"]}
        germany = s3.get_object(Bucket="covid19-site", Key="dashboard/data/countries/germany.json")
        athena_germany = json.loads(germany["Body"].read())
        assert germany["ContentType"] == "application/json"
        world = s3.get_object(Bucket="covid19-site", Key="dashboard/data/global.json")
        athena_global = json.loads(world["Body"].read())
        submitted = boto3.client("athena", region_name=REGION).list_query_executions()["QueryExecutionIds"]
    local = dashboard.local_extracts(lake)
    assert meta["engine"] == "athena" and len(submitted) == len(extracts.QUERIES)
    assert athena_germany == json.loads(extracts.encode(local["data/countries/germany.json"]))
    assert athena_global == json.loads(extracts.encode(local["data/global.json"]))
    assert "dashboard/data/countries/atlantis.json" not in keys  # stale extract removed
    assert "dashboard/index.html" in keys  # the site itself is left alone
    assert {f"dashboard/{k}" for k in local} <= keys
