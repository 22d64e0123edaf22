"""Run-time settings of the analytics DAG: Airflow Variables (or AIRFLOW_VAR_<NAME> environment variables).

Nothing here is read when a DAG file is parsed: templated operator fields use `JINJA[...]`, task code
calls `load()` while it runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {
    "covid19_glue_database": "covid19",
    # The stack's workgroup (named after the project): it enforces encrypted results and a scan cutoff, and
    # it is the only one the MWAA role may use.
    "covid19_athena_workgroup": "covid19-lake",
    # Empty: the workgroup's own result location applies (required if the workgroup does not enforce one).
    "covid19_athena_output": "",
    # "athena" on AWS; "duckdb" in the local stack (embedded engine over the local lake).
    "covid19_analytics_engine": "athena",
    "covid19_site_bucket": "",
    "covid19_site_prefix": "",
    "covid19_local_lake": ".local/lake",
    "covid19_local_site": ".local/site",
}

# Jinja expressions for templated operator fields: rendered per task run, not at parse time.
JINJA = {name: f"{{{{ var.value.get('{name}', '{default}') }}}}" for name, default in DEFAULTS.items()}


def variable(name: str) -> str:
    """An Airflow Variable, else its AIRFLOW_VAR_ environment variable, else the default."""
    default = DEFAULTS[name]
    try:
        from airflow.sdk import Variable

        return str(Variable.get(name, default=default))
    except Exception:  # outside a task (CLI, tests) there may be no Variable backend
        return os.environ.get(f"AIRFLOW_VAR_{name.upper()}", default)


@dataclass(frozen=True)
class Settings:
    database: str
    workgroup: str
    athena_output: str
    engine: str
    site_bucket: str
    site_prefix: str
    local_lake: Path
    local_site: Path

    def check(self) -> Settings:
        if self.engine not in ("athena", "duckdb"):
            raise ValueError(f"covid19_analytics_engine must be 'athena' or 'duckdb', got {self.engine!r}")
        if self.engine == "athena" and not self.site_bucket:
            raise ValueError("covid19_site_bucket is empty: the Athena engine writes the extracts to that "
                             "bucket (the dashboard's S3 static site behind CloudFront)")
        return self


def load() -> Settings:
    return Settings(
        database=variable("covid19_glue_database"),
        workgroup=variable("covid19_athena_workgroup"),
        athena_output=variable("covid19_athena_output"),
        engine=variable("covid19_analytics_engine").lower(),
        site_bucket=variable("covid19_site_bucket"),
        site_prefix=variable("covid19_site_prefix").strip("/"),
        local_lake=Path(variable("covid19_local_lake")),
        local_site=Path(variable("covid19_local_site")),
    ).check()
