"""Defaults and the base-URL check of the tweets code, shared by the Airflow side and the stream container.

The tweets settings themselves are the ``tweets`` section of the ``covid19_lake`` Variable
(covid19_lake.config.TweetsSettings); this module stays free of Airflow and of the rest of the package,
because containers/tweets-stream ships only covid19_lake/tweets/.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_QUERY = '(covid OR covid19 OR "covid-19" OR coronavirus OR "sars-cov-2") -is:retweet'
# tweepy's own host (it has no setting for another: search.ApiBaseSession); local/x_api.py locally.
DEFAULT_X_API_BASE_URL = "https://api.twitter.com"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


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
