"""Our tweepy clients (recent search + filtered stream) against the loopback X API stand-in.

The stand-in (local/x_api.py) serves the synthetic corpus (local/tweets_synth.py) on 127.0.0.1; tweepy
builds every request as it would for api.twitter.com, and only the base URL differs. Its responses are
checked against the recorded pages of tests/fixtures/x_api/ for shape.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import tweepy

from covid19_lake.tweets.checkpoint import FileCheckpointStore, SearchState
from covid19_lake.tweets.config import DEFAULT_QUERY, check_base_url
from covid19_lake.tweets.ingest import run_ingest
from covid19_lake.tweets.records import EXPANSIONS, PLACE_FIELDS, TWEET_FIELDS, USER_FIELDS
from covid19_lake.tweets.search import ApiBaseSession, RecentSearch, build_client
from covid19_lake.tweets.stream import LakeStreamingClient, StreamCredentialsError, run_forever, sync_rules
from local.tweets_synth import SOURCE_LABEL, SYNTHETIC_LINK, generate, iso_ms, window
from local.x_api import SEARCH, RateLimit, XApiStandIn, normalise
from tests.variable import config, set_variable, variable

FIXTURES = Path(__file__).parent / "fixtures" / "x_api"
TOKEN = "AAAA-stand-in-token-never-logged"
NOW = datetime(2020, 3, 10, 12, 0, tzinfo=UTC)
CORPUS = generate(seed=19, start=datetime(2020, 3, 10, 9, tzinfo=UTC), end=datetime(2020, 3, 10, 14, tzinfo=UTC),
                  tweets_per_day=20_000)


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["response"]


def matches_default_query(tweet: dict) -> bool:
    """An oracle for DEFAULT_QUERY written apart from the stand-in's query engine."""
    text = re.sub(r"https?://\S+", " ", normalise(tweet["text"]))
    return (not tweet.get("referenced_tweets")
            and re.search(r"\bcovid\b|\bcovid19\b|\bcovid-19\b|\bcoronavirus\b|\bsars-cov-2\b", text) is not None)


def expected_ids(start: datetime, end: datetime) -> set[str]:
    return {t["id"] for t in window(CORPUS, start, end) if matches_default_query(t)}


class ListSink:
    def __init__(self) -> None:
        self.records: list[bytes] = []

    def put(self, records):
        self.records.extend(records)
        return len(records)

    def ids(self) -> list[str]:
        return [json.loads(r)["data"]["id"] for r in self.records]


class FakeClock:
    """Wall-clock seconds shared by the stand-in's rate limits and the client's bounded wait."""

    def __init__(self, start: float = 1_600_000_000.0) -> None:
        self.value = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.value

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.value += seconds


@pytest.fixture
def api():
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW) as stand_in:
        yield stand_in


def searcher(api: XApiStandIn, clock: FakeClock | None = None, max_wait: float = 120.0,
             token: str = TOKEN) -> RecentSearch:
    kwargs = {"now": clock, "sleep": clock.sleep} if clock else {}
    return RecentSearch(build_client(token, api.base_url), DEFAULT_QUERY, page_size=100,
                        max_rate_limit_wait=max_wait, **kwargs)


