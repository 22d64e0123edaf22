"""The one configuration: the ``covid19_lake`` Variable's loader, every error naming its key path."""

from __future__ import annotations

import json

import pytest

from covid19_lake import config as config_module
from covid19_lake.config import DEFAULT_JOB_FLOW_OVERRIDES, JHU_GITHUB_URL, Config, ConfigError
from tests.variable import ENV, variable


def test_a_full_variable_loads_into_frozen_sections() -> None:
    cfg = Config.from_mapping({
        "lake": {"uri": "s3://lake/prefix", "spark_jobs_uri": "s3://artifacts/spark_jobs", "job_table": "jobs",
                 "glue_database": "covid19_it", "claim_timeout_minutes": 10, "aws_conn_id": "aws_lake"},
        "emr": {"cluster_mode": "transient", "cluster_name": "c", "job_flow_overrides": {"Name": "t"},
                "spark_deploy_mode": "cluster"},
        "jhu": {"source_url": "https://mirror.example/daily", "publish_window_hours": 24, "land_parallelism": 4},
        "tweets": {"sink": "firehose", "delivery_stream": "tweets", "search_query": "covid", "page_size": 10,
                   "max_pages": 2, "max_rate_limit_wait_seconds": 5, "initial_lookback_minutes": 15,
                   "checkpoint_variable": "cp", "x_conn_id": "x", "x_api_base_url": "https://api.x.com/"},
        "analytics": {"engine": "athena", "athena_workgroup": "wg", "athena_output": "s3://results/",
                      "site_bucket": "site", "site_prefix": "/dashboard/", "local_site": "/tmp/site"},
    })
    assert cfg.lake.uri == "s3://lake/prefix" and cfg.lake.aws_conn_id == "aws_lake" and not cfg.lake.is_local
    assert cfg.emr.job_flow_overrides == {"Name": "t"}
    assert cfg.tweets.max_rate_limit_wait_seconds == 5.0 and isinstance(cfg.tweets.max_rate_limit_wait_seconds, float)
    assert cfg.tweets.x_api_base_url == "https://api.x.com"  # normalized
    assert cfg.analytics.site_prefix == "dashboard"
    with pytest.raises(AttributeError):
        cfg.lake.uri = "s3://other"  # type: ignore[misc]
    assert Config.from_mapping(cfg.to_mapping()) == cfg


def test_defaults_fill_everything_but_where_things_are() -> None:
    cfg = Config.from_mapping(variable("s3://lake"))
    assert (cfg.lake.job_table, cfg.lake.glue_database, cfg.emr.cluster_mode) == ("covid19-lake-jobs", "covid19",
                                                                                 "existing")
    assert cfg.jhu.source_url == JHU_GITHUB_URL and cfg.analytics.athena_workgroup == "covid19-lake"
    assert cfg.emr.job_flow_overrides == DEFAULT_JOB_FLOW_OVERRIDES
    assert cfg.emr.job_flow_overrides is not DEFAULT_JOB_FLOW_OVERRIDES  # a copy per load
    local = Config.from_mapping(variable("file:///tmp/lake", "/repo/spark_jobs"))
    assert local.lake.is_local and str(local.lake.local_path) == "/tmp/lake"


def _error(value: object) -> str:
    with pytest.raises(ConfigError) as error:
        Config.from_mapping(value)
    return str(error.value)


@pytest.mark.parametrize(("value", "message"), [
    ({}, "covid19_lake.lake: required"),
    ({"lake": {"uri": "s3://lake"}}, "covid19_lake.lake.spark_jobs_uri: required (where `spark_jobs/*.py`"),
    ({**variable(), "lakes": {}}, "covid19_lake.lakes: unknown key (known in covid19_lake: lake, emr, jhu, tweets, "
                                  "analytics)"),
    (variable(tweets={"querry": "covid"}), "covid19_lake.tweets.querry: unknown key (known in covid19_lake.tweets: "
                                           "sink, delivery_stream, search_query"),
])
def test_missing_and_unknown_keys_are_named(value: object, message: str) -> None:
    assert _error(value).startswith(message)


@pytest.mark.parametrize(("value", "message"), [
    ([], "covid19_lake: expected a JSON object, got []"),
    ({**variable(), "emr": "transient"}, 'covid19_lake.emr: expected a JSON object, got "transient"'),
    ({**variable(), "jhu": None}, "covid19_lake.jhu: expected a JSON object, got null"),
    (variable(tweets={"page_size": "100"}), 'covid19_lake.tweets.page_size: expected an integer, got "100"'),
    (variable(tweets={"page_size": True}), "covid19_lake.tweets.page_size: expected an integer, got true"),
    (variable(jhu={"land_parallelism": 2.5}), "covid19_lake.jhu.land_parallelism: expected an integer, got 2.5"),
    (variable(tweets={"search_query": 7}), "covid19_lake.tweets.search_query: expected a string, got 7"),
    (variable(tweets={"max_rate_limit_wait_seconds": "1m"}),
     'covid19_lake.tweets.max_rate_limit_wait_seconds: expected a number, got "1m"'),
    (variable(emr={"job_flow_overrides": ["Name"]}),
     'covid19_lake.emr.job_flow_overrides: expected a JSON object, got ["Name"]'),
])
def test_mistyped_values_are_named_with_what_was_expected(value: object, message: str) -> None:
    assert _error(value) == message


