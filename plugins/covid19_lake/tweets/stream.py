"""Filtered-stream producer: a long-running command that sends every matching tweet to the same sink.

    python -m covid19_lake.tweets.stream

Settings come from the environment (the container's task definition):
  X_BEARER_TOKEN or X_BEARER_TOKEN_SECRET_ID   the token, or the Secrets Manager secret holding the
                                                Airflow connection `x_api` (JSON or URI; password = token)
  TWEETS_STREAM_RULES   JSON list of {"value": ..., "tag": ...}; the stream's rules are made to match it
  FIREHOSE_STREAM       delivery stream name (or LAKE_DIR to write raw/tweets/ into a local lake directory)
  FLUSH_SECONDS         longest a tweet waits in the buffer (default 30)
  X_API_BASE_URL        where the X API is (default https://api.twitter.com; a loopback stand-in locally)
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import tweepy

from covid19_lake.tweets.firehose import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Sink
from covid19_lake.tweets.records import (
    EXPANSIONS,
    PLACE_FIELDS,
    TWEET_FIELDS,
    USER_FIELDS,
    stream_line_to_record,
)
from covid19_lake.tweets.search import DEFAULT_API_BASE_URL, credentials_error, point_at, quiet_tweepy_debug

log = logging.getLogger(__name__)


def parse_rules(text: str) -> list[dict[str, str]]:
    rules = json.loads(text)
    if not isinstance(rules, list) or not all(isinstance(r, dict) and r.get("value") for r in rules):
        raise ValueError('TWEETS_STREAM_RULES must be a JSON list of {"value": ..., "tag": ...} objects')
    return [{"value": r["value"], "tag": r.get("tag") or r["value"][:50]} for r in rules]


def sync_rules(client: tweepy.StreamingClient, wanted: Sequence[dict[str, str]]) -> dict[str, int]:
    """Make the stream's rules exactly `wanted` (matched on value and tag), touching only what differs."""
    current = (client.get_rules() or {}).get("data") or []
    wanted_keys = {(r["value"], r["tag"]) for r in wanted}
    current_keys = {(r["value"], r.get("tag")) for r in current}
    stale = [r["id"] for r in current if (r["value"], r.get("tag")) not in wanted_keys]
    missing = [tweepy.StreamRule(value=v, tag=t) for v, t in sorted(wanted_keys - current_keys)]
    if stale:
        client.delete_rules(stale)
    if missing:
        response = client.add_rules(missing) or {}
        errors = response.get("errors") or []
        if errors:
            raise ValueError(f"X API rejected stream rules: {errors}")
    return {"deleted": len(stale), "added": len(missing)}


class StreamCredentialsError(RuntimeError):
    """The API refused the token: reconnecting cannot help."""


class LakeStreamingClient(tweepy.StreamingClient):
    """Buffers stream lines and flushes them to the sink by count, size or age."""

    def __init__(self, bearer_token: str, sink: Sink, *, flush_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, base_url: str = DEFAULT_API_BASE_URL,
                 token_source: str = "X_BEARER_TOKEN", **kwargs: Any) -> None:
        super().__init__(bearer_token, return_type=dict, **kwargs)
        point_at(self, base_url)
        self.sink = sink
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.token_source = token_source
        self.buffer: list[bytes] = []
        self.buffer_bytes = 0
        self.last_flush = clock()
        self.delivered = 0
        # What the stream sent besides tweets, for the logs and the operator.
        self.keep_alives = 0
        self.undecodable_lines = 0
        self.frames_without_tweet = 0
        self.fatal_error: str | None = None

    def flush(self) -> None:
        if self.buffer:
            # The buffer is cleared only once the sink accepted everything: a failure keeps it for later.
            self.delivered += self.sink.put(self.buffer)
            self.buffer, self.buffer_bytes = [], 0
        self.last_flush = self.clock()

    def _maybe_flush(self) -> None:
        if (len(self.buffer) >= MAX_BATCH_RECORDS or self.buffer_bytes >= MAX_BATCH_BYTES // 2
                or self.clock() - self.last_flush >= self.flush_seconds):
            self.flush()

    def on_data(self, raw_data: bytes) -> None:
        try:
            record = stream_line_to_record(raw_data)
        except (ValueError, UnicodeDecodeError):
            # Kept as it came: the Spark job moves undecodable lines to quarantine with a reason.
            log.warning("Undecodable stream line (%d bytes) forwarded for quarantine", len(raw_data))
            self.undecodable_lines += 1
            record = raw_data.rstrip(b"\r\n") + b"\n"
        if record is None:
            self.frames_without_tweet += 1
            log.error("Stream message without a tweet: %s", raw_data[:500])
        else:
            self.buffer.append(record)
            self.buffer_bytes += len(record)
        self._maybe_flush()

    def on_keep_alive(self) -> None:
        self.keep_alives += 1
        self._maybe_flush()

    def on_request_error(self, status_code: int) -> None:
        if status_code in (401, 403):
            # tweepy would retry forever with backoff; a refused token never gets better by waiting.
            verb = "rejected" if status_code == 401 else "has no access with"
            self.fatal_error = (f"X API filtered stream answered HTTP {status_code}: it {verb} the bearer token "
                                f"from {self.token_source}")
            log.error("%s; not reconnecting", self.fatal_error)
            self.disconnect()
            return
        log.error("Filtered stream answered HTTP %s; tweepy reconnects with backoff", status_code)

    def on_exception(self, exception: Exception) -> None:
        log.exception("Filtered stream stopped: %s", exception)