def shape(value):
    """Keys and JSON types, recursively; lists by the union of their items' shapes."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        merged: dict = {}
        for item in value:
            item_shape = shape(item)
            merged = merge(merged, item_shape if isinstance(item_shape, dict) else {"": item_shape})
        return [merged]
    return type(value).__name__


def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0], b[0])]
    return a


def covers(recorded_shape, served_shape) -> bool:
    """Everything the recorded response has, the served one has too, with the same types."""
    if isinstance(recorded_shape, dict):
        return isinstance(served_shape, dict) and all(
            k in served_shape and covers(v, served_shape[k]) for k, v in recorded_shape.items())
    if isinstance(recorded_shape, list):
        return isinstance(served_shape, list) and covers(recorded_shape[0], served_shape[0])
    return recorded_shape == served_shape


# ---------------------------------------------------------------- the base URL setting

def test_the_base_url_is_configuration_and_plain_http_only_for_loopback():
    assert check_base_url("https://api.twitter.com/") == "https://api.twitter.com"
    assert check_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(ValueError, match="must use https; plain http is accepted only for a loopback host"):
        check_base_url("http://api.example.com")
    with pytest.raises(ValueError, match=r"covid19_lake\.tweets\.x_api_base_url must be an http\(s\) URL"):
        config(tweets={"x_api_base_url": "api.x.com"})
    assert config().tweets.x_api_base_url == "https://api.twitter.com"
    # The real API keeps tweepy's own session; only another base URL swaps in the redirecting one.
    assert type(build_client(TOKEN).session) is requests.Session
    assert isinstance(build_client(TOKEN, "http://127.0.0.1:1").session, ApiBaseSession)


# ---------------------------------------------------------------- recent search

def test_search_answers_in_the_recorded_api_shape(api):
    client = build_client(TOKEN, api.base_url)
    body = client.search_recent_tweets(DEFAULT_QUERY, max_results=100, tweet_fields=TWEET_FIELDS,
                                       expansions=EXPANSIONS, user_fields=USER_FIELDS, place_fields=PLACE_FIELDS,
                                       start_time="2020-03-10T11:00:00Z")
    page = recorded("search_page1.json")["body"]
    assert set(body) - {"errors"} == set(page)
    assert shape(body["data"])[0].keys() == shape(page["data"])[0].keys()  # the fields asked for, no more
    assert covers(shape(page["data"]), shape(body["data"]))
    assert shape(body["includes"]["places"]) == shape(page["includes"]["places"])
    assert shape(body["includes"]["users"]) == shape(page["includes"]["users"])
    assert set(body["meta"]) == set(page["meta"])
    assert body["meta"]["result_count"] == len(body["data"]) == 100
    assert body["meta"]["newest_id"] == body["data"][0]["id"] and body["meta"]["oldest_id"] == body["data"][-1]["id"]
    ids = [int(t["id"]) for t in body["data"]]
    assert ids == sorted(ids, reverse=True)
    # includes hold exactly the users and places the page's tweets reference.
    assert {u["id"] for u in body["includes"]["users"]} == {t["author_id"] for t in body["data"]}
    referenced = {t["geo"]["place_id"] for t in body["data"] if "geo" in t}
    assert {p["id"] for p in body["includes"]["places"]} == referenced & set(CORPUS.places)
    # Every tweet says it is synthetic.
    assert all(t["text"].endswith(SYNTHETIC_LINK) for t in body["data"])
    assert all(u["username"].startswith("synth_") for u in body["includes"]["users"])

    default = client.search_recent_tweets("covid", max_results=10)
    assert set(default["data"][0]) == {"id", "text", "edit_history_tweet_ids"}
    assert "includes" not in default
    with_source = client.search_recent_tweets("covid", max_results=10, tweet_fields=["source"])
    assert {t["source"] for t in with_source["data"]} == {SOURCE_LABEL}
    assert client.search_recent_tweets("nothingmatchesthis", max_results=10) == recorded("search_empty.json")["body"]


def test_partial_errors_for_places_that_no_longer_exist(api):
    missing = [t for t in CORPUS.tweets if t.get("geo") and t["geo"]["place_id"] not in CORPUS.places]
    assert missing, "the corpus has tweets whose place is gone"
    tweet = missing[0]
    body = build_client(TOKEN, api.base_url).search_recent_tweets(
        f'"{tweet["text"].split(" https://")[0]}"', max_results=10, expansions=EXPANSIONS,
        place_fields=PLACE_FIELDS, start_time="2020-03-10T09:00:00Z", until_id=str(int(tweet["id"]) + 1),
        since_id=str(int(tweet["id"]) - 1))
    assert [t["id"] for t in body["data"]] == [tweet["id"]]
    assert shape(body["errors"]) == shape(recorded("search_partial_error.json")["body"]["errors"])
    assert body["errors"][0]["resource_id"] == tweet["geo"]["place_id"]


def test_errors_have_the_api_shape(api):
    client = build_client(TOKEN, api.base_url)
    with pytest.raises(tweepy.BadRequest, match=r"missing closing parenthesis \(at position 9\)") as bad:
        client.search_recent_tweets("(covid OR", max_results=10)
    assert set(bad.value.response.json()) == set(recorded("invalid_query.json")["body"])
    assert bad.value.response.json()["errors"][0]["parameters"] == {"query": ["(covid OR"]}
    with pytest.raises(tweepy.BadRequest, match=r"value \[5\] is not between 10 and 100"):
        client.search_recent_tweets("covid", max_results=5)
    with pytest.raises(tweepy.BadRequest, match=r"'start_time' must be on or after 2020-03-03T12:00:00Z"):
        client.search_recent_tweets("covid", start_time="2020-03-01T00:00:00Z")
    with pytest.raises(tweepy.BadRequest, match=r"Reference to invalid operator 'foo'"):
        client.search_recent_tweets("foo:bar covid")
    with pytest.raises(tweepy.BadRequest, match=r"query parameter \[colour\] is not one of"):
        client.request("GET", "/2/tweets/search/recent", params={"query": "covid", "colour": "red"})
    with pytest.raises(tweepy.Unauthorized, match="401 Unauthorized\nUnauthorized") as unauthorized:
        build_client("wrong-token", api.base_url).search_recent_tweets("covid")
    assert unauthorized.value.response.json() == {"title": "Unauthorized", "type": "about:blank", "status": 401,
                                                  "detail": "Unauthorized"}
    assert api.requests[-1]["status"] == 401 and "wrong-token" not in json.dumps(api.requests)


def test_ingest_paginates_and_the_next_run_resumes_from_since_id_without_duplicates(api, tmp_path):
    store, sink = FileCheckpointStore(tmp_path / "state.json"), ListSink()
    first = run_ingest(searcher(api), sink, store, max_pages=50, clock=lambda: NOW)
    window_one = expected_ids(NOW - timedelta(hours=1), NOW - timedelta(seconds=30))
    assert first.deferred_reason is None and first.pages == -(-len(window_one) // 100) > 2
    assert sorted(sink.ids()) == sorted(window_one)
    newest = max(window_one, key=int)
    assert store.load() == SearchState(since_id=newest)

    later = NOW + timedelta(minutes=15)
    api.set_now(later)
    second = run_ingest(searcher(api), sink, store, max_pages=50, clock=lambda: later)
    window_two = expected_ids(NOW - timedelta(seconds=30), later - timedelta(seconds=30))
    assert second.tweets == len(window_two) > 0
    ids = sink.ids()
    assert len(ids) == len(set(ids)) == len(window_one | window_two)
    since = [r["params"].get("since_id") for r in api.requests[first.pages:]]
    assert since == [newest] * second.pages
    assert all("start_time" not in r["params"] for r in api.requests[first.pages:])


def test_next_token_gives_the_same_page_whenever_it_is_used_and_pages_may_overlap(tmp_path):
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW, page_overlap=1) as api:
        client = build_client(TOKEN, api.base_url)
        first = client.search_recent_tweets(DEFAULT_QUERY, max_results=10, start_time="2020-03-10T11:00:00Z")
        token = first["meta"]["next_token"]
        second = client.search_recent_tweets(DEFAULT_QUERY, max_results=10, start_time="2020-03-10T11:00:00Z",
                                             next_token=token)
        api.advance(timedelta(minutes=30))  # newer tweets do not move an existing token's page
        again = client.search_recent_tweets(DEFAULT_QUERY, max_results=10, start_time="2020-03-10T11:00:00Z",
                                            next_token=token)
        assert again == second
        assert second["data"][0]["id"] == first["data"][-1]["id"]  # the overlap: one tweet on both pages
        with pytest.raises(tweepy.BadRequest, match="is not valid for this query"):
            client.search_recent_tweets("covid", max_results=10, next_token=token)

        api.set_now(NOW)
        sink = ListSink()
        run_ingest(searcher(api), sink, FileCheckpointStore(tmp_path / "s.json"), max_pages=50, clock=lambda: NOW)
        ids = sink.ids()
        assert len(ids) > len(set(ids)) == len(expected_ids(NOW - timedelta(hours=1), NOW - timedelta(seconds=30)))


def test_a_429_is_waited_out_within_the_budget_and_the_run_goes_on(tmp_path):
    clock = FakeClock()
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW, wall_clock=clock,
                     rate_limits={SEARCH: RateLimit(2, window_seconds=60)}) as api:
        sink = ListSink()
        result = run_ingest(searcher(api, clock), sink, FileCheckpointStore(tmp_path / "s.json"), max_pages=50,
                            clock=lambda: NOW)
    expected = expected_ids(NOW - timedelta(hours=1), NOW - timedelta(seconds=30))
    assert result.deferred_reason is None and sorted(sink.ids()) == sorted(expected)
    statuses = [r["status"] for r in api.requests]
    assert statuses[:4] == [200, 200, 429, 200]
    assert clock.sleeps[0] == 61.0  # reset (window start + 60 s) - now + 1 s
    assert len(clock.sleeps) == statuses.count(429)


def test_a_reset_beyond_the_budget_defers_and_the_next_run_resumes_without_gaps(tmp_path):
    clock = FakeClock()
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW, wall_clock=clock,
                     rate_limits={SEARCH: RateLimit(2, window_seconds=900)}) as api:
        store, sink = FileCheckpointStore(tmp_path / "s.json"), ListSink()
        first = run_ingest(searcher(api, clock), sink, store, max_pages=50, clock=lambda: NOW)
        assert "rate limit resets in 901s, beyond this run's wait budget" in first.deferred_reason
        assert clock.sleeps == [] and first.tweets == 200
        state = store.load()
        assert state.backlog_until_id == sink.ids()[-1] and state.start_time == "2020-03-10T11:00:00Z"

        clock.value += 900  # the window resets: the backlog drains (2 pages), then the newer window is limited
        second = run_ingest(searcher(api, clock), sink, store, max_pages=50, clock=lambda: NOW)
        expected = expected_ids(NOW - timedelta(hours=1), NOW - timedelta(seconds=30))
        ids = sink.ids()
        assert len(ids) == len(set(ids)) and set(ids) == expected
        assert second.pages == 2 and store.load() == SearchState(since_id=max(expected, key=int))

        clock.value += 900
        third = run_ingest(searcher(api, clock), sink, store, max_pages=50, clock=lambda: NOW)
    assert third.deferred_reason is None and third.tweets == 0 and len(sink.ids()) == len(expected)
    assert store.load() == SearchState(since_id=max(expected, key=int))


# ---------------------------------------------------------------- the filtered stream

class StopAfter:
    """A sink that disconnects the stream once it holds `count` records (the test's stop condition)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.records: list[bytes] = []
        self.client: LakeStreamingClient | None = None

    def put(self, records):
        self.records.extend(records)
        if len(self.records) >= self.count:
            self.client.disconnect()
        return len(records)


RULES = [{"value": "(covid OR coronavirus) -is:retweet", "tag": "covid"}, {"value": "#IoRestoACasa", "tag": "it"}]


def stream_client(api, sink, token: str = TOKEN, **kwargs) -> LakeStreamingClient:
    client = LakeStreamingClient(token, sink, flush_seconds=0.0, base_url=api.base_url, **kwargs)
    if hasattr(sink, "client"):
        sink.client = client
    return client


def expected_stream(api_now: datetime, start: datetime) -> tuple[list[dict], int]:
    rule_words = re.compile(r"\bcovid\b|\bcoronavirus\b")
    tweets = [t for t in window(CORPUS, start, api_now + timedelta(milliseconds=1))
              if (rule_words.search(re.sub(r"https?://\S+", " ", normalise(t["text"])))
                  and not t.get("referenced_tweets"))
              or "iorestoacasa" in {h["tag"].casefold() for h in (t.get("entities") or {}).get("hashtags", [])}]
    noise = sum(len(CORPUS.stream_noise.get(t["id"], [])) for t in tweets)
    return tweets, noise


def test_rules_sync_against_the_stand_in_and_answer_in_the_recorded_shape():
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW) as api:
        client = stream_client(api, ListSink())
        assert sync_rules(client, RULES) == {"deleted": 0, "added": 2}
        assert sync_rules(client, RULES) == {"deleted": 0, "added": 0}
        assert sync_rules(client, RULES[:1]) == {"deleted": 1, "added": 0}
        assert [r["value"] for r in api.rules] == [RULES[0]["value"]]
        got = client.get_rules()
        assert shape(got) == shape(recorded("stream_rules_get.json")["body"])
        added = client.add_rules(tweepy.StreamRule("lang:it #coronavirus", tag="x"))
        assert shape(added) == shape(recorded("stream_rules_add.json")["body"])
        deleted = client.delete_rules([added["data"][0]["id"]])
        assert shape(deleted) == shape(recorded("stream_rules_delete.json")["body"])
        with pytest.raises(tweepy.BadRequest):
            client.add_rules([tweepy.StreamRule("covid"), tweepy.StreamRule("is:retweet")])
        assert [r["value"] for r in api.rules] == [RULES[0]["value"]]  # all or nothing
        duplicate = client.add_rules(tweepy.StreamRule(RULES[0]["value"]))
        assert duplicate["errors"][0]["title"] == "DuplicateRule" and "data" not in duplicate
        with pytest.raises(tweepy.BadRequest) as invalid:
            sync_rules(client, [*RULES[:1], {"value": "is:retweet", "tag": "bad"}])
        error = invalid.value.api_errors[0]
        assert error["title"] == "UnprocessableEntity" and "Rules must contain at least one" in error["details"][0]


