"""The filtered-stream producer over tweepy's real streaming path, replayed from recorded v2 frames."""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from covid19_lake.tweets.stream import (
    LakeStreamingClient,
    bearer_token_from_env,
    connection_password,
    parse_rules,
    run_forever,
    sync_rules,
)

FIXTURES = Path(__file__).parent / "fixtures" / "x_api"


class StreamReplay(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.client: LakeStreamingClient | None = None
        self.sent: list[tuple[str, str, object]] = []
        self.stream_connects = 0

    def _response(self, request, status: int, body: bytes) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.headers["content-type"] = "application/json"
        response.raw = io.BytesIO(body)
        response.request, response.url, response.reason = request, request.url, "recorded"
        return response

    def send(self, request, **kwargs):
        path = urlsplit(request.url).path
        body = json.loads(request.body) if request.body else None
        self.sent.append((request.method, path, body))
        if path == "/2/tweets/search/stream":
            self.stream_connects += 1
            if self.stream_connects > 1:
                self.client.disconnect()  # the test's way of ending the reconnect loop
                return self._response(request, 200, b"")
            return self._response(request, 200, (FIXTURES / "stream_lines.jsonl").read_bytes())
        if request.method == "GET":
            name = "stream_rules_get.json"
        else:
            name = "stream_rules_delete.json" if "delete" in body else "stream_rules_add.json"
        recorded = json.loads((FIXTURES / name).read_text())["response"]
        return self._response(request, recorded["status"], json.dumps(recorded["body"]).encode())

    def close(self) -> None:
        pass


class ListSink:
    def __init__(self, fail_times: int = 0) -> None:
        self.records: list[bytes] = []
        self.fail_times = fail_times

    def put(self, records):
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("Firehose unavailable")
        self.records.extend(records)
        return len(records)


def make_client(sink, flush_seconds=3600.0):
    client = LakeStreamingClient("stream-token", sink, flush_seconds=flush_seconds, max_retries=0)
    adapter = StreamReplay()
    adapter.client = client
    client.session.mount("https://", adapter)
    return client, adapter


def test_rules_are_synced_to_configuration():
    client, adapter = make_client(ListSink())
    wanted = parse_rules('[{"value": "covid lang:en", "tag": "covid-en"}, '
                         '{"value": "coronavirus has:geo", "tag": "covid-geo"}]')
    assert sync_rules(client, wanted) == {"deleted": 1, "added": 1}
    posts = [body for method, _, body in adapter.sent if method == "POST"]
    assert posts == [{"delete": {"ids": ["1366810000000000002"]}},
                     {"add": [{"value": "coronavirus has:geo", "tag": "covid-geo"}]}]


def test_stream_lines_reach_the_sink_and_survive_a_failed_flush_and_reconnect():
    sink = ListSink(fail_times=1)
    client, adapter = make_client(sink)
    sleeps: list[float] = []
    checks = iter([False, False, True])  # run, back off once after the failed flush, then stop
    run_forever(client, stop=lambda: next(checks), sleep=sleeps.append)

    # tweepy reconnected by itself after the stream ended; the outer loop backed off once.
    assert adapter.stream_connects == 2 and sleeps == [5.0]
    stream_call = next(s for s in adapter.sent if s[1] == "/2/tweets/search/stream")
    assert stream_call[0] == "GET"
    lines = [r.decode() for r in sink.records]
    assert len(lines) == 3  # two tweets and the truncated line (for quarantine); the errors frame is logged
    first = json.loads(lines[0])
    assert first["data"]["id"] == "1366820000000000001" and first["includes"]["places"] == []
    assert json.loads(lines[1])["includes"]["places"][0]["country_code"] == "ES"
    assert lines[2].startswith('{"data": {"id": "1366820000000000003"') and lines[2].endswith("\n")
    assert client.buffer == []


def test_buffer_flushes_by_age():
    now = [0.0]
    sink = ListSink()
    client = LakeStreamingClient("t", sink, flush_seconds=30, clock=lambda: now[0])
    line = (FIXTURES / "stream_lines.jsonl").read_bytes().splitlines()[0]
    client.on_data(line)
    assert sink.records == [] and len(client.buffer) == 1
    now[0] = 31.0
    client.on_keep_alive()
    assert len(sink.records) == 1 and client.buffer == []


@pytest.mark.parametrize("secret", [
    '{"conn_type": "http", "password": "tok-123"}',
    "http://:tok-123@api.twitter.com",
    "tok-123",
])
def test_token_from_the_airflow_connection_secret(secret):
    class Secrets:
        def get_secret_value(self, SecretId):
            assert SecretId == "airflow/connections/x_api"
            return {"SecretString": secret}

    env = {"X_BEARER_TOKEN_SECRET_ID": "airflow/connections/x_api"}
    assert bearer_token_from_env(env, Secrets()) == "tok-123"


def test_secret_without_password_is_a_clear_error():
    with pytest.raises(ValueError, match="secret s holds no password"):
        connection_password('{"conn_type": "http"}', "s")