def token_source(environ: dict[str, str]) -> str:
    """Where the token comes from, for error messages (never the token itself)."""
    if environ.get("X_BEARER_TOKEN"):
        return "X_BEARER_TOKEN"
    return f"secret {environ.get('X_BEARER_TOKEN_SECRET_ID')} (the Airflow connection's password)"


def bearer_token_from_env(environ: dict[str, str], secrets_client: Any = None) -> str:
    if environ.get("X_BEARER_TOKEN"):
        return environ["X_BEARER_TOKEN"]
    secret_id = environ.get("X_BEARER_TOKEN_SECRET_ID")
    if not secret_id:
        raise ValueError("set X_BEARER_TOKEN or X_BEARER_TOKEN_SECRET_ID (e.g. airflow/connections/x_api)")
    if secrets_client is None:
        import boto3

        secrets_client = boto3.client("secretsmanager")
    value = secrets_client.get_secret_value(SecretId=secret_id)["SecretString"]
    return connection_password(value, secret_id)


def connection_password(value: str, secret_id: str) -> str:
    """The password of an Airflow connection stored as JSON or as a URI, or the bare token itself."""
    value = value.strip()
    if value.startswith("{"):
        password = json.loads(value).get("password")
    elif "://" in value:
        password = unquote(urlsplit(value).password or "")
    else:
        password = value
    if not password:
        raise ValueError(f"secret {secret_id} holds no password (the X API bearer token)")
    return password


def run_forever(client: LakeStreamingClient, *, stop: Callable[[], bool],
                sleep: Callable[[float], None] = time.sleep, max_backoff: float = 320.0) -> None:
    """Connect, stream, flush, and reconnect with exponential backoff until `stop()` says so."""
    backoff = 5.0
    while not stop():
        started = time.monotonic()
        client.filter(expansions=EXPANSIONS, tweet_fields=TWEET_FIELDS, user_fields=USER_FIELDS,
                      place_fields=PLACE_FIELDS)
        try:
            client.flush()
        except Exception:
            log.exception("Flush failed; %d records stay buffered for the next attempt", len(client.buffer))
        if client.fatal_error:
            raise StreamCredentialsError(client.fatal_error)
        log.info("Stream connection ended: %d delivered, %d keep-alives, %d undecodable lines, "
                 "%d frames without a tweet", client.delivered, client.keep_alives, client.undecodable_lines,
                 client.frames_without_tweet)
        if stop():
            break
        if time.monotonic() - started > 600:
            backoff = 5.0  # a long healthy connection resets the backoff
        log.warning("Stream disconnected; reconnecting in %.0fs", backoff)
        sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
    client.flush()


def main() -> None:  # pragma: no cover - exercised in the container
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    quiet_tweepy_debug()  # DEBUG would log the bearer token
    env = dict(os.environ)
    if env.get("LAKE_DIR"):
        from pathlib import Path

        from covid19_lake.tweets.firehose import LocalLakeSink

        sink: Sink = LocalLakeSink(Path(env["LAKE_DIR"]))
    else:
        import boto3

        from covid19_lake.tweets.firehose import FirehoseBatchWriter

        sink = FirehoseBatchWriter(boto3.client("firehose"), env["FIREHOSE_STREAM"])
    client = LakeStreamingClient(bearer_token_from_env(env), sink,
                                 flush_seconds=float(env.get("FLUSH_SECONDS", "30")),
                                 base_url=env.get("X_API_BASE_URL") or DEFAULT_API_BASE_URL,
                                 token_source=token_source(env))
    try:
        log.info("Rules: %s", sync_rules(client, parse_rules(env["TWEETS_STREAM_RULES"])))
    except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
        raise SystemExit(credentials_error(exc, token_source(env))) from None
    stopping = {"now": False}

    def request_stop(*_: Any) -> None:
        stopping["now"] = True
        client.disconnect()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_forever(client, stop=lambda: stopping["now"])


if __name__ == "__main__":  # pragma: no cover
    main()
