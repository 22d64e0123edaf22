"""X API v2 recent search through tweepy, page by page, honouring rate limits without failing the run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
import tweepy

from covid19_lake.tweets.config import DEFAULT_X_API_BASE_URL as DEFAULT_API_BASE_URL
from covid19_lake.tweets.config import check_base_url
from covid19_lake.tweets.records import EXPANSIONS, PLACE_FIELDS, TWEET_FIELDS, USER_FIELDS

log = logging.getLogger(__name__)

class ApiBaseSession(requests.Session):
    """A requests Session that sends what tweepy addresses to https://api.twitter.com to another base URL.

    tweepy hard-codes the host in ``Client.request`` and ``StreamingClient._connect`` and offers no option
    for it, but both send every request through the client's ``session``. Giving the client this session
    moves only the destination: tweepy still builds the route, query string and headers, and parses the
    responses and errors, exactly as it does against the real API.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = check_base_url(base_url)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str) and url.startswith(DEFAULT_API_BASE_URL + "/"):
            url = self.base_url + url[len(DEFAULT_API_BASE_URL):]
        return super().request(method, url, *args, **kwargs)


def point_at(client: Any, base_url: str) -> Any:
    """Send a tweepy Client / StreamingClient's requests to ``base_url`` (a no-op for the real API)."""
    base_url = check_base_url(base_url)
    if base_url != DEFAULT_API_BASE_URL:
        client.session = ApiBaseSession(base_url)
    return client


def quiet_tweepy_debug() -> None:
    """tweepy logs request headers (with the bearer token) at DEBUG: never let that level through."""
    tweepy_log = logging.getLogger("tweepy")
    if tweepy_log.getEffectiveLevel() < logging.INFO:
        tweepy_log.setLevel(logging.INFO)


def build_client(bearer_token: str, base_url: str = DEFAULT_API_BASE_URL) -> tweepy.Client:
    """A client returning raw JSON dicts, so records keep the API's own shape."""
    quiet_tweepy_debug()
    # Rate limits are handled here, with a bounded wait, rather than by tweepy's unbounded sleep.
    client = tweepy.Client(bearer_token=bearer_token, return_type=dict, wait_on_rate_limit=False)
    return point_at(client, base_url)


def credentials_error(exc: tweepy.HTTPException, source: str) -> str:
    """What to tell the operator when the API refuses the token; never includes the token itself."""
    status = exc.response.status_code
    detail = "; ".join(exc.api_messages) or getattr(exc.response, "reason", "") or "no detail"
    if status == 401:
        return (f"X API rejected the bearer token from {source} (HTTP 401: {detail}): set it to the "
                "app-only bearer token of an app in your X developer project")
    return (f"X API refused the request made with the bearer token from {source} (HTTP {status}: {detail}): "
            "the token is valid but its app, project or plan has no access to this endpoint")


@dataclass(frozen=True)
class Window:
    """One search window: tweets newer than since_id (or from start_time) and older than until_id."""

    since_id: str | None = None
    until_id: str | None = None
    start_time: str | None = None


@dataclass
class Page:
    body: dict[str, Any]

    @property
    def tweets(self) -> list[dict[str, Any]]:
        return self.body.get("data") or []

    @property
    def meta(self) -> dict[str, Any]:
        return self.body.get("meta") or {}


class RateLimitDeferred(Exception):
    """The rate limit resets later than this run may wait; the window continues next run."""

    def __init__(self, reset_in: float) -> None:
        super().__init__(f"X API rate limit resets in {reset_in:.0f}s, beyond this run's wait budget")
        self.reset_in = reset_in


@dataclass
class RecentSearch:
    client: tweepy.Client
    query: str
    page_size: int = 100
    max_rate_limit_wait: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time

    def _wait_seconds(self, exc: tweepy.TooManyRequests) -> float:
        reset = getattr(exc, "reset_time", None)
        if reset is None:
            # No reset header: wait a whole 15-minute window, the API's rate-limit period.
            return 15 * 60.0
        return max(0.0, reset - self.now()) + 1.0

    def _request(self, window: Window, next_token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_results": self.page_size,
            "tweet_fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "user_fields": USER_FIELDS,
            "place_fields": PLACE_FIELDS,
        }
        if window.since_id:
            params["since_id"] = window.since_id
        elif window.start_time:
            params["start_time"] = window.start_time
        if window.until_id:
            params["until_id"] = window.until_id
        if next_token:
            params["next_token"] = next_token
        waited = 0.0
        while True:
            try:
                return self.client.search_recent_tweets(self.query, **params)
            except tweepy.TooManyRequests as exc:
                wait = self._wait_seconds(exc)
                if waited + wait > self.max_rate_limit_wait:
                    raise RateLimitDeferred(wait) from exc
                log.warning("X API rate limit reached; waiting %.0fs for the reset", wait)
                self.sleep(wait)
                waited += wait

    def pages(self, window: Window) -> Iterator[Page]:
        """Every page of the window, newest first; partial errors in a 200 page are logged, not fatal."""
        next_token = None
        while True:
            page = Page(self._request(window, next_token))
            for error in page.body.get("errors") or []:
                log.warning("X API partial error: %s %s (%s)", error.get("title"), error.get("detail"),
                            error.get("resource_id") or error.get("value"))
            yield page
            next_token = page.meta.get("next_token")
            if not next_token:
                return