@pytest.mark.parametrize(("value", "message"), [
    (variable(tweets={"search_query": "  "}), "covid19_lake.tweets.search_query: must not be empty"),
    (variable(tweets={"page_size": 500}), "covid19_lake.tweets.page_size: expected 10..100 (X API), got 500"),
    (variable(tweets={"max_pages": 0}), "covid19_lake.tweets.max_pages: expected at least 1, got 0"),
    (variable(tweets={"delivery_stream": ""}), "covid19_lake.tweets.delivery_stream: required when sink is 'firehose'"),
    (variable(tweets={"sink": "kafka"}),
     "covid19_lake.tweets.sink: expected one of ['firehose', 'local'], got 'kafka'"),
    (variable(tweets={"x_api_base_url": "http://api.x.com"}), "covid19_lake.tweets.x_api_base_url must use https"),
    (variable(tweets={"sink": "local"}), "covid19_lake.tweets.sink: 'local' needs a local lake.uri"),
    (variable(emr={"cluster_mode": "maybe"}),
     "covid19_lake.emr.cluster_mode: expected one of ['existing', 'transient'], got 'maybe'"),
    (variable(emr={"spark_deploy_mode": "yarn"}), "covid19_lake.emr.spark_deploy_mode: expected one of"),
    (variable(lake={"uri": "s3://lake/"}), "covid19_lake.lake.uri: no trailing slash"),
    (variable(lake={"job_table": ""}), "covid19_lake.lake.job_table: must not be empty"),
    (variable(lake={"claim_timeout_minutes": 0}), "covid19_lake.lake.claim_timeout_minutes: expected at least 1"),
    (variable(jhu={"source_url": "file:///etc/hostname?"}), "covid19_lake.jhu.source_url must not have a query"),
    (variable(analytics={"site_bucket": ""}), "covid19_lake.analytics.site_bucket: required when engine is 'athena'"),
    (variable(analytics={"engine": "duckdb"}), "covid19_lake.analytics.engine: 'duckdb' reads a local lake"),
    (variable(analytics={"engine": "spark"}), "covid19_lake.analytics.engine: expected one of ['athena', 'duckdb']"),
    (variable(analytics={"athena_output": "results/"}), "covid19_lake.analytics.athena_output: expected s3://"),
])
def test_invalid_values_are_named(value: object, message: str) -> None:
    assert _error(value).startswith(message)


def test_the_old_flat_variable_is_refused_saying_where_each_key_went() -> None:
    message = _error({"lake_uri": "s3://lake", "spark_jobs_uri": "s3://a/spark_jobs", "emr_cluster_mode": "transient"})
    assert message.startswith("covid19_lake: ['emr_cluster_mode', 'lake_uri', 'spark_jobs_uri'] are keys of the "
                              "old flat format")
    assert "lake_uri -> lake.uri" in message and "emr_cluster_mode -> emr.cluster_mode" in message
    assert "covid19_lake_tweets" in message and "covid19_site_bucket" in message


def test_load_reads_the_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, json.dumps(variable(tweets={"search_query": "covid"})))
    assert config_module.load().tweets.search_query == "covid"
    monkeypatch.setenv(ENV, "{not json")
    with pytest.raises(ConfigError, match=r"^covid19_lake: not valid JSON"):
        config_module.load()
    monkeypatch.delenv(ENV)
    with pytest.raises(ConfigError, match=r"'covid19_lake' is not set.*covid19_lake_tweets.* no longer read"):
        config_module.load()


def test_nothing_else_reads_configuration() -> None:
    """Variable.get and os.environ only in the loader (and the tweets checkpoint, state the task writes)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    allowed = {"plugins/covid19_lake/config.py", "plugins/covid19_lake/tweets/checkpoint.py",
               # The stream producer is a container entry point (containers/tweets-stream), not Airflow.
               "plugins/covid19_lake/tweets/stream.py"}
    offenders = []
    for path in [*root.glob("plugins/**/*.py"), *root.glob("dags/*.py")]:
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(root).as_posix()
        if name not in allowed and any(s in text for s in ("Variable.get", "os.environ", "getenv", "var.value",
                                                            "var.json")):
            offenders.append(name)
    assert offenders == []
