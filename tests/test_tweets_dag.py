"""dags/tweets_ingest.py: thin, parse-safe wiring, and its task resolving config and token at run time."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

from covid19_lake.tweets import checkpoint, ingest, search
from tests.variable import set_variable, variable

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "tweets_ingest.py"


def _replay_adapter():
    """The replay adapter of test_tweets_search (tests/ is not a package, so load it by path)."""
    spec = importlib.util.spec_from_file_location("_tweets_replay", Path(__file__).with_name("test_tweets_search.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ReplayAdapter


def load_dag_module(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access while parsing the DAG file")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    spec = importlib.util.spec_from_file_location("tweets_ingest_dag", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dag_parses_without_network_or_variables(monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_COVID19_LAKE", raising=False)
    monkeypatch.setenv("COVID19_LAKE_TWEETS_INGEST_SCHEDULE", "*/5 * * * *")
    dag = load_dag_module(monkeypatch).dag
    assert dag.dag_id == "tweets_ingest"
    assert dag.max_active_runs == 1 and not dag.catchup
    assert {"covid19-lake", "tweets"} <= set(dag.tags)
    assert dag.default_args["owner"] == "covid19-lake" and dag.default_args["retries"] >= 1
    assert dag.timetable.expression == "*/5 * * * *"
    assert [t.task_id for t in dag.tasks] == ["fetch_tweets"]


def test_task_reads_config_and_token_at_run_time_and_writes_the_local_lake(monkeypatch, tmp_path):
    lake = tmp_path / "lake"
    set_variable(monkeypatch, variable(f"file://{lake}", "spark_jobs",
                                       tweets={"sink": "local", "search_query": "covid -is:retweet", "max_pages": 5}))
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps({"conn_type": "generic", "password": "tok-from-conn"}))
    adapter = _replay_adapter()("search_page1.json", "search_page2.json")
    real_build = search.build_client

    def build_with_replay(token, base_url):
        assert token == "tok-from-conn" and base_url == "https://api.twitter.com"
        client = real_build(token, base_url)
        client.session.mount("https://", adapter)
        return client

    monkeypatch.setattr(search, "build_client", build_with_replay)
    # Variable.set needs a running task's supervisor; the checkpoint logic itself is covered elsewhere.
    monkeypatch.setattr(checkpoint, "VariableCheckpointStore",
                        lambda key: checkpoint.FileCheckpointStore(tmp_path / f"{key}.json"))

    result = ingest.ingest_from_airflow()

    assert result["tweets"] == 5 and result["state"]["since_id"] == "1366800000000000305"
    files = list((lake / "raw" / "tweets").glob("*/*/*/*/*"))
    assert files and sum(f.read_bytes().count(b"\n") for f in files) == 5
    assert json.loads((tmp_path / "tweets_ingest_checkpoint.json").read_text())["since_id"] == "1366800000000000305"