def test_stream_delivers_matching_tweets_once_with_keep_alives_and_malformed_lines_counted(caplog):
    caplog.set_level(logging.INFO)
    start = NOW - timedelta(hours=1)
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW, stream_from=start, stream_keepalive_every=10,
                     stream_keepalive_seconds=0.05, stream_max_tweets=40) as api:
        tweets, noise = expected_stream(NOW, start)
        assert noise > 0, "the window holds malformed stream lines"
        sink = StopAfter(len(tweets) + noise)
        client = stream_client(api, sink)
        sync_rules(client, RULES)
        checks = iter([False, True])
        run_forever(client, stop=lambda: next(checks), sleep=lambda _: None)

        lines = [r.decode() for r in sink.records]
        good = [json.loads(line) for line in lines if line.startswith('{"data"') and line.rstrip().endswith("}")
                and _is_json(line)]
        assert [m["data"]["id"] for m in good] == [t["id"] for t in tweets]  # each once, in order
        assert client.undecodable_lines == noise == len(lines) - len(good)
        assert all(m["matching_rules"] and {r["tag"] for r in m["matching_rules"]} <= {"covid", "it"} for m in good)
        assert all(set(m) == {"data", "includes", "matching_rules"} for m in good)
        first = json.loads((FIXTURES / "stream_lines.jsonl").read_text().splitlines()[0])
        assert set(first["data"]) <= set(good[0]["data"])
        # Bounded connections: tweepy reconnected after each, the stream went on where it stopped.
        connections = api.stream_stats["connections"]
        assert connections == -(-len(tweets) // 40) > 1
        assert client.frames_without_tweet == connections - 1  # operational-disconnect frames
        assert client.keep_alives >= connections + len(tweets) // 10 - 1
        assert api.stream_stats["malformed_lines"] == noise
    assert TOKEN not in caplog.text


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_stream_is_live_the_virtual_clock_posts_new_tweets_while_connected():
    start = NOW - timedelta(minutes=5)
    later = NOW + timedelta(minutes=5)
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW, stream_from=start, stream_keepalive_seconds=0.02) as api:
        before, _ = expected_stream(NOW, start)
        after, noise_after = expected_stream(later, start)
        sink = StopAfter(len(after) + noise_after)
        client = stream_client(api, sink)
        sync_rules(client, RULES)
        idle = threading.Event()

        def advance_when_idle():
            # Poll until the stream has sent everything posted so far, then post the next minutes.
            while api.stream_stats["tweets"] < len(before):
                idle.wait(0.01)
            api.set_now(later)

        threading.Thread(target=advance_when_idle, daemon=True).start()
        checks = iter([False, True])
        run_forever(client, stop=lambda: next(checks), sleep=lambda _: None)
    got = [json.loads(r)["data"]["id"] for r in sink.records if _is_json(r.decode())]
    assert got == [t["id"] for t in after] and len(after) > len(before) > 0


