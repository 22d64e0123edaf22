"""Configuration: what differs between AWS and the local stack, and nothing else.

Two kinds of settings, and nothing is read anywhere else:
- run-time settings live in ONE Airflow Variable, ``covid19_lake`` (JSON), with the sections ``lake``,
  ``emr``, ``jhu``, ``tweets`` and ``analytics``. Only tasks read it (``load()``), so parsing a DAG file
  never touches the metadata database, Secrets Manager or the network. On MWAA the stack writes it to
  Secrets Manager (``<project>/airflow/variables/covid19_lake``); the local stack writes the same
  Variable, from the same template, as ``AIRFLOW_VAR_COVID19_LAKE``.
- parse-time settings (schedules, sensor intervals, catchup) are ``COVID19_LAKE_*`` environment
  variables (``ParseTimeSettings.from_env()``), because Airflow needs them while building the DAG object.

Every error names the key path (``covid19_lake.tweets.page_size: ...``, ``COVID19_LAKE_SENSOR_MODE: ...``).
docs/configuration.md is generated from the dataclasses below (``python -m local.config_docs``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from covid19_lake.tweets.config import DEFAULT_QUERY, DEFAULT_X_API_BASE_URL, check_base_url

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

# The Variables and keys of the split configuration this one replaced: named in the error an old
# Variable gets, so an operator knows where each setting went (docs/configuration.md, "Migrating").
RETIRED_VARIABLES = {
    "covid19_lake_tweets": "tweets (its lake_uri and aws_conn_id: lake.uri, lake.aws_conn_id; query: "
                           "tweets.search_query)",
    "covid19_glue_database": "lake.glue_database", "covid19_athena_workgroup": "analytics.athena_workgroup",
    "covid19_athena_output": "analytics.athena_output", "covid19_analytics_engine": "analytics.engine",
    "covid19_site_bucket": "analytics.site_bucket", "covid19_site_prefix": "analytics.site_prefix",
    "covid19_local_lake": "lake.uri (the local lake)", "covid19_local_site": "analytics.local_site",
}
FLAT_KEYS = {
    "lake_uri": "lake.uri", "spark_jobs_uri": "lake.spark_jobs_uri", "job_table": "lake.job_table",
    "glue_database": "lake.glue_database", "claim_timeout_minutes": "lake.claim_timeout_minutes",
    "aws_conn_id": "lake.aws_conn_id", "emr_cluster_mode": "emr.cluster_mode",
    "emr_cluster_name": "emr.cluster_name", "emr_job_flow_overrides": "emr.job_flow_overrides",
    "spark_deploy_mode": "emr.spark_deploy_mode", "jhu_source_url": "jhu.source_url",
    "jhu_publish_window_hours": "jhu.publish_window_hours", "land_parallelism": "jhu.land_parallelism",
}


class ConfigError(ValueError):
    """A setting that cannot be used; the message starts with its key path."""


def _doc(text: str, example: str | None = None) -> dict[str, str]:
    return {"doc": text, **({"example": example} if example else {})}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_jhu_source_url(url: str, *, local_lake: bool) -> None:
    """The JHU source is https:// (GitHub by default); with a local lake also file:// or loopback http://.

    Never a query or fragment (``file:///etc/hostname?`` must not read that file), nor credentials.
    """
    key = f"{VARIABLE_KEY}.jhu.source_url"
    allowed = "https://… (GitHub's raw URL by default)" + (
        ", file:///… (an offline mirror) or http://127.0.0.1…/localhost" if local_lake else
        "; file:// and loopback http:// are accepted only with a local lake.uri (the local stack)")
    parts = urlsplit(url)
    if "?" in url or "#" in url:
        raise ConfigError(f"{key} must not have a query or fragment, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{key} must not carry credentials, got {url!r}")
    if parts.scheme == "https" and parts.hostname:
        return
    if local_lake and parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return
    if local_lake and parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigError(f"{key} must be {allowed}; got {url!r}")


def _one_of(path: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{path}: expected one of {list(choices)}, got {value!r}")


def _at_least(path: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{path}: expected at least {minimum:g}, got {value!r}")


@dataclass(frozen=True)
class LakeSettings:
    """Where the lake, the Spark jobs, the job table and the Glue catalog are."""

    PATH: ClassVar[str] = f"{VARIABLE_KEY}.lake"

    uri: str = field(metadata=_doc("root of the lake: `s3://bucket[/prefix]` on AWS, a `file://` URI (or a "
                                   "directory) locally", "s3://covid19-lake-lake-123456789012"))
    spark_jobs_uri: str = field(metadata=_doc("where `spark_jobs/*.py` and `spark_jobs/reference/` are "
                                              "(`s3://<artifacts>/spark_jobs` on AWS, the repo's `spark_jobs/` "
                                              "locally)"))
    job_table: str = field(default="covid19-lake-jobs", metadata=_doc("the DynamoDB job table"))
    glue_database: str = field(default="covid19", metadata=_doc("the Glue database of the tables (and of the "
                                                                "analytics views)"))
    claim_timeout_minutes: int = field(default=30, metadata=_doc(
        "when a claim that never got an EMR step stops blocking other runs"))
    aws_conn_id: str = field(default="aws_default", metadata=_doc("the Airflow connection of every AWS call"))

    def __post_init__(self) -> None:
        for name in ("uri", "spark_jobs_uri", "job_table", "glue_database", "aws_conn_id"):
            if not getattr(self, name):
                raise ConfigError(f"{self.PATH}.{name}: must not be empty")
        if self.uri.endswith("/"):
            raise ConfigError(f"{self.PATH}.uri: no trailing slash, got {self.uri!r}")
        _at_least(f"{self.PATH}.claim_timeout_minutes", self.claim_timeout_minutes, 1)

    @property
    def is_local(self) -> bool:
        return not self.uri.startswith(("s3://", "s3a://"))

    @property
    def local_path(self) -> Path:
        """The local lake directory (``file:///x`` or a plain path)."""
        if not self.is_local:
            raise ConfigError(f"{self.PATH}.uri: a local lake is needed here, got {self.uri!r}")
        return Path(urlsplit(self.uri).path) if self.uri.startswith("file://") else Path(self.uri)


@dataclass(frozen=True)
class EmrSettings:
    """The EMR cluster the Spark steps run on."""

    PATH: ClassVar[str] = f"{VARIABLE_KEY}.emr"

    cluster_mode: str = field(default="existing", metadata=_doc(
        "`existing`: find the cluster named `cluster_name`; `transient`: create one per run from "
        "`job_flow_overrides` and terminate it after (the stack's choice on AWS)"))
    cluster_name: str = field(default="covid19-lake", metadata=_doc("the cluster `existing` looks for"))
    job_flow_overrides: dict[str, Any] = field(
        default_factory=lambda: json.loads(json.dumps(DEFAULT_JOB_FLOW_OVERRIDES)),
        metadata=_doc("`RunJobFlow` arguments of transient clusters (default: EMR 7.9.0, Spark, 1 primary + 2 "
                      "core m6g.xlarge, tagged `project=covid19-lake`); keep the `project` tag: on AWS the MWAA "
                      "role may create and use only clusters tagged `project=<project>`"))
    spark_deploy_mode: str = field(default="cluster", metadata=_doc("`spark-submit --deploy-mode`: `cluster` on "
                                                                    "EMR, `client` in the local stack"))

    def __post_init__(self) -> None:
        _one_of(f"{self.PATH}.cluster_mode", self.cluster_mode, ("existing", "transient"))
        _one_of(f"{self.PATH}.spark_deploy_mode", self.spark_deploy_mode, ("cluster", "client"))
        if not self.cluster_name:
            raise ConfigError(f"{self.PATH}.cluster_name: must not be empty")


@dataclass(frozen=True)
class JhuSettings:
    """The JHU CSSE daily reports: where they come from, how long to wait for one."""

    PATH: ClassVar[str] = f"{VARIABLE_KEY}.jhu"

    source_url: str = field(default=JHU_GITHUB_URL, metadata=_doc(
        "the folder of `MM-DD-YYYY.csv` files (default: GitHub's raw URL of `csse_covid_19_daily_reports`); "
        "`https://` only; with a local `lake.uri` also `file:///…` (an offline mirror) or loopback `http://`; "
        "never a query, fragment or credentials"))
    publish_window_hours: int = field(default=48, metadata=_doc(
        "how long after the end of a report date the daily DAG keeps waiting for its file"))
    land_parallelism: int = field(default=16, metadata=_doc("concurrent downloads in `jhu_backfill`"))

    def __post_init__(self) -> None:
        _at_least(f"{self.PATH}.publish_window_hours", self.publish_window_hours, 0)
        _at_least(f"{self.PATH}.land_parallelism", self.land_parallelism, 1)


@dataclass(frozen=True)
class TweetsSettings:
    """What tweets_ingest asks the X API recent search for, and where the tweets go."""

    PATH: ClassVar[str] = f"{VARIABLE_KEY}.tweets"

    sink: str = field(default="firehose", metadata=_doc(
        "`firehose` (AWS and the local stack); `local` writes `raw/tweets/` straight into a local lake"))
    delivery_stream: str = field(default="", metadata=_doc("the Firehose delivery stream; required with "
                                                           "`sink` `firehose`"))
    search_query: str = field(default=DEFAULT_QUERY, metadata=_doc("the X API recent-search query"))
    page_size: int = field(default=100, metadata=_doc("tweets per page, 10..100 (X API)"))
    max_pages: int = field(default=50, metadata=_doc("pages per run at most"))
    max_rate_limit_wait_seconds: float = field(default=120.0, metadata=_doc(
        "the longest a run sleeps on an X rate limit before it gives up"))
    initial_lookback_minutes: int = field(default=60, metadata=_doc("how far back the first run searches"))
    checkpoint_variable: str = field(default="tweets_ingest_checkpoint", metadata=_doc(
        "the Airflow Variable where the task keeps its since_id (state written by the task, not configuration)"))
    x_conn_id: str = field(default="x_api", metadata=_doc("the Airflow connection whose password is the X "
                                                          "bearer token"))
    x_api_base_url: str = field(default=DEFAULT_X_API_BASE_URL, metadata=_doc(
        "the X API; `https` (plain `http` only for a loopback host: the local stand-in)"))

    def __post_init__(self) -> None:
        _one_of(f"{self.PATH}.sink", self.sink, ("firehose", "local"))
        if self.sink == "firehose" and not self.delivery_stream:
            raise ConfigError(f"{self.PATH}.delivery_stream: required when sink is 'firehose'")
        if not 10 <= self.page_size <= 100:
            raise ConfigError(f"{self.PATH}.page_size: expected 10..100 (X API), got {self.page_size}")
        _at_least(f"{self.PATH}.max_pages", self.max_pages, 1)
        _at_least(f"{self.PATH}.max_rate_limit_wait_seconds", self.max_rate_limit_wait_seconds, 0)
        _at_least(f"{self.PATH}.initial_lookback_minutes", self.initial_lookback_minutes, 1)
        if not self.search_query.strip():
            raise ConfigError(f"{self.PATH}.search_query: must not be empty")
        for name in ("checkpoint_variable", "x_conn_id"):
            if not getattr(self, name):
                raise ConfigError(f"{self.PATH}.{name}: must not be empty")
        try:
            url = check_base_url(self.x_api_base_url, f"{self.PATH}.x_api_base_url")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        object.__setattr__(self, "x_api_base_url", url)


@dataclass(frozen=True)
class AnalyticsSettings:
    """The analytics DAG: Athena views and the dashboard's extracts."""

    PATH: ClassVar[str] = f"{VARIABLE_KEY}.analytics"

    engine: str = field(default="athena", metadata=_doc(
        "`athena` on AWS; `duckdb` in the local stack (the embedded engine over the local lake)"))
    athena_workgroup: str = field(default="covid19-lake", metadata=_doc(
        "the Athena workgroup (the stack's, named after the project: the only one the MWAA role may use)"))
    athena_output: str = field(default="", metadata=_doc(
        "`s3://…/` query result location; empty: the workgroup's (the stack's enforces one)"))
    site_bucket: str = field(default="", metadata=_doc(
        "the dashboard site's bucket, where the extracts go; required with `engine` `athena`"))
    site_prefix: str = field(default="", metadata=_doc("key prefix of the site in `site_bucket`"))
    local_site: str = field(default=".local/site", metadata=_doc(
        "`duckdb` engine: the site folder the extracts are written into"))

    def __post_init__(self) -> None:
        _one_of(f"{self.PATH}.engine", self.engine, ("athena", "duckdb"))
        if self.engine == "athena" and not self.site_bucket:
            raise ConfigError(f"{self.PATH}.site_bucket: required when engine is 'athena' (the extracts go to the "
                              "dashboard's S3 site behind CloudFront)")
        if not self.athena_workgroup:
            raise ConfigError(f"{self.PATH}.athena_workgroup: must not be empty")
        if self.athena_output and not self.athena_output.startswith("s3://"):
            raise ConfigError(f"{self.PATH}.athena_output: expected s3://…/ or empty, got {self.athena_output!r}")
        object.__setattr__(self, "site_prefix", self.site_prefix.strip("/"))


@dataclass(frozen=True)
class Config:
    """The ``covid19_lake`` Variable: one section per part of the pipeline."""

    PATH: ClassVar[str] = VARIABLE_KEY

    lake: LakeSettings
    emr: EmrSettings = field(default_factory=EmrSettings)
    jhu: JhuSettings = field(default_factory=JhuSettings)
    tweets: TweetsSettings = field(default_factory=TweetsSettings)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)

    def __post_init__(self) -> None:
        check_jhu_source_url(self.jhu.source_url, local_lake=self.lake.is_local)
        if self.tweets.sink == "local" and not self.lake.is_local:
            raise ConfigError(f"{TweetsSettings.PATH}.sink: 'local' needs a local lake.uri, got {self.lake.uri!r}")
        if self.analytics.engine == "duckdb" and not self.lake.is_local:
            raise ConfigError(f"{AnalyticsSettings.PATH}.engine: 'duckdb' reads a local lake; lake.uri is "
                              f"{self.lake.uri!r}")

    @classmethod
    def from_mapping(cls, raw: Any) -> Config:
        """The Variable's JSON object, validated; unknown or mistyped keys are errors naming their path."""
        if isinstance(raw, Mapping):
            flat = sorted(set(raw) & set(FLAT_KEYS))
            if flat:
                moved = ", ".join(f"{k} -> {FLAT_KEYS[k]}" for k in flat)
                raise ConfigError(
                    f"{VARIABLE_KEY}: {flat} are keys of the old flat format; the Variable now has the sections "
                    f"lake, emr, jhu, tweets and analytics ({moved}). The Variables "
                    f"{', '.join(RETIRED_VARIABLES)} are gone too: their settings are the sections tweets and "
                    "analytics (docs/configuration.md)")
        return _build(cls, raw, VARIABLE_KEY)

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{VARIABLE_KEY}: not valid JSON ({error})") from None
        return cls.from_mapping(raw)

    def to_mapping(self) -> dict[str, Any]:
        return _unbuild(self)


def _type_name(kind: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            dict: "a JSON object"}.get(kind, getattr(kind, "__name__", str(kind)))


def _coerce(kind: Any, value: Any, path: str) -> Any:
    if is_dataclass(kind):
        return _build(kind, value, path)
    origin = typing.get_origin(kind) or kind
    ok = {
        str: isinstance(value, str),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        dict: isinstance(value, dict),
    }.get(origin)
    if ok is None:  # pragma: no cover - a field type this loader does not know is a bug here
        raise TypeError(f"{path}: unsupported field type {kind!r}")
    if not ok:
        raise ConfigError(f"{path}: expected {_type_name(origin)}, got {json.dumps(value)}")
    return float(value) if origin is float else value


def _build(cls: Any, raw: Any, path: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a JSON object, got {json.dumps(raw) if raw is not None else 'null'}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown key (known in {path}: {', '.join(known)})")
    values = {}
    for f in fields(cls):
        if f.name in raw:
            values[f.name] = _coerce(hints[f.name], raw[f.name], f"{path}.{f.name}")
        elif f.default is MISSING and f.default_factory is MISSING:
            doc = f.metadata.get("doc", "")
            raise ConfigError(f"{path}.{f.name}: required ({doc})" if doc else f"{path}.{f.name}: required")
    return cls(**values)


def _unbuild(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _unbuild(getattr(value, f.name)) for f in fields(value)}
    return value


def load() -> Config:
    """Read and validate the Variable. Only call this inside a running task (or a template rendering one)."""
    from airflow.sdk import Variable

    raw = Variable.get(VARIABLE_KEY, default=None)
    if raw is None:
        raise ConfigError(
            f"Airflow Variable {VARIABLE_KEY!r} is not set: it needs at least lake.uri and lake.spark_jobs_uri "
            f"(docs/configuration.md). {', '.join(RETIRED_VARIABLES)} are no longer read: their settings are "
            "its sections tweets and analytics")
    return Config.from_json(raw) if isinstance(raw, str) else Config.from_mapping(raw)


# -- parse time -------------------------------------------------------------------------------------------

# How the EMR step sensors wait (COVID19_LAKE_SENSOR_MODE). "reschedule" is refused: on Airflow 3.3 a
# rescheduled sensor races the scheduler, which can mark it FAILED while its step goes on, whatever the
# poke interval (apache/airflow#71172; seen here with a 1 s interval, reported upstream with 60 s).
SENSOR_MODES = ("deferrable", "poke")
ENV_PREFIX = "COVID19_LAKE_"
# Environment names no longer read, and what replaced them: set, they fail the DAG import loudly.
RETIRED_ENV = {"COVID19_LAKE_TWEETS_SCHEDULE": "COVID19_LAKE_TWEETS_INGEST_SCHEDULE"}


def _env(name: str, text: str) -> dict[str, str]:
    return {"env": f"{ENV_PREFIX}{name}", "doc": text}


@dataclass(frozen=True)
class ParseTimeSettings:
    """Settings Airflow needs while parsing DAG files: environment only, no I/O (docs/configuration.md)."""

    sensor_mode: str = field(default="deferrable", metadata=_env(
        "SENSOR_MODE", "how the EMR step sensors wait: `deferrable` (in the triggerer, no worker slot held; MWAA, "
        "docker-compose, `make airflow`, and `dag.test()` which runs the trigger in process) or `poke` (in their "
        "worker). `reschedule` is refused: see below"))
    sensor_poke_seconds: float = field(default=60.0, metadata=_env(
        "SENSOR_POKE_SECONDS", "how often the EMR step sensors ask EMR (1 locally); at least 1"))
    step_timeout_minutes: float = field(default=360.0, metadata=_env(
        "STEP_TIMEOUT_MINUTES", "the longest an EMR step may run: the step sensors' timeout, and deferred their "
        "`max_attempts` = ceil(timeout / poke interval), so the provider's default of 60 attempts never cuts a "
        "long step short. A step still running after it is cancelled and its dates recorded FAILED"))
    jhu_end_date: date = field(default=JHU_LAST_DATE, metadata=_env("JHU_END_DATE", "`end_date` of "
                                                                    "`jhu_daily_reports`"))
    jhu_catchup: bool = field(default=False, metadata=_env(
        "JHU_CATCHUP", "`catchup` of `jhu_daily_reports`: off, so unpausing it never starts a step per past day "
        "(history belongs to `jhu_backfill`)"))
    land_retry_minutes: float = field(default=30.0, metadata=_env(
        "LAND_RETRY_MINUTES", "how often the daily DAG looks for a file JHU has not published yet"))
    tweets_hour_poke_seconds: float = field(default=300.0, metadata=_env(
        "TWEETS_HOUR_POKE_SECONDS", "how often `tweets_process` looks for the hour's raw tweets (5 locally)"))
    tweets_ingest_schedule: str | None = field(default="*/15 * * * *", metadata=_env(
        "TWEETS_INGEST_SCHEDULE", "schedule of `tweets_ingest` (cron); `none`: only when triggered (the local "
        "stack, whose X API stand-in runs on a virtual clock)"))
    tweets_process_schedule: str | None = field(default="@hourly", metadata=_env(
        "TWEETS_PROCESS_SCHEDULE", "schedule of `tweets_process` (cron; each run processes its data interval's "
        "arrival hour); `none`: only when triggered with `start_hour`/`end_hour` (the local stack, whose tweets "
        "arrive on the stand-in's virtual clock: a run for the current hour would find none and poke for 2 h)"))
    weekly_schedule: str | None = field(default="0 0 * * 1", metadata=_env(
        "WEEKLY_SCHEDULE", "schedule of `weekly_tweets_vs_cases` (cron; each run joins its data interval's week); "
        "`none`: only when triggered with `start_week`/`end_week` (the local stack)"))
    reconcile_schedule: str = field(default="*/30 * * * *", metadata=_env(
        "RECONCILE_SCHEDULE", "schedule of `job_records_reconcile` (cron; it is unpaused on creation)"))

    def __post_init__(self) -> None:
        env = {f.name: f.metadata["env"] for f in fields(self)}
        if self.sensor_mode not in SENSOR_MODES:
            raise ConfigError(
                f"{env['sensor_mode']}: expected one of {list(SENSOR_MODES)}, got {self.sensor_mode!r}"
                + (" (reschedule-mode sensors race the Airflow 3.3 scheduler, which then fails them while "
                   "their step goes on: apache/airflow#71172)" if self.sensor_mode == "reschedule" else "")
            )
        _at_least(env["sensor_poke_seconds"], self.sensor_poke_seconds, 1)
        if self.step_timeout_minutes <= 0:
            raise ConfigError(f"{env['step_timeout_minutes']}: expected a positive number, "
                              f"got {self.step_timeout_minutes}")
        _at_least(env["land_retry_minutes"], self.land_retry_minutes, 0.01)
        _at_least(env["tweets_hour_poke_seconds"], self.tweets_hour_poke_seconds, 1)
        if not self.reconcile_schedule.strip():
            raise ConfigError(f"{env['reconcile_schedule']}: must not be empty")

    @property
    def step_timeout_seconds(self) -> float:
        return self.step_timeout_minutes * 60

    @property
    def step_sensor_attempts(self) -> int:
        """How many times a deferred step sensor asks EMR: enough to cover the step's time limit."""
        return max(1, math.ceil(self.step_timeout_seconds / int(self.sensor_poke_seconds)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ParseTimeSettings:
        env = os.environ if env is None else env
        for old, new in RETIRED_ENV.items():
            if old in env:
                raise ConfigError(f"{old} is no longer read: it is called {new} now")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw.strip():
                values[f.name] = _parse_env(hints[f.name], raw, f.metadata["env"])
        return cls(**values)


def _parse_env(kind: Any, raw: str, name: str) -> Any:
    value = raw.strip()
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if kind is date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a date (YYYY-MM-DD), got {raw!r}") from None
    if kind == str | None:
        return None if value.lower() == "none" else value
    return value
