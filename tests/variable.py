"""The ``covid19_lake`` Variable for unit tests: the smallest valid one, section overrides merged in."""

from __future__ import annotations

import json
from typing import Any

import pytest

ENV = "AIRFLOW_VAR_COVID19_LAKE"


def variable(lake_uri: str = "s3://lake", spark_jobs_uri: str = "s3://artifacts/spark_jobs",
             **sections: dict[str, Any]) -> dict[str, Any]:
    """A valid Variable: an S3 lake gets a delivery stream and a site bucket, a local one the local sink
    and DuckDB (as the template and the local stack write them); ``sections`` override key by key."""
    local = not lake_uri.startswith("s3://")
    value: dict[str, Any] = {
        "lake": {"uri": lake_uri, "spark_jobs_uri": spark_jobs_uri},
        "tweets": {"sink": "local"} if local else {"sink": "firehose", "delivery_stream": "tweets"},
        "analytics": {"engine": "duckdb"} if local else {"engine": "athena", "site_bucket": "site"},
    }
    for section, values in sections.items():
        value[section] = {**value.get(section, {}), **values}
    return value


def config(lake_uri: str = "s3://lake", spark_jobs_uri: str = "s3://artifacts/spark_jobs", **sections: Any):
    from covid19_lake.config import Config

    return Config.from_mapping(variable(lake_uri, spark_jobs_uri, **sections))


def set_variable(monkeypatch: pytest.MonkeyPatch, value: dict[str, Any]) -> None:
    monkeypatch.setenv(ENV, json.dumps(value))
