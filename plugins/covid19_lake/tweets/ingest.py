"""The `tweets_ingest` task: recent search -> stream-shaped lines -> sink, checkpointing as it goes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from covid19_lake.tweets.checkpoint import CheckpointStore, SearchState, after_page, after_window
from covid19_lake.tweets.firehose import Sink
from covid19_lake.tweets.records import split_search_page, to_line
from covid19_lake.tweets.search import RateLimitDeferred, RecentSearch, Window

log = logging.getLogger(__name__)

# Recent search only indexes tweets ~30 s after they are posted: a first window never ends later than that.
SEARCH_INDEX_DELAY = timedelta(seconds=30)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class IngestResult:
    tweets: int = 0
    pages: int = 0
    windows: int = 0
    deferred_reason: str | None = None
    state: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"tweets": self.tweets, "pages": self.pages, "windows": self.windows,
                "deferred_reason": self.deferred_reason, "state": self.state}


def next_window(state: SearchState, now: datetime, lookback: timedelta) -> Window:
    start_time = None
    if state.since_id is None:
        start_time = state.start_time or _iso(now - lookback)
    return Window(since_id=state.since_id, until_id=state.backlog_until_id, start_time=start_time)


def run_ingest(search: RecentSearch, sink: Sink, store: CheckpointStore, *, max_pages: int,
               initial_lookback: timedelta = timedelta(hours=1),
               clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> IngestResult:
    """Drain the backlog (if any), then fetch everything newer than since_id, within max_pages.

    The checkpoint moves only after the sink accepted a page; a sink error propagates (the task fails and
    Airflow retries it from the last saved state).
    """
    result = IngestResult()
    state = store.load()
    while result.pages < max_pages:
        window = next_window(state, clock(), initial_lookback)
        window_end = _iso(clock() - SEARCH_INDEX_DELAY)
        result.windows += 1
        window_newest: str | None = None
        complete = True
        try:
            for page in search.pages(window):
                result.pages += 1
                tweets = page.tweets
                if tweets:
                    records = [to_line(m) for m in split_search_page(page.body, search.query)]
                    result.tweets += sink.put(records)
                    window_newest = window_newest or str(page.meta.get("newest_id") or tweets[0]["id"])
                    oldest = str(page.meta.get("oldest_id") or tweets[-1]["id"])
                    if page.meta.get("next_token"):
                        state = after_page(state, window_since_id=window.since_id,
                                           window_until_id=window.until_id, window_start_time=window.start_time,
                                           newest_id=window_newest, oldest_id=oldest)
                        store.save(state)
                if page.meta.get("next_token") and result.pages >= max_pages:
                    complete = False
                    result.deferred_reason = f"page budget of {max_pages} reached"
                    break
        except RateLimitDeferred as exc:
            complete = False
            result.deferred_reason = str(exc)
        if not complete:
            log.info("Window left open for the next run: %s", result.deferred_reason)
            break
        drained_backlog = window.until_id is not None
        state = after_window(state, window_until_id=window.until_id, newest_id=window_newest,
                             window_end_time=window_end)
        store.save(state)
        if not drained_backlog:
            break
    result.state = {k: v for k, v in vars(state).items()}
    log.info("Delivered %d tweets from %d pages in %d windows", result.tweets, result.pages, result.windows)
    return result


def build_sink(cfg: Any) -> Sink:
    """Where the tweets go: ``cfg`` is the whole configuration (covid19_lake.config.Config)."""
    from covid19_lake.tweets.firehose import FirehoseBatchWriter, LocalLakeSink

    if cfg.tweets.sink == "local":
        return LocalLakeSink(cfg.lake.local_path)
    from airflow.providers.amazon.aws.hooks.firehose import FirehoseHook

    hook = FirehoseHook(delivery_stream=cfg.tweets.delivery_stream, aws_conn_id=cfg.lake.aws_conn_id)
    return FirehoseBatchWriter(hook.conn, cfg.tweets.delivery_stream)


def ingest_from_airflow() -> dict[str, Any]:
    """Entry point of the Airflow task: everything (config, token, clients) is resolved at run time."""
    import tweepy
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowFailException

    from covid19_lake import config
    from covid19_lake.tweets.checkpoint import VariableCheckpointStore
    from covid19_lake.tweets.search import build_client, credentials_error

    cfg = config.load()
    tweets = cfg.tweets
    token = Connection.get(tweets.x_conn_id).password
    if not token:
        raise ValueError(f"Airflow connection {tweets.x_conn_id!r} has no password (the X API bearer token)")
    search = RecentSearch(build_client(token, tweets.x_api_base_url), tweets.search_query,
                          page_size=tweets.page_size, max_rate_limit_wait=tweets.max_rate_limit_wait_seconds)
    try:
        result = run_ingest(search, build_sink(cfg), VariableCheckpointStore(tweets.checkpoint_variable),
                            max_pages=tweets.max_pages,
                            initial_lookback=timedelta(minutes=tweets.initial_lookback_minutes))
    except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
        # Retrying cannot fix a token: fail now, naming where the token comes from (never the token).
        raise AirflowFailException(credentials_error(exc, f"Airflow connection {tweets.x_conn_id!r} (password)")
                                   ) from exc
    return result.as_dict()
