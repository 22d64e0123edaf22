"""The JHU source URL from the Variable: https only on AWS; file:// and loopback http:// only with a local lake."""

from __future__ import annotations

import pytest

from covid19_lake.config import JHU_GITHUB_URL
from tests.variable import config

S3 = {"lake_uri": "s3://lake"}
LOCAL = {"lake_uri": "/tmp/lake", "spark_jobs_uri": "spark_jobs"}


def source(base: dict, url: str | None = None) -> str:
    return config(**base, **({"jhu": {"source_url": url}} if url else {})).jhu.source_url


def test_github_is_the_default_and_https_is_accepted_everywhere() -> None:
    assert source(S3) == JHU_GITHUB_URL
    for base in (S3, LOCAL, {**LOCAL, "lake_uri": "file:///tmp/lake"}):
        assert source(base, "https://mirror.example/daily") == "https://mirror.example/daily"


@pytest.mark.parametrize("url", [
    "file:///srv/jhu/daily_reports", "file://localhost/srv/jhu", "http://127.0.0.1:8080/jhu", "http://localhost/jhu",
    "http://[::1]:9000/jhu", "http://127.0.0.2/jhu",
])
def test_a_local_lake_may_read_a_mirror_or_a_loopback_server(url: str) -> None:
    assert source(LOCAL, url) == url


@pytest.mark.parametrize("url", ["file:///srv/jhu/daily_reports", "http://127.0.0.1:8080/jhu"])
def test_on_aws_only_https(url: str) -> None:
    with pytest.raises(ValueError, match=r"covid19_lake\.jhu\.source_url must be https://.*only with a local lake"):
        source(S3, url)


@pytest.mark.parametrize(("url", "problem"), [
    ("file:///etc/hostname?", "query or fragment"),
    ("https://raw.githubusercontent.com/x?token=1", "query or fragment"),
    ("https://raw.githubusercontent.com/x#frag", "query or fragment"),
    ("https://user:secret@mirror.example/jhu", "credentials"),
    ("http://mirror.example/jhu", "must be https://"),
    ("http://10.0.0.5/jhu", "must be https://"),
    ("ftp://mirror.example/jhu", "must be https://"),
    ("file://remote-host/share/jhu", "must be https://"),
    ("/srv/jhu/daily_reports", "must be https://"),
    ("https:///no-host", "must be https://"),
])
def test_anything_else_is_refused_naming_the_key(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=rf"covid19_lake\.jhu\.source_url .*{problem}") as error:
        source(LOCAL, url)
    assert repr(url) in str(error.value)
