"""A loopback stand-in for the parts of the X API v2 that covid19-lake uses, serving a synthetic corpus.

    from local.tweets_synth import generate
    from local.x_api import XApiStandIn

    with XApiStandIn(generate(seed=19), bearer_token="local-token",
                     now=datetime(2020, 4, 2, tzinfo=UTC)) as api:
        api.base_url          # http://127.0.0.1:<port>: the tweets config's x_api_base_url
        api.set_now(...)      # the virtual clock: what is "posted" and what recent search can see
        api.requests          # every request served (method, path, params, status), never a header

or ``python -m local.x_api --token-env X_BEARER_TOKEN`` (see ``main``). Endpoints, on 127.0.0.1 only:

- ``GET /2/tweets/search/recent``: ``query`` (keywords, "exact phrases", ``#hashtag``, ``@mention``,
  ``from:``, ``lang:``, ``is:retweet|reply|quote|verified``, ``has:geo|hashtags|mentions|links``,
  ``place_country:``, ``-`` negation, ``OR``, implicit AND, parentheses; AND binds tighter than OR, as on
  X), ``since_id``/``until_id`` (exclusive), ``start_time`` (inclusive) / ``end_time`` (exclusive,
  default now - 30 s, at least 10 s ago), ``max_results`` 10..100 (default 10), ``next_token``,
  ``expansions`` / ``tweet.fields`` / ``user.fields`` / ``place.fields``, newest first. The response
  has X's shape: ``data`` with the default fields (id, text, edit_history_tweet_ids) plus the requested
  ones, ``includes.users`` / ``includes.places`` / ``includes.tweets``, ``errors`` for a referenced place
  that no longer exists, ``meta {newest_id, oldest_id, result_count, next_token}``; ``{"meta":
  {"result_count": 0}}`` when nothing matched. A ``next_token`` gives the same page whenever it is used.
  Recent search covers ``history`` (7 days) before the virtual now: older ``start_time``/``since_id`` are a
  400, as on X.
- ``GET``/``POST /2/tweets/search/stream/rules`` (add, delete by ids or values, ``dry_run``) and
  ``GET /2/tweets/search/stream``: chunked newline-delimited JSON, one message per tweet
  (``data``, ``includes``, ``matching_rules``), a blank keep-alive line (``\\r\\n``) on connecting, after
  every ``stream_keepalive_every`` tweets and every ``stream_keepalive_seconds`` while idle, the corpus'
  malformed lines after the tweets they follow, and an ``operational-disconnect`` frame when the
  connection ends (after ``stream_max_seconds`` or ``stream_max_tweets``; tweepy then reconnects). The
  stream delivers each tweet once, in order, once the virtual clock has reached its ``created_at``.
- Errors as X shapes them: 401 ``{"title": "Unauthorized", ...}`` for a missing or wrong bearer token,
  400 ``{"errors": [{"parameters": ..., "message": ...}], "title": "Invalid Request", ...}`` for bad
  parameters or queries, 429 once an endpoint's request budget (``rate_limits``) is spent, 429
  ``TooManyConnections`` for a second stream connection. Every authenticated answer carries
  ``x-rate-limit-limit``, ``x-rate-limit-remaining`` and ``x-rate-limit-reset`` (epoch seconds, real
  time: clients sleep real seconds).
- Control, for tests and the local stack (no token needed, loopback only): ``GET /_stand_in/state``,
  ``POST /_stand_in/clock`` ``{"now": "2020-03-02T00:00:00Z"}``, ``{"advance_seconds": 900}`` or
  ``{"now": null}`` (back to the wall clock),
  ``POST /_stand_in/reset-rate-limits``, ``POST /_stand_in/rate-limits`` ``{"search": {"limit": 4,
  "window_seconds": 2}}`` (new budgets, counted from then on) and ``POST /_stand_in/bearer-token``
  ``{"token": ...}`` (the token the stand-in accepts from then on: a revoked or rotated token),
  ``POST /_stand_in/stream`` ``{"from": "2020-04-01T00:00:00Z"}`` (the stream sends again from then).

What it does not do: OAuth 1.0a / user context, other endpoints, media and polls, relevancy order
(``sort_order=relevancy`` answers in recency order), ``backfill_minutes`` (accepted and ignored),
conjunction rules beyond "at least one positive standalone clause", query length limits per plan.
Keyword matching is X's tokenised match (split on punctuation and symbols, so ``covid`` matches
``#covid``), case- and accent-insensitive, on the text without its links.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import math
import re
import signal
import threading
import time
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.tweets_synth import Corpus, iso_ms, snowflake, snowflake_time

log = logging.getLogger(__name__)

SEARCH = "search"
STREAM = "stream"
RULES_GET = "rules_get"
RULES_POST = "rules_post"


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests per ``window_seconds`` (fixed windows, starting with the first request)."""

    limit: int
    window_seconds: float = 900.0


# X's app-only limits per 15 minutes for these endpoints (Pro access; Basic has fewer).
DEFAULT_RATE_LIMITS = {SEARCH: RateLimit(450), STREAM: RateLimit(50), RULES_GET: RateLimit(450),
                       RULES_POST: RateLimit(450)}

TWEET_FIELDS = {"article", "attachments", "author_id", "card_uri", "community_id", "context_annotations",
                "conversation_id", "created_at", "display_text_range", "edit_controls", "edit_history_tweet_ids",
                "entities", "geo", "id", "in_reply_to_user_id", "lang", "media_metadata", "non_public_metrics",
                "note_tweet", "organic_metrics", "possibly_sensitive", "promoted_metrics", "public_metrics",
                "referenced_tweets", "reply_settings", "scopes", "source", "text", "withheld"}