def test_a_second_stream_connection_is_refused_like_the_api_does():
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW, stream_keepalive_seconds=0.02) as api:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with requests.get(f"{api.base_url}/2/tweets/search/stream", headers=headers, stream=True, timeout=5) as one:
            assert one.status_code == 200 and next(one.iter_lines()) == b""
            two = requests.get(f"{api.base_url}/2/tweets/search/stream", headers=headers, timeout=5)
            assert two.status_code == 429 and two.json()["connection_issue"] == "TooManyConnections"
            assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= set(two.headers)


def test_a_refused_token_stops_the_producer_with_the_token_source_and_no_retry_loop(caplog):
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=NOW) as api:
        client = stream_client(api, ListSink(), token="wrong-token",
                               token_source="secret airflow/connections/x_api (the Airflow connection's password)")
        with pytest.raises(StreamCredentialsError, match=r"HTTP 401: it rejected the bearer token from secret "
                                                         r"airflow/connections/x_api"):
            run_forever(client, stop=lambda: False, sleep=lambda _: pytest.fail("must not back off and retry"))
        assert [r["status"] for r in api.requests] == [401]
    assert "wrong-token" not in caplog.text


def test_the_corpus_is_deterministic_and_labelled_synthetic():
    again = generate(seed=19, start=datetime(2020, 3, 10, 9, tzinfo=UTC), end=datetime(2020, 3, 10, 14, tzinfo=UTC),
                     tweets_per_day=20_000)
    assert again.tweets == CORPUS.tweets and again.stream_noise == CORPUS.stream_noise
    assert generate(seed=20, start=datetime(2020, 3, 10, 9, tzinfo=UTC), end=datetime(2020, 3, 10, 14, tzinfo=UTC),
                    tweets_per_day=20_000).tweets != CORPUS.tweets
    demo = generate(seed=19)
    summary = demo.summary()
    assert summary["first_created_at"] >= "2020-03-01" and summary["last_created_at"] < "2020-04-02"
    assert len(summary["languages"]) >= 6 and len(summary["countries"]) >= 10
    assert summary["retweets"] > 0 and summary["missing_places"] > 0 and summary["malformed_stream_lines"] > 0
    assert all(t["source"] == SOURCE_LABEL and t["text"].endswith(SYNTHETIC_LINK) for t in demo.tweets)
    assert all(u["username"].startswith("synth_") and u["name"].startswith("Synthetic") for u in demo.users.values())
    # Later days carry more tweets than the first (the pandemic's growth).
    per_day = {}
    for tweet in demo.tweets:
        per_day[tweet["created_at"][:10]] = per_day.get(tweet["created_at"][:10], 0) + 1
    assert per_day["2020-03-25"] > 2 * per_day["2020-03-01"]
    assert iso_ms(NOW) == "2020-03-10T12:00:00.000Z"


