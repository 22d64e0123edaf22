"""Configuration: what differs between AWS and the local stack, and nothing else.

Two kinds of settings:
- run-time settings live in one Airflow Variable, ``covid19_lake`` (JSON), read only inside tasks, so
  parsing a DAG file never touches the metadata database or the network. On MWAA the Variable comes
  from Secrets Manager or the UI; locally from ``AIRFLOW_VAR_COVID19_LAKE``.
- parse-time settings (schedules, sensor intervals) come from ``COVID19_LAKE_*`` environment
  variables, because Airflow needs them while building the DAG object.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any
from urllib.parse import urlsplit

VARIABLE_KEY = "covid19_lake"
JHU_GITHUB_URL = (
    "https://raw.githubusercontent.com/CSSEGISandData/COVID-19/master/"
    "csse_covid_19_data/csse_covid_19_daily_reports"
)
JHU_FIRST_DATE = date(2020, 1, 22)
JHU_LAST_DATE = date(2023, 3, 10)

# A transient cluster like the long-running one: EMR 7.x (Spark 3.5, Python 3.11).
DEFAULT_JOB_FLOW_OVERRIDES: dict[str, Any] = {
    "Name": "covid19-lake-transient",
    "ReleaseLabel": "emr-7.9.0",
    "Applications": [{"Name": "Spark"}],
    "Instances": {
        "InstanceGroups": [
            {"Name": "Primary", "Market": "ON_DEMAND", "InstanceRole": "MASTER",
             "InstanceType": "m6g.xlarge", "InstanceCount": 1},
            {"Name": "Core", "Market": "ON_DEMAND", "InstanceRole": "CORE",
             "InstanceType": "m6g.xlarge", "InstanceCount": 2},
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    },
    "JobFlowRole": "covid19-lake-emr-instance-profile",
    "ServiceRole": "covid19-lake-emr-service-role",
    "VisibleToAllUsers": True,
    # The MWAA role may only use clusters carrying this tag (and may only create tagged ones).
    "Tags": [{"Key": "project", "Value": "covid19-lake"}],
}


def check_jhu_source_url(url: str, *, local_lake: bool) -> None:
    """The JHU source is https:// (GitHub by default); with a local lake also file:// or loopback http://.

    Never a query or fragment (``file:///etc/hostname?`` must not read that file), nor credentials.
    """
    key = f"{VARIABLE_KEY}.jhu_source_url"
    allowed = "https://… (GitHub's raw URL by default)" + (
        ", file:///… (an offline mirror) or http://127.0.0.1…/localhost" if local_lake else
        "; file:// and loopback http:// are accepted only with a local lake_uri (the local stack)")
    parts = urlsplit(url)
    if "?" in url or "#" in url:
        raise ValueError(f"{key} must not have a query or fragment, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{key} must not carry credentials, got {url!r}")
    if parts.scheme == "https" and parts.hostname:
        return
    if local_lake and parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return
    if local_lake and parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ValueError(f"{key} must be {allowed}; got {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class LakeConfig:
    """Run-time settings (the ``covid19_lake`` Variable merged over these defaults)."""

    lake_uri: str
    spark_jobs_uri: str
    jhu_source_url: str = JHU_GITHUB_URL
    jhu_publish_window_hours: int = 48
    emr_cluster_mode: str = "existing"  # "existing": find by name; "transient": create, then terminate
    emr_cluster_name: str = "covid19-lake"
    emr_job_flow_overrides: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_JOB_FLOW_OVERRIDES))
    spark_deploy_mode: str = "cluster"
    job_table: str = "covid19-lake-jobs"
    glue_database: str = "covid19"
    claim_timeout_minutes: int = 30
    aws_conn_id: str = "aws_default"
    land_parallelism: int = 16

    def __post_init__(self) -> None:
        if self.emr_cluster_mode not in ("existing", "transient"):
            raise ValueError(
                f"{VARIABLE_KEY}.emr_cluster_mode must be 'existing' or 'transient', got {self.emr_cluster_mode!r}"
            )
        check_jhu_source_url(self.jhu_source_url, local_lake=not self.lake_uri.startswith("s3://"))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> LakeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown keys in Airflow Variable {VARIABLE_KEY!r}: {unknown}; known: {sorted(known)}")
        missing = [name for name in ("lake_uri", "spark_jobs_uri") if not values.get(name)]
        if missing:
            raise ValueError(f"Airflow Variable {VARIABLE_KEY!r} must set {missing}")
        return cls(**values)

    @classmethod
    def load(cls) -> LakeConfig:
        """Read the Variable; only call this inside a running task."""
        from airflow.sdk import Variable

        raw = Variable.get(VARIABLE_KEY, default=None)
        if raw is None:
            raise ValueError(
                f"Airflow Variable {VARIABLE_KEY!r} is not set: it needs at least lake_uri and spark_jobs_uri "
                "(see docs/configuration.md)"
            )
        return cls.from_mapping(json.loads(raw) if isinstance(raw, str) else dict(raw))


# How the EMR step sensors wait (COVID19_LAKE_SENSOR_MODE). "reschedule" is refused: on Airflow 3.3 a
# rescheduled sensor races the scheduler, which can mark it FAILED while its step goes on, whatever the
# poke interval (apache/airflow#71172; seen here with a 1 s interval, reported upstream with 60 s).
SENSOR_MODES = ("deferrable", "poke")


def _flag(env: dict[str, str] | os._Environ[str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class ParseTimeSettings:
    """Settings Airflow needs while parsing DAG files: environment only, no I/O (docs/configuration.md)."""

    # EMR step sensors (wait_for_start, wait_for_end): how they wait and how often they ask EMR.
    sensor_mode: str = "deferrable"
    sensor_poke_seconds: float = 60.0
    # The longest an EMR step may run: the sensors' timeout (deferred: max_attempts x poke interval);
    # a step still running after it is cancelled and its dates recorded FAILED.
    step_timeout_minutes: float = 360.0
    jhu_end_date: date = JHU_LAST_DATE
    # jhu_daily_reports' catchup: off, history belongs to jhu_backfill (one step for a whole range).
    jhu_catchup: bool = False
    land_retry_minutes: float = 30.0
    tweets_hour_poke_seconds: float = 300.0
    tweets_ingest_schedule: str = "*/15 * * * *"
    reconcile_schedule: str = "*/30 * * * *"

    def __post_init__(self) -> None:
        if self.sensor_mode not in SENSOR_MODES:
            raise ValueError(
                f"COVID19_LAKE_SENSOR_MODE must be one of {list(SENSOR_MODES)}, got {self.sensor_mode!r}"
                + (" (reschedule-mode sensors race the Airflow 3.3 scheduler, which then fails them while "
                   "their step goes on: apache/airflow#71172)" if self.sensor_mode == "reschedule" else "")
            )
        if self.sensor_poke_seconds < 1:
            raise ValueError(f"COVID19_LAKE_SENSOR_POKE_SECONDS must be at least 1, got {self.sensor_poke_seconds}")
        if self.step_timeout_minutes <= 0:
            raise ValueError(f"COVID19_LAKE_STEP_TIMEOUT_MINUTES must be positive, got {self.step_timeout_minutes}")

    @property
    def step_timeout_seconds(self) -> float:
        return self.step_timeout_minutes * 60

    @property
    def step_sensor_attempts(self) -> int:
        """How many times a deferred step sensor asks EMR: enough to cover the step's time limit."""
        return max(1, math.ceil(self.step_timeout_seconds / int(self.sensor_poke_seconds)))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ParseTimeSettings:
        env = os.environ if env is None else env
        return cls(
            sensor_mode=env.get("COVID19_LAKE_SENSOR_MODE", cls.sensor_mode),
            sensor_poke_seconds=float(env.get("COVID19_LAKE_SENSOR_POKE_SECONDS", cls.sensor_poke_seconds)),
            step_timeout_minutes=float(env.get("COVID19_LAKE_STEP_TIMEOUT_MINUTES", cls.step_timeout_minutes)),
            jhu_end_date=date.fromisoformat(env.get("COVID19_LAKE_JHU_END_DATE", JHU_LAST_DATE.isoformat())),
            jhu_catchup=_flag(env, "COVID19_LAKE_JHU_CATCHUP", cls.jhu_catchup),
            land_retry_minutes=float(env.get("COVID19_LAKE_LAND_RETRY_MINUTES", cls.land_retry_minutes)),
            tweets_hour_poke_seconds=float(env.get("COVID19_LAKE_TWEETS_HOUR_POKE_SECONDS",
                                                   cls.tweets_hour_poke_seconds)),
            tweets_ingest_schedule=env.get("COVID19_LAKE_TWEETS_INGEST_SCHEDULE", cls.tweets_ingest_schedule),
            reconcile_schedule=env.get("COVID19_LAKE_RECONCILE_SCHEDULE", cls.reconcile_schedule),
        )