USER_FIELDS = {"affiliation", "connection_status", "created_at", "description", "entities", "id", "location",
               "most_recent_tweet_id", "name", "pinned_tweet_id", "profile_banner_url", "profile_image_url",
               "protected", "public_metrics", "receives_your_dm", "subscription_type", "url", "username",
               "verified", "verified_type", "withheld"}
PLACE_FIELDS = {"contained_within", "country", "country_code", "full_name", "geo", "id", "name", "place_type"}
EXPANSIONS = {"attachments.media_keys", "attachments.poll_ids", "author_id", "edit_history_tweet_ids",
              "entities.mentions.username", "geo.place_id", "in_reply_to_user_id", "referenced_tweets.id",
              "referenced_tweets.id.author_id"}
FIELD_PARAMS = {"expansions": EXPANSIONS, "tweet.fields": TWEET_FIELDS, "user.fields": USER_FIELDS,
                "place.fields": PLACE_FIELDS, "media.fields": None, "poll.fields": None}
SEARCH_PARAMS = ["query", "start_time", "end_time", "since_id", "until_id", "max_results", "next_token",
                 "pagination_token", "sort_order", *FIELD_PARAMS]
STREAM_PARAMS = [*FIELD_PARAMS, "backfill_minutes"]
RULES_GET_PARAMS = ["ids", "max_results", "pagination_token"]
RULES_POST_PARAMS = ["dry_run", "delete_all"]
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_USER_FIELDS = ("id", "name", "username")
DEFAULT_PLACE_FIELDS = ("id", "full_name")
INVALID_REQUEST = {"title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                   "type": "https://api.twitter.com/2/problems/invalid-request"}
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY_REQUESTS = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
TOO_MANY_CONNECTIONS = {
    "title": "ConnectionException", "detail": "This stream is currently at the maximum allowed connection limit.",
    "connection_issue": "TooManyConnections", "type": "https://api.twitter.com/2/problems/streaming-connection"}
OPERATIONAL_DISCONNECT = {"errors": [{
    "title": "operational-disconnect", "disconnect_type": "OperationalDisconnect",
    "detail": "This stream has been disconnected for operational reasons.",
    "type": "https://api.twitter.com/2/problems/operational-disconnect"}]}
KEEP_ALIVE = b"\r\n"


# ---------------------------------------------------------------- the query language

class QueryError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.position = position


_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"\w+")
_OPERATOR = re.compile(r"^([a-z_]+):(.*)$")
_IS_VALUES = {"retweet", "reply", "quote", "verified"}
_HAS_VALUES = {"geo", "hashtags", "mentions", "links", "media", "images", "videos", "cashtags"}
OPERATORS_URL = "https://developer.twitter.com/en/docs/twitter-api/tweets/search/integrate/build-a-query"


