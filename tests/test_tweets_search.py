"""Recent search through tweepy's real HTTP path, replayed from recorded v2 responses.

`ReplayAdapter` is a requests transport adapter mounted on the tweepy client's own Session: tweepy builds
the URL, query string and headers exactly as against api.twitter.com, and gets the recorded responses.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import tweepy
from requests.adapters import BaseAdapter

from covid19_lake.tweets.checkpoint import FileCheckpointStore, SearchState
from covid19_lake.tweets.ingest import run_ingest
from covid19_lake.tweets.search import RecentSearch, build_client

FIXTURES = Path(__file__).parent / "fixtures" / "x_api"
TOKEN = "AAAAtest-bearer-token-never-logged"
NOW = datetime(2021, 3, 2, 18, 15, tzinfo=UTC)


class ReplayAdapter(BaseAdapter):
    """Serves recorded responses in order and keeps every request tweepy sent."""

    def __init__(self, *fixtures: str, reset_at: int | None = None) -> None:
        super().__init__()
        self.queue = [json.loads((FIXTURES / name).read_text()) for name in fixtures]
        self.reset_at = reset_at
        self.requests: list[requests.PreparedRequest] = []

    def params(self, index: int) -> dict[str, str]:
        query = parse_qs(urlsplit(self.requests[index].url).query)
        return {k: v[0] for k, v in query.items()}

    def send(self, request, **kwargs):
        self.requests.append(request)
        if not self.queue:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        fixture = self.queue.pop(0)
        sent = self.params(len(self.requests) - 1)
        for key, value in fixture["expect_params"].items():
            assert sent.get(key) == value, f"{key}={sent.get(key)!r}, recording expects {value!r}"
        recorded = fixture["response"]
        response = requests.Response()
        response.status_code = recorded["status"]
        response.headers.update({k: (str(self.reset_at) if v == "RESET" else v)
                                 for k, v in recorded["headers"].items()})
        response._content = json.dumps(recorded["body"]).encode()
        response.url = request.url
        response.request = request
        response.reason = "recorded"
        return response

    def close(self) -> None:
        pass


class ListSink:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.records: list[bytes] = []
        self.calls = 0
        self.fail_on_call = fail_on_call

    def put(self, records):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("Firehose is down")
        self.records.extend(records)
        return len(records)

    def ids(self) -> list[str]:
        return [json.loads(r)["data"]["id"] for r in self.records]


def make_search(adapter: ReplayAdapter, sleeps: list[float], max_wait: float = 120.0) -> RecentSearch:
    client = build_client(TOKEN)
    client.session.mount("https://", adapter)
    return RecentSearch(client, "covid -is:retweet", page_size=100, max_rate_limit_wait=max_wait,
                        sleep=sleeps.append, now=lambda: NOW.timestamp())


def test_first_run_paginates_waits_out_a_429_and_checkpoints_the_newest_id(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    adapter = ReplayAdapter("search_page1.json", "rate_limited.json", "search_page2.json",
                            reset_at=int(NOW.timestamp()) + 30)
    sleeps: list[float] = []
    sink, store = ListSink(), FileCheckpointStore(tmp_path / "state.json")

    result = run_ingest(make_search(adapter, sleeps), sink, store, max_pages=10, clock=lambda: NOW)

    assert result.tweets == 5 and result.deferred_reason is None
    assert sleeps == [31.0]
    assert sink.ids() == ["1366800000000000305", "1366799000000000202", "1366798000000000101",
                          "1366797000000000055", "1366796000000000011"]
    assert store.load() == SearchState(since_id="1366800000000000305")
    first = adapter.params(0)
    assert first["query"] == "covid -is:retweet"
    assert first["start_time"] == "2021-03-02T17:15:00Z" and "since_id" not in first
    assert set(first["tweet.fields"].split(",")) >= {"created_at", "lang", "author_id", "public_metrics",
                                                      "entities", "geo", "possibly_sensitive"}
    assert first["expansions"] == "author_id,geo.place_id"
    assert adapter.params(2)["next_token"] == adapter.params(1)["next_token"]
    assert adapter.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text


def test_records_are_stream_shaped_with_only_their_own_includes(tmp_path):
    adapter = ReplayAdapter("search_page1.json", "search_page2.json")
    sink = ListSink()
    run_ingest(make_search(adapter, []), sink, FileCheckpointStore(tmp_path / "s.json"), max_pages=5,
               clock=lambda: NOW)
    first = json.loads(sink.records[0])
    assert set(first) == {"data", "includes", "matching_rules"}
    assert [u["username"] for u in first["includes"]["users"]] == ["health_news"]
    assert [p["country_code"] for p in first["includes"]["places"]] == ["US"]
    assert first["matching_rules"][0]["tag"] == "recent-search: covid -is:retweet"
    no_place = json.loads(sink.records[2])
    assert no_place["includes"]["places"] == []
    assert all(r.endswith(b"\n") and r.count(b"\n") == 1 for r in sink.records)


def test_a_later_run_asks_only_for_newer_tweets(tmp_path):
    store = FileCheckpointStore(tmp_path / "s.json")
    store.save(SearchState(since_id="1366800000000000305"))
    adapter = ReplayAdapter("search_newer.json")
    sink = ListSink()
    run_ingest(make_search(adapter, []), sink, store, max_pages=5, clock=lambda: NOW)
    assert sink.ids() == ["1366802000000000777"]
    assert "start_time" not in adapter.params(0)
    assert store.load() == SearchState(since_id="1366802000000000777")


def test_page_budget_leaves_a_backlog_that_the_next_run_drains_without_gaps_or_repeats(tmp_path):
    store = FileCheckpointStore(tmp_path / "s.json")
    store.save(SearchState(since_id="1366790000000000000"))
    sink = ListSink()

    first = ReplayAdapter("search_page1.json")
    result = run_ingest(make_search(first, []), sink, store, max_pages=1, clock=lambda: NOW)
    assert result.deferred_reason == "page budget of 1 reached"
    assert store.load() == SearchState(since_id="1366790000000000000", backlog_until_id="1366798000000000101",
                                       backlog_newest_id="1366800000000000305")

    # Next run: the rest of the interrupted window (since..until), then tweets newer than its newest id.
    second = ReplayAdapter("search_page2.json", "search_newer.json")
    second.queue[0]["expect_params"] = {"since_id": "1366790000000000000", "until_id": "1366798000000000101"}
    run_ingest(make_search(second, []), sink, store, max_pages=10, clock=lambda: NOW)
    assert second.params(1)["since_id"] == "1366800000000000305" and "until_id" not in second.params(1)
    ids = sink.ids()
    assert len(ids) == len(set(ids)) == 6
    assert store.load() == SearchState(since_id="1366802000000000777")


def test_rate_limit_reset_beyond_the_budget_ends_the_run_cleanly_and_resumes_later(tmp_path):
    store = FileCheckpointStore(tmp_path / "s.json")
    adapter = ReplayAdapter("search_page1.json", "rate_limited.json", reset_at=int(NOW.timestamp()) + 900)
    sleeps: list[float] = []
    sink = ListSink()
    result = run_ingest(make_search(adapter, sleeps), sink, store, max_pages=10, clock=lambda: NOW)
    assert sleeps == [] and result.tweets == 3
    assert "rate limit resets in 901s" in result.deferred_reason
    state = store.load()
    assert state.backlog_until_id == "1366798000000000101" and state.start_time == "2021-03-02T17:15:00Z"

    later = ReplayAdapter("search_page2.json", "search_empty.json")
    later.queue[0]["expect_params"] = {"start_time": "2021-03-02T17:15:00Z", "until_id": "1366798000000000101"}
    later.queue[1]["expect_params"] = {"since_id": "1366800000000000305"}
    run_ingest(make_search(later, []), sink, store, max_pages=10, clock=lambda: NOW + timedelta(minutes=15))
    assert store.load() == SearchState(since_id="1366800000000000305")
    assert len(set(sink.ids())) == 5


def test_sink_failure_keeps_the_checkpoint_at_the_last_delivered_page(tmp_path):
    store = FileCheckpointStore(tmp_path / "s.json")
    store.save(SearchState(since_id="1366790000000000000"))
    with pytest.raises(RuntimeError, match="Firehose is down"):
        run_ingest(make_search(ReplayAdapter("search_page1.json", "search_page2.json"), []),
                   ListSink(fail_on_call=2), store, max_pages=10, clock=lambda: NOW)
    assert store.load().backlog_until_id == "1366798000000000101"
    assert store.load().since_id == "1366790000000000000"


def test_invalid_query_error_payload_fails_loudly_and_moves_nothing(tmp_path):
    store = FileCheckpointStore(tmp_path / "s.json")
    store.save(SearchState(since_id="1366790000000000000"))
    with pytest.raises(tweepy.BadRequest, match="missing closing parenthesis"):
        run_ingest(make_search(ReplayAdapter("invalid_query.json"), []), ListSink(), store, max_pages=10,
                   clock=lambda: NOW)
    assert store.load() == SearchState(since_id="1366790000000000000")


def test_partial_errors_are_logged_and_the_tweets_kept(tmp_path, caplog):
    sink = ListSink()
    run_ingest(make_search(ReplayAdapter("search_partial_error.json"), []), sink,
               FileCheckpointStore(tmp_path / "s.json"), max_pages=2, clock=lambda: NOW)
    assert sink.ids() == ["1366802000000000777"]
    assert "Could not find place with id" in caplog.text


def test_nothing_matched_on_the_first_run_moves_the_start_time_forward(tmp_path):
    store = FileCheckpointStore(tmp_path / "s.json")
    run_ingest(make_search(ReplayAdapter("search_empty.json"), []), ListSink(), store, max_pages=2,
               clock=lambda: NOW)
    assert store.load() == SearchState(start_time="2021-03-02T18:14:30Z")


def test_checkpoint_rejects_unknown_keys_with_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown keys \['sinceid'\]"):
        SearchState.from_json('{"sinceid": "1"}')