def test_a_wrong_token_fails_the_task_naming_the_connection_never_the_token(monkeypatch, tmp_path, caplog):
    from airflow.sdk.exceptions import AirflowFailException

    from covid19_lake.tweets import checkpoint, ingest

    caplog.set_level(logging.DEBUG)
    with XApiStandIn(CORPUS, bearer_token=TOKEN, now=datetime.now(UTC)) as api:
        set_variable(monkeypatch, variable(str(tmp_path / "lake"), "spark_jobs",
                                           tweets={"sink": "local", "x_api_base_url": api.base_url}))
        monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps({"conn_type": "generic", "password": "wrong-token-123"}))
        # Variable.set needs a running task's supervisor; the DAG-level run is in the local-stack tests.
        monkeypatch.setattr(checkpoint, "VariableCheckpointStore",
                            lambda key: checkpoint.FileCheckpointStore(tmp_path / f"{key}.json"))
        with pytest.raises(AirflowFailException) as failure:
            ingest.ingest_from_airflow()
    message = str(failure.value)
    assert message.startswith("X API rejected the bearer token from Airflow connection 'x_api' (password) "
                              "(HTTP 401: Unauthorized)")
    assert "wrong-token-123" not in message and "wrong-token-123" not in caplog.text
    assert not (tmp_path / "lake").exists() and not (tmp_path / "tweets_ingest_checkpoint.json").exists()