def normalise(text: str) -> str:
    """Case- and accent-insensitive form for matching."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(normalise(_URL.sub(" ", text))))


@dataclass(frozen=True)
class Indexed:
    """What the query operators look at, computed once per tweet."""

    tokens: tuple[str, ...]
    token_set: frozenset[str]
    hashtags: frozenset[str]
    mentions: frozenset[str]
    author: str
    lang: str
    country: str | None
    retweet: bool
    reply: bool
    quote: bool
    verified: bool
    geo: bool
    links: bool


class Node:
    positive = False

    def match(self, t: Indexed) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Keyword(Node):
    words: tuple[str, ...]
    positive = True

    def match(self, t: Indexed) -> bool:
        if len(self.words) == 1:
            return self.words[0] in t.token_set
        n = len(self.words)
        return any(t.tokens[i:i + n] == self.words for i in range(len(t.tokens) - n + 1)
                   if t.tokens[i] == self.words[0])


@dataclass(frozen=True)
class Attribute(Node):
    name: str
    value: str
    positive: bool = False

    def match(self, t: Indexed) -> bool:
        if self.name == "#":
            return self.value in t.hashtags
        if self.name == "@":
            return self.value in t.mentions
        if self.name == "from":
            return t.author == self.value
        if self.name == "lang":
            return t.lang == self.value
        if self.name == "place_country":
            return t.country == self.value
        if self.name == "is":
            return bool(getattr(t, self.value, False))
        if self.name == "has":
            return {"geo": t.geo, "hashtags": bool(t.hashtags), "mentions": bool(t.mentions),
                    "links": t.links}.get(self.value, False)
        raise AssertionError(self.name)


@dataclass(frozen=True)
class Not(Node):
    node: Node

    def match(self, t: Indexed) -> bool:
        return not self.node.match(t)


@dataclass(frozen=True)
class All(Node):
    nodes: tuple[Node, ...]

    @property
    def positive(self) -> bool:  # type: ignore[override]
        return any(n.positive for n in self.nodes)

    def match(self, t: Indexed) -> bool:
        return all(n.match(t) for n in self.nodes)


@dataclass(frozen=True)
class Any_(Node):
    nodes: tuple[Node, ...]

    @property
    def positive(self) -> bool:  # type: ignore[override]
        return all(n.positive for n in self.nodes)

    def match(self, t: Indexed) -> bool:
        return any(n.match(t) for n in self.nodes)


def _lex(query: str) -> list[tuple[str, str, int]]:
    found, i, n = [], 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "()":
            found.append((c, c, i))
            i += 1
        elif c == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QueryError("There were errors processing your request: missing closing quote", n)
            found.append(("PHRASE", query[i + 1:end], i))
            i = end + 1
        elif c == "-" and i + 1 < n and not query[i + 1].isspace():
            found.append(("NOT", c, i))
            i += 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in '()"':
                j += 1
            word = query[i:j]
            found.append(("OR" if word == "OR" else "TERM", word, i))
            i = j
    return found


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.items = _lex(query)
        self.pos = 0
        self.depth = 0

    def _peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None

    def _error(self, message: str, position: int | None = None) -> QueryError:
        where = position if position is not None else (
            self.items[self.pos][2] + 1 if self.pos < len(self.items) else len(self.query))
        return QueryError(f"There were errors processing your request: {message}", where)

    def parse(self) -> Node:
        if not self.items:
            raise self._error("the query has no clause", 0)
        node = self._any()
        if self.pos < len(self.items):
            raise self._error("unexpected closing parenthesis")
        if not node.positive:
            raise self._error("Rules must contain at least one positive, standalone clause (a keyword, "
                              "phrase, #hashtag, @mention or from:); is:, has:, lang: and place_country: "
                              "cannot stand alone", 1)
        return node

    def _any(self) -> Node:
        parts = [self._all()]
        while self._peek() == "OR":
            self.pos += 1
            parts.append(self._all())
        return Any_(tuple(parts)) if len(parts) > 1 else parts[0]

    def _all(self) -> Node:
        parts = []
        while self._peek() not in (None, ")", "OR"):
            parts.append(self._unary())
        if not parts and self.pos >= len(self.items) and self.depth:
            raise self._error("missing closing parenthesis", len(self.query))
        if not parts:
            raise self._error("OR and parentheses need a clause on each side" if self.pos < len(self.items)
                              else "missing clause at the end of the query")
        return All(tuple(parts)) if len(parts) > 1 else parts[0]

    def _unary(self) -> Node:
        if self._peek() == "NOT":
            self.pos += 1
            if self._peek() in (None, ")", "OR"):
                raise self._error("a negation needs a clause")
            return Not(self._atom())
        return self._atom()

    def _atom(self) -> Node:
        kind, text, at = self.items[self.pos]
        self.pos += 1
        if kind == "(":
            self.depth += 1
            node = self._any()
            if self._peek() != ")":
                raise self._error("missing closing parenthesis", len(self.query))
            self.pos += 1
            self.depth -= 1
            return node
        if kind == ")":
            raise self._error("unexpected closing parenthesis", at + 1)
        if kind == "PHRASE":
            words = tokens(text)
            if not words:
                raise self._error("empty quoted phrase", at + 1)
            return Keyword(words)
        return self._term(text, at + 1)

    def _term(self, word: str, at: int) -> Node:
        if word[0] in "#@":
            value = word[1:]
            if not re.fullmatch(r"\w+", value):
                raise self._error(f"invalid {'hashtag' if word[0] == '#' else 'mention'} '{word}'", at)
            return Attribute(word[0], value.casefold(), positive=True)
        operator = _OPERATOR.match(word)
        if operator:
            name, value = operator.groups()
            known = {"from", "lang", "is", "has", "place_country"}
            if name not in known:
                raise self._error(f"Reference to invalid operator '{name}'. Operator is not available in current "
                                  f"product or product packaging. Please refer to complete available operator "
                                  f"list at {OPERATORS_URL}", at)
            if name == "is" and value not in _IS_VALUES:
                raise self._error(f"Reference to invalid field 'is:{value}'", at)
            if name == "has" and value not in _HAS_VALUES:
                raise self._error(f"Reference to invalid field 'has:{value}'", at)
            if name == "lang" and not re.fullmatch(r"[a-z]{2,3}", value):
                raise self._error(f"Invalid lang value '{value}'", at)
            if name == "place_country" and not re.fullmatch(r"[A-Za-z]{2}", value):
                raise self._error(f"Invalid place_country value '{value}' (ISO alpha-2 expected)", at)
            if name == "from":
                if not re.fullmatch(r"\w+", value):
                    raise self._error(f"Invalid from value '{value}'", at)
                return Attribute("from", value.casefold(), positive=True)
            return Attribute(name, value.upper() if name == "place_country" else value)
        if word == "or":
            raise self._error("Ambiguous use of or as a keyword. Use a capitalized OR for an OR operator, or "
                              '"or" for the word', at)
        words = tokens(word)
        if not words:
            raise self._error(f"'{word}' has no word to match", at)
        return Keyword(words)


def parse_query(query: str) -> Node:
    return _Parser(query).parse()


# ---------------------------------------------------------------- the corpus, indexed

def _parse_time(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Index:
    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.tweets = sorted(corpus.tweets, key=lambda t: int(t["id"]))
        self.ids = [int(t["id"]) for t in self.tweets]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("the corpus has duplicate tweet ids")
        self.created = [_parse_time(t["created_at"]) for t in self.tweets]
        if self.created != sorted(self.created):
            raise ValueError("tweet ids must grow with created_at (X ids are time-ordered)")
        self.by_id = {t["id"]: t for t in self.tweets}
        self.users = corpus.users
        self.by_username = {u["username"].casefold(): u for u in corpus.users.values()}
        self.places = corpus.places
        self.indexed = [self._index(t) for t in self.tweets]

    def _index(self, tweet: Mapping[str, Any]) -> Indexed:
        ents = tweet.get("entities") or {}
        author = self.users.get(str(tweet.get("author_id"))) or {}
        place = self.places.get((tweet.get("geo") or {}).get("place_id", "")) or {}
        words = tokens(tweet["text"])
        kinds = {r.get("type") for r in tweet.get("referenced_tweets") or []}
        return Indexed(
            tokens=words, token_set=frozenset(words),
            hashtags=frozenset(h["tag"].casefold() for h in ents.get("hashtags", [])),
            mentions=frozenset(m["username"].casefold() for m in ents.get("mentions", [])),
            author=str(author.get("username", "")).casefold(), lang=tweet.get("lang", ""),
            country=place.get("country_code"), retweet="retweeted" in kinds, reply="replied_to" in kinds,
            quote="quoted" in kinds, verified=bool(author.get("verified")), geo=bool(tweet.get("geo")),
            links=bool(ents.get("urls")))


def _pick(obj: Mapping[str, Any], defaults: Iterable[str], wanted: set[str]) -> dict[str, Any]:
    keep = set(defaults) | wanted
    return {k: v for k, v in obj.items() if k in keep}


@dataclass
class _Fields:
    expansions: set[str] = field(default_factory=set)
    tweet: set[str] = field(default_factory=set)
    user: set[str] = field(default_factory=set)
    place: set[str] = field(default_factory=set)


class _ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, dict(headers or {})


def _invalid(errors: list[dict[str, Any]]) -> _ApiError:
    return _ApiError(400, {"errors": errors, **INVALID_REQUEST})


def _param_error(name: str, value: str, message: str) -> dict[str, Any]:
    return {"parameters": {name: [value]}, "message": message}


# ---------------------------------------------------------------- the stand-in

class XApiStandIn:
    """The X API v2 stand-in: a threaded HTTP server on 127.0.0.1 (port 0 = any free port)."""

    def __init__(self, corpus: Corpus, *, bearer_token: str, now: datetime | None = None,
                 rate_limits: Mapping[str, RateLimit] | None = None, history: timedelta | None = timedelta(days=7),
                 page_overlap: int = 0, stream_from: datetime | None = None,
                 stream_keepalive_seconds: float = 20.0, stream_keepalive_every: int = 25,
                 stream_max_seconds: float = 300.0, stream_max_tweets: int | None = None,
                 stream_max_connections: int = 1, host: str = "127.0.0.1", port: int = 0,
                 wall_clock: Callable[[], float] = time.time,
                 extra_controls: Mapping[str, Callable[[str, Any], dict[str, Any]]] | None = None) -> None:
        if not bearer_token:
            raise ValueError("the stand-in needs a bearer token to check requests against")
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the X API stand-in listens on loopback only, not {host!r}")
        if not 0 <= page_overlap < 10:
            raise ValueError("page_overlap must be within 0..9 (a page holds at least 10 tweets)")
        self._index = _Index(corpus)
        self._token = bearer_token
        self._now = now.astimezone(UTC) if now else None
        self.rate_limits = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
        self.history = history
        self.page_overlap = page_overlap
        self.stream_keepalive_seconds = stream_keepalive_seconds
        self.stream_keepalive_every = stream_keepalive_every
        self.stream_max_seconds = stream_max_seconds
        self.stream_max_tweets = stream_max_tweets
        self.stream_max_connections = stream_max_connections
        self._wall = wall_clock
        # More loopback control endpoints under /_stand_in/ (the local stack adds its Firehose faults).
        self.extra_controls = dict(extra_controls or {})
        self._lock = threading.RLock()
        self._windows: dict[str, tuple[float, int]] = {}
        self._rules: list[dict[str, str]] = []
        self._rule_nodes: dict[str, Node] = {}
        self._rule_seq = 0
        self._stream_cursor = bisect_left(self._index.created, stream_from.astimezone(UTC)) if stream_from else 0
        self._streams = 0
        self._queries: dict[str, Node] = {}
        self.requests: list[dict[str, Any]] = []
        self.stream_stats = {"connections": 0, "tweets": 0, "keep_alives": 0, "malformed_lines": 0}
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> XApiStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="x-api-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> XApiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the virtual clock
    def now(self) -> datetime:
        with self._lock:
            return self._now or datetime.fromtimestamp(self._wall(), UTC)

    def set_now(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(UTC)

    def use_wall_clock(self) -> None:
        """Back to real time (the clock a stand-in made without ``now`` runs on)."""
        with self._lock:
            self._now = None

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now = self.now() + delta

    def reset_rate_limits(self) -> None:
        with self._lock:
            self._windows.clear()

    @property
    def rules(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(r) for r in self._rules]

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"now": iso_ms(self.now()), "requests": len(self.requests), "rules": self.rules,
                    "stream": dict(self.stream_stats), "rate_limits": {
                        k: {"used": n, "window_started": start} for k, (start, n) in self._windows.items()},
                    "corpus": self._index.corpus.summary()}

    # -- request plumbing
    def _log(self, method: str, path: str, params: Mapping[str, str], status: int) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "params": dict(params), "status": status,
                                  "at": iso_ms(self.now())})

    def _authorize(self, header: str | None) -> None:
        if header != f"Bearer {self._token}":
            raise _ApiError(401, UNAUTHORIZED)

    def _charge(self, endpoint: str) -> dict[str, str]:
        """Count one request against the endpoint's budget; the rate-limit headers, or a 429."""
        limit = self.rate_limits[endpoint]
        with self._lock:
            wall = self._wall()
            start, used = self._windows.get(endpoint, (wall, 0))
            if wall >= start + limit.window_seconds:
                start, used = wall, 0
            used += 1
            self._windows[endpoint] = (start, used)
        headers = {"x-rate-limit-limit": str(limit.limit),
                   "x-rate-limit-remaining": str(max(0, limit.limit - used)),
                   "x-rate-limit-reset": str(math.ceil(start + limit.window_seconds))}
        if used > limit.limit:
            raise _ApiError(429, TOO_MANY_REQUESTS, headers)
        return headers

    def _query(self, text: str, parameter: str = "query") -> Node:
        with self._lock:
            node = self._queries.get(text)
        if node is None:
            try:
                node = parse_query(text)
            except QueryError as exc:
                raise _invalid([_param_error(parameter, text, str(exc))]) from None
            with self._lock:
                self._queries[text] = node
        return node

    @staticmethod
    def _check_params(params: Mapping[str, str], allowed: list[str]) -> None:
        errors = [_param_error(name, value, f"The query parameter [{name}] is not one of [{','.join(allowed)}]")
                  for name, value in params.items() if name not in allowed]
        for name, valid in FIELD_PARAMS.items():
            if name in params and valid is not None and name in allowed:
                for value in params[name].split(","):
                    if value not in valid:
                        errors.append(_param_error(name, value, f"The `{name}` query parameter value [{value}] "
                                                                f"is not one of [{','.join(sorted(valid))}]"))
        if errors:
            raise _invalid(errors)

    @staticmethod
    def _fields(params: Mapping[str, str]) -> _Fields:
        def split(name: str) -> set[str]:
            return {v for v in params.get(name, "").split(",") if v}
        return _Fields(split("expansions"), split("tweet.fields"), split("user.fields"), split("place.fields"))

    # -- rendering
    def _render(self, tweets: list[dict[str, Any]], fields: _Fields) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``includes`` and partial ``errors`` for ``tweets``, as the API expands them."""
        users: dict[str, dict[str, Any]] = {}
        places: dict[str, dict[str, Any]] = {}
        referenced: dict[str, dict[str, Any]] = {}
        errors: list[dict[str, Any]] = []
        ix = self._index

        def add_user(user: Mapping[str, Any] | None) -> None:
            if user and user["id"] not in users:
                users[user["id"]] = _pick(user, DEFAULT_USER_FIELDS, fields.user)

        for tweet in tweets:
            if "author_id" in fields.expansions:
                add_user(ix.users.get(str(tweet.get("author_id"))))
            if "entities.mentions.username" in fields.expansions:
                for mention in (tweet.get("entities") or {}).get("mentions", []):
                    add_user(ix.by_username.get(mention["username"].casefold()))
            if "in_reply_to_user_id" in fields.expansions and tweet.get("in_reply_to_user_id"):
                add_user(ix.users.get(str(tweet["in_reply_to_user_id"])))
            if "referenced_tweets.id" in fields.expansions:
                for ref in tweet.get("referenced_tweets") or []:
                    other = ix.by_id.get(ref["id"])
                    if other is not None and other["id"] not in referenced:
                        referenced[other["id"]] = _pick(other, DEFAULT_TWEET_FIELDS, fields.tweet)
                        if "referenced_tweets.id.author_id" in fields.expansions:
                            add_user(ix.users.get(str(other.get("author_id"))))
            place_id = (tweet.get("geo") or {}).get("place_id")
            if "geo.place_id" in fields.expansions and place_id and place_id not in places:
                place = ix.places.get(place_id)
                if place is None:
                    if not any(e.get("resource_id") == place_id for e in errors):
                        errors.append({"value": place_id, "detail": f"Could not find place with id: [{place_id}].",
                                       "title": "Not Found Error", "resource_type": "place",
                                       "parameter": "geo.place_id", "resource_id": place_id,
                                       "type": "https://api.twitter.com/2/problems/resource-not-found"})
                else:
                    places[place_id] = _pick(place, DEFAULT_PLACE_FIELDS, fields.place)
        includes: dict[str, Any] = {}
        if users:
            includes["users"] = list(users.values())
        if places:
            includes["places"] = list(places.values())
        if referenced:
            includes["tweets"] = list(referenced.values())
        return includes, errors

    def _tweet(self, tweet: Mapping[str, Any], fields: _Fields) -> dict[str, Any]:
        return _pick(tweet, DEFAULT_TWEET_FIELDS, fields.tweet)

    # -- recent search
    def _token_for(self, bound: int, query: str) -> str:
        raw = f"{bound}.{hashlib.sha256(query.encode()).hexdigest()[:8]}".encode()
        return base64.b32encode(raw).decode().rstrip("=").lower()

    def _bound_from(self, token: str, query: str) -> int:
        try:
            raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
            bound, fingerprint = raw.split(".")
            if fingerprint != hashlib.sha256(query.encode()).hexdigest()[:8]:
                raise ValueError(fingerprint)
            return int(bound)
        except (ValueError, UnicodeDecodeError):
            raise _invalid([_param_error("next_token", token, f"The `next_token` query parameter value [{token}] "
                                                              "is not valid for this query")]) from None

    def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._check_params(params, SEARCH_PARAMS)
        query = params.get("query", "")
        if not query.strip():
            raise _invalid([_param_error("query", query, "The `query` query parameter can not be empty")])
        node = self._query(query)
        errors = []
        max_results = params.get("max_results", "10")
        if not max_results.isdigit() or not 10 <= int(max_results) <= 100:
            errors.append(_param_error("max_results", max_results, f"The `max_results` query parameter value "
                                                                   f"[{max_results}] is not between 10 and 100"))
        for name in ("since_id", "until_id"):
            if name in params and not re.fullmatch(r"[0-9]{1,19}", params[name]):
                errors.append(_param_error(name, params[name], f"The `{name}` query parameter value "
                                                               f"[{params[name]}] does not match ^[0-9]{{1,19}}$"))
        times: dict[str, datetime] = {}
        for name in ("start_time", "end_time"):
            if name in params:
                try:
                    times[name] = _parse_time(params[name])
                except ValueError:
                    errors.append(_param_error(name, params[name], f"Invalid '{name}':'{params[name]}'. '{name}' "
                                                                   "must be a valid RFC 3339 date-time"))
        if errors:
            raise _invalid(errors)
        now = self.now()
        oldest = now - self.history if self.history else None
        end = times.get("end_time", now - timedelta(seconds=30))
        if "end_time" in times and end > now - timedelta(seconds=10):
            errors.append(_param_error("end_time", params["end_time"], f"Invalid 'end_time':'{params['end_time']}'. "
                                       "'end_time' must be a minimum of 10 seconds prior to the request time."))
        start = times.get("start_time")
        if start is not None and oldest is not None and start < oldest:
            errors.append(_param_error("start_time", params["start_time"],
                                       f"Invalid 'start_time':'{params['start_time']}'. 'start_time' must be on or "
                                       f"after {_z(oldest)}"))
        if start is not None and start >= end:
            errors.append(_param_error("start_time", params["start_time"],
                                       f"Invalid 'start_time':'{params['start_time']}'. 'start_time' must be before "
                                       f"'end_time':'{_z(end)}'"))
        if "since_id" in params and oldest is not None and snowflake_time(params["since_id"]) < oldest:
            errors.append(_param_error("since_id", params["since_id"],
                                       f"Invalid 'since_id':'{params['since_id']}'. 'since_id' must be a tweet id "
                                       f"created after {_z(oldest)}"))
        if errors:
            raise _invalid(errors)

        ix = self._index
        size = int(max_results)
        hi = bisect_left(ix.created, end)
        if "until_id" in params:
            hi = min(hi, bisect_left(ix.ids, int(params["until_id"])))
        token = params.get("next_token") or params.get("pagination_token")
        if token:
            hi = min(hi, bisect_left(ix.ids, self._bound_from(token, query)))
        lo = bisect_right(ix.ids, int(params["since_id"])) if "since_id" in params else 0
        if start is not None:
            lo = max(lo, bisect_left(ix.created, start))
        if oldest is not None:
            lo = max(lo, bisect_left(ix.created, oldest))
        found: list[int] = []
        for k in range(hi - 1, lo - 1, -1):
            if node.match(ix.indexed[k]):
                found.append(k)
                if len(found) > size:
                    break
        page = found[:size]
        if not page:
            return {"meta": {"result_count": 0}}
        fields = self._fields(params)
        tweets = [ix.tweets[k] for k in page]
        includes, partial = self._render(tweets, fields)
        body: dict[str, Any] = {"data": [self._tweet(t, fields) for t in tweets]}
        if includes:
            body["includes"] = includes
        meta: dict[str, Any] = {"newest_id": tweets[0]["id"], "oldest_id": tweets[-1]["id"], "result_count": len(page)}
        if len(found) > size:
            meta["next_token"] = self._token_for(ix.ids[page[-1 - self.page_overlap]], query)
        body["meta"] = meta
        if partial:
            body["errors"] = partial
        return body

    # -- stream rules
    def get_rules(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._check_params(params, RULES_GET_PARAMS)
        wanted = {i for i in params.get("ids", "").split(",") if i}
        rules = [r for r in self.rules if not wanted or r["id"] in wanted]
        meta = {"sent": iso_ms(self.now()), "result_count": len(rules)}
        return {"data": rules, "meta": meta} if rules else {"meta": meta}

    def post_rules(self, params: Mapping[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        self._check_params(params, RULES_POST_PARAMS)
        dry_run = params.get("dry_run", "false").lower() == "true"
        if not isinstance(body, dict) or len(set(body) & {"add", "delete"}) != 1:
            raise _invalid([{"parameters": {}, "message": 'The body must be {"add": [...]} or {"delete": {...}}'}])
        sent = iso_ms(self.now())
        with self._lock:
            if "delete" in body:
                return 200, self._delete_rules(body["delete"] or {}, dry_run, sent)
            return self._add_rules(body["add"] or [], dry_run, sent)

    def _add_rules(self, add: list[Any], dry_run: bool, sent: str) -> tuple[int, dict[str, Any]]:
        errors, accepted = [], []
        existing = {r["value"]: r["id"] for r in self._rules}
        invalid = 0
        for rule in add:
            value = rule.get("value", "") if isinstance(rule, dict) else ""
            try:
                node = parse_query(value)
            except QueryError as exc:
                invalid += 1
                errors.append({"value": value, "details": [str(exc)], "title": "UnprocessableEntity",
                               "type": "https://api.twitter.com/2/problems/invalid-rules"})
                continue
            if value in existing:
                errors.append({"value": value, "id": existing[value], "title": "DuplicateRule",
                               "type": "https://api.twitter.com/2/problems/duplicate-rules"})
                continue
            existing[value] = ""
            accepted.append((value, rule.get("tag"), node))
        summary = {"created": 0, "not_created": len(add), "valid": len(add) - invalid, "invalid": invalid}
        if invalid:  # X creates none of them when one rule is invalid
            return 400, {"meta": {"sent": sent, "summary": summary}, "errors": errors, **INVALID_REQUEST}
        created = []
        for value, tag, node in accepted:
            self._rule_seq += 1
            rule = {"value": value, **({"tag": tag} if tag else {}),
                    "id": str(snowflake(self.now(), self._rule_seq, worker=20))}
            created.append(rule)
            if not dry_run:
                self._rules.append({"id": rule["id"], "value": value, **({"tag": tag} if tag else {})})
                self._rule_nodes[rule["id"]] = node
        summary.update(created=len(created), not_created=len(add) - len(created))
        response: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
        if created:
            response = {"data": created, **response}
        if errors:
            response["errors"] = errors
        return (201 if created else 200), response

    def _delete_rules(self, delete: Mapping[str, Any], dry_run: bool, sent: str) -> dict[str, Any]:
        ids = [str(i) for i in delete.get("ids") or []]
        values = list(delete.get("values") or [])
        gone = [r for r in self._rules if r["id"] in ids or r["value"] in values]
        missing = [i for i in ids if i not in {r["id"] for r in gone}] + [
            v for v in values if v not in {r["value"] for r in gone}]
        if not dry_run:
            self._rules = [r for r in self._rules if r not in gone]
            for rule in gone:
                self._rule_nodes.pop(rule["id"], None)
        response: dict[str, Any] = {"meta": {"sent": sent, "summary": {"deleted": len(gone),
                                                                       "not_deleted": len(missing)}}}
        if missing:
            response["errors"] = [{"value": m, "detail": "Rule does not exist", "title": "Not Found Error",
                                   "type": "https://api.twitter.com/2/problems/resource-not-found"} for m in missing]
        return response

    # -- the filtered stream
    def _next_stream_item(self) -> tuple[dict[str, Any], list[dict[str, str]]] | None:
        """The next posted tweet (created_at <= now) matching a rule, moving the cursor past it."""
        ix = self._index
        with self._lock:
            now = self.now()
            while self._stream_cursor < len(ix.tweets) and ix.created[self._stream_cursor] <= now:
                k = self._stream_cursor
                self._stream_cursor += 1
                matched = [{"id": r["id"], "tag": r.get("tag", "")} for r in self._rules
                           if self._rule_nodes[r["id"]].match(ix.indexed[k])]
                if matched:
                    return ix.tweets[k], matched
        return None

    def stream_lines(self, params: Mapping[str, str]) -> Iterable[bytes]:
        """The body of one stream connection, line by line (keep-alives included)."""
        fields = self._fields(params)
        deadline = time.monotonic() + self.stream_max_seconds
        sent = 0
        yield KEEP_ALIVE
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if self.stream_max_tweets is not None and sent >= self.stream_max_tweets:
                break
            item = self._next_stream_item()
            if item is None:
                yield KEEP_ALIVE
                self._stopping.wait(min(self.stream_keepalive_seconds, max(0.0, deadline - time.monotonic())))
                continue
            tweet, matched = item
            includes, partial = self._render([tweet], fields)
            message: dict[str, Any] = {"data": self._tweet(tweet, fields)}
            if includes:
                message["includes"] = includes
            if partial:
                message["errors"] = partial
            message["matching_rules"] = matched
            yield json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\r\n"
            sent += 1
            with self._lock:
                self.stream_stats["tweets"] += 1
            for line in self._index.corpus.stream_noise.get(tweet["id"], []):
                with self._lock:
                    self.stream_stats["malformed_lines"] += 1
                yield line + b"\r\n"
            if self.stream_keepalive_every and sent % self.stream_keepalive_every == 0:
                yield KEEP_ALIVE
        yield json.dumps(OPERATIONAL_DISCONNECT, separators=(",", ":")).encode() + b"\r\n"

    def _open_stream(self) -> None:
        with self._lock:
            if self._streams >= self.stream_max_connections:
                raise _ApiError(429, TOO_MANY_CONNECTIONS)
            self._streams += 1
            self.stream_stats["connections"] += 1

    def _close_stream(self) -> None:
        with self._lock:
            self._streams -= 1

    # -- control
    def control(self, method: str, path: str, body: Any) -> dict[str, Any]:
        if path in self.extra_controls:
            try:
                return self.extra_controls[path](method, body)
            except (ValueError, TypeError, KeyError) as exc:
                raise _ApiError(400, {"title": "Invalid Request", "detail": str(exc), "type": "about:blank",
                                      "status": 400}) from exc
        if method == "GET" and path == "/_stand_in/state":
            return self.state()
        if method == "POST" and path == "/_stand_in/clock":
            if isinstance(body, dict) and "now" in body and body["now"] is None:
                self.use_wall_clock()
            elif isinstance(body, dict) and "now" in body:
                self.set_now(_parse_time(str(body["now"])))
            elif isinstance(body, dict) and "advance_seconds" in body:
                self.advance(timedelta(seconds=float(body["advance_seconds"])))
            else:
                raise _ApiError(400, {"title": "Invalid Request", "detail": 'send {"now": ...} or '
                                      '{"advance_seconds": ...}', "type": "about:blank", "status": 400})
            return {"now": iso_ms(self.now())}
        if method == "POST" and path == "/_stand_in/reset-rate-limits":
            self.reset_rate_limits()
            return {"reset": True}
        if method == "POST" and path == "/_stand_in/rate-limits" and isinstance(body, dict):
            # {"search": {"limit": 4, "window_seconds": 2}, ...}: new budgets, counted from now on.
            with self._lock:
                for endpoint, spec in body.items():
                    if endpoint not in DEFAULT_RATE_LIMITS or not isinstance(spec, dict):
                        detail = f"rate limits are per endpoint of {sorted(DEFAULT_RATE_LIMITS)}"
                        raise _ApiError(400, {"title": "Invalid Request", "type": "about:blank", "status": 400,
                                              "detail": detail})
                    self.rate_limits[endpoint] = RateLimit(int(spec["limit"]),
                                                           float(spec.get("window_seconds", 900.0)))
                self._windows.clear()
            return {"rate_limits": {k: vars(v) for k, v in self.rate_limits.items()}}
        if method == "POST" and path == "/_stand_in/stream" and isinstance(body, dict) and body.get("from"):
            # The filtered stream sends again every tweet created from then on (a rerun of a demo).
            with self._lock:
                self._stream_cursor = bisect_left(self._index.created, _parse_time(str(body["from"])))
            return {"stream_from": str(body["from"])}
        if method == "POST" and path == "/_stand_in/bearer-token" and isinstance(body, dict) and body.get("token"):
            # The app's token was revoked or rotated: requests with the old one now get a 401.
            with self._lock:
                self._token = str(body["token"])
            return {"rotated": True}
        raise _ApiError(404, {"title": "Not Found", "detail": f"no control endpoint {method} {path}",
                              "type": "about:blank", "status": 404})


def _handler_for(api: XApiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # a response is two writes (headers, body): no 40 ms delayed-ACK stall
        server_version = "x-api-stand-in"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _params(self) -> tuple[str, dict[str, str]]:
            parts = urlsplit(self.path)
            return parts.path, {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}

        def _body(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                raise _invalid([{"parameters": {}, "message": "The request body is not valid JSON"}]) from None

        def _serve(self, method: str) -> None:
            path, params = self._params()
            # Each request is logged before its answer is sent: a client that saw the answer sees the entry.
            if path.startswith("/_stand_in/"):
                self._answer(method, path, params, lambda: (200, api.control(
                    method, path, self._body() if method == "POST" else None), {}))
                return
            if method == "GET" and path == "/2/tweets/search/stream":
                self._answer(method, path, params, lambda: (200, None, api._charge(STREAM)), stream=True)
                return
            self._answer(method, path, params, lambda: self._route(method, path, params))

        def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
            if method == "GET" and path == "/2/tweets/search/recent":
                headers = api._charge(SEARCH)
                return 200, api.search(params), headers
            if path == "/2/tweets/search/stream/rules" and method in ("GET", "POST"):
                headers = api._charge(RULES_GET if method == "GET" else RULES_POST)
                if method == "GET":
                    return 200, api.get_rules(params), headers
                return (*api.post_rules(params, self._body()), headers)
            return 404, {"title": "Not Found Error", "detail": f"No route for {method} {path}",
                         "type": "https://api.twitter.com/2/problems/resource-not-found", "status": 404}, {}

        def _answer(self, method: str, path: str, params: dict[str, str],
                    work: Callable[[], tuple[int, Any, dict[str, str]]], stream: bool = False) -> None:
            headers: dict[str, str] = {}
            try:
                if not path.startswith("/_stand_in/"):
                    api._authorize(self.headers.get("authorization"))
                status, body, headers = work()
                if stream:
                    try:
                        api._check_params(params, STREAM_PARAMS)
                        api._open_stream()
                    except _ApiError as exc:
                        exc.headers = {**headers, **exc.headers}
                        raise
            except _ApiError as exc:
                status, body, headers = exc.status, exc.body, {**headers, **exc.headers}
                stream = False
            except Exception:
                log.exception("X API stand-in failed on %s %s", method, path)
                status, body, stream = 500, {"title": "Internal Server Error", "detail": "stand-in error",
                                             "type": "about:blank", "status": 500}, False
            api._log(method, path, params, status)
            if not stream:
                self._send(status, body, headers)
                return
            try:
                self._stream(params, headers)
            finally:
                api._close_stream()

        def _stream(self, params: Mapping[str, str], headers: Mapping[str, str]) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.close_connection = True
            try:
                for line in api.stream_lines(params):
                    if line == KEEP_ALIVE:
                        with api._lock:
                            api.stream_stats["keep_alives"] += 1
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                log.debug("stream client went away")

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - exercised by hand and the local stack
    import os

    from local.tweets_synth import DEMO_END, DEMO_START, generate

    parser = argparse.ArgumentParser(description="Serve the X API v2 stand-in with the synthetic corpus")
    parser.add_argument("--token-env", default="X_BEARER_TOKEN",
                        help="environment variable holding the bearer token clients must send")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--tweets-per-day", type=int, default=300)
    parser.add_argument("--now", help="virtual now, e.g. 2020-04-02T00:00:00Z (default: the real clock)")
    parser.add_argument("--history-days", type=float, default=7.0, help="0: recent search sees everything")
    parser.add_argument("--port", type=int, default=0)
    opts = parser.parse_args(argv)
    token = os.environ.get(opts.token_env)
    if not token:
        raise SystemExit(f"set {opts.token_env} to the bearer token the stand-in should accept")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    api = XApiStandIn(generate(opts.seed, DEMO_START, DEMO_END, tweets_per_day=opts.tweets_per_day),
                      bearer_token=token, now=_parse_time(opts.now) if opts.now else None,
                      history=timedelta(days=opts.history_days) if opts.history_days else None, port=opts.port)
    api.start()
    print(json.dumps({"base_url": api.base_url, "token_env": opts.token_env}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    api.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
