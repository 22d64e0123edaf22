"""Runtime settings of the tweets pipeline, read when a task runs (never when a DAG file is parsed)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

CONFIG_VARIABLE = "covid19_lake_tweets"
DEFAULT_QUERY = '(covid OR covid19 OR "covid-19" OR coronavirus OR "sars-cov-2") -is:retweet'
DEFAULT_SCHEDULE = "*/15 * * * *"
# tweepy's own host (it has no setting for another: search.ApiBaseSession); local/x_api.py locally.
DEFAULT_X_API_BASE_URL = "https://api.twitter.com"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
SCHEDULE_ENV = "COVID19_LAKE_TWEETS_SCHEDULE"


def check_base_url(url: str, setting: str = "x_api_base_url") -> str:
    """The X API base URL without a trailing slash; a clear error for anything that is not one."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{setting} must be an http(s) URL like {DEFAULT_X_API_BASE_URL} "
                         f"(optionally with a port and a path prefix), got {url!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        # The bearer token travels in every request's Authorization header.
        raise ValueError(f"{setting} must use https; plain http is accepted only for a loopback host "
                         f"(127.0.0.1, localhost, ::1), got {url!r}")
    return url.rstrip("/")


def ingest_schedule() -> str | None:
    """The DAG's schedule: an environment setting, since Variables are off limits at parse time.
    ``none`` means runs only when triggered (the local stack, whose X API runs on a virtual clock)."""
    value = os.environ.get(SCHEDULE_ENV, DEFAULT_SCHEDULE)
    return None if value.strip().lower() in ("none", "") else value


@dataclass(frozen=True)
class TweetsConfig:
    lake_uri: str
    delivery_stream: str | None = None
    # "firehose" on AWS; "local" writes raw/tweets/ straight into a lake directory (the local stack).
    sink: str = "firehose"
    query: str = DEFAULT_QUERY
    page_size: int = 100
    max_pages: int = 50
    max_rate_limit_wait_seconds: float = 120.0
    initial_lookback_minutes: int = 60
    checkpoint_variable: str = "tweets_ingest_checkpoint"
    x_conn_id: str = "x_api"
    x_api_base_url: str = DEFAULT_X_API_BASE_URL
    aws_conn_id: str = "aws_default"

    def __post_init__(self) -> None:
        if self.sink not in ("firehose", "local"):
            raise ValueError(f"{CONFIG_VARIABLE}.sink must be 'firehose' or 'local', got {self.sink!r}")
        if self.sink == "firehose" and not self.delivery_stream:
            raise ValueError(f"{CONFIG_VARIABLE}.delivery_stream is required when sink is 'firehose'")
        if not 10 <= int(self.page_size) <= 100:
            raise ValueError(f"{CONFIG_VARIABLE}.page_size must be within 10..100 (X API), got {self.page_size}")
        if int(self.max_pages) < 1:
            raise ValueError(f"{CONFIG_VARIABLE}.max_pages must be at least 1, got {self.max_pages}")
        if not self.query.strip():
            raise ValueError(f"{CONFIG_VARIABLE}.query must not be empty")
        object.__setattr__(self, "x_api_base_url",
                           check_base_url(self.x_api_base_url, f"{CONFIG_VARIABLE}.x_api_base_url"))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TweetsConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{CONFIG_VARIABLE} has unknown keys {unknown}; known keys: {sorted(known)}")
        if "lake_uri" not in raw:
            raise ValueError(f"{CONFIG_VARIABLE} must set lake_uri (s3://bucket or a local lake directory)")
        return cls(**raw)


def load_config() -> TweetsConfig:
    from airflow.sdk import Variable

    raw = Variable.get(CONFIG_VARIABLE, deserialize_json=True)
    if not isinstance(raw, dict):
        raise ValueError(f"Airflow Variable {CONFIG_VARIABLE} must hold a JSON object")
    return TweetsConfig.from_mapping(raw)
