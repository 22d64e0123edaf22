"""Posting with retries against a real HTTP server on 127.0.0.1 that fails in scripted ways."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import pytest

from lambdas.notifier import delivery
from lambdas.notifier.config import RetryPolicy
from lambdas.notifier.delivery import DeliveryFailed, parse_retry_after, post_json, retry_wait
from tests.fixtures.notifier.webhook_server import SECRET_MARKER, WebhookStub

# Tiny waits through configuration: the real code path sleeps, just not for long.
FAST = RetryPolicy(timeout_seconds=2.0, max_attempts=4, backoff_base_seconds=0.01, backoff_max_seconds=0.02,
                   retry_after_max_seconds=0.05, max_total_seconds=10.0)
BODY = {"text": "❌ jhu_daily_reports for 2020-03-22: FAILED"}


@pytest.fixture
def stub():
    with WebhookStub() as server:
        yield server


def test_500_then_200_is_delivered_on_the_second_attempt(stub):
    stub.script("slack", "500")
    outcome = post_json(stub.url("slack"), BODY, destination="slack", policy=FAST)
    assert (outcome.delivered, outcome.http_status, outcome.attempts) == (True, 200, 2)
    assert stub.bodies("slack") == [BODY, BODY]
    assert stub.received[0].headers["Content-Type"] == "application/json; charset=utf-8"
    assert len(outcome.waits) == 1 and 0 <= outcome.waits[0] <= FAST.backoff_base_seconds


def test_429_honours_retry_after_up_to_the_cap(stub):
    stub.script("teams", "429:0", "429:3600", "202")
    outcome = post_json(stub.url("teams"), BODY, destination="teams", policy=FAST)
    assert (outcome.delivered, outcome.http_status, outcome.attempts) == (True, 202, 3)
    # Retry-After: 0 is honoured as given; one hour is capped at HTTP_RETRY_AFTER_MAX_SECONDS.
    assert outcome.waits == [0.0, FAST.retry_after_max_seconds]


def test_hanging_server_times_out_and_fails_after_bounded_attempts(stub):
    stub.script("chime", "hang", "hang")
    policy = RetryPolicy(timeout_seconds=0.2, max_attempts=2, backoff_base_seconds=0.01,
                         backoff_max_seconds=0.01, max_total_seconds=5.0)
    with pytest.raises(DeliveryFailed, match=r"chime: not delivered after 2 attempt\(s\): timed out") as caught:
        post_json(stub.url("chime"), {"Content": "/md x"}, destination="chime", policy=policy)
    assert stub.count("chime") == 2
    assert SECRET_MARKER not in str(caught.value)


def test_persistent_5xx_exhausts_attempts_and_names_no_url(stub):
    stub.script("slack", *["500"] * 10)
    with pytest.raises(DeliveryFailed, match=r"slack: not delivered after 4 attempt\(s\): HTTP 500: internal error"):
        post_json(stub.url("slack"), BODY, destination="slack", policy=FAST)
    assert stub.count("slack") == FAST.max_attempts


def test_other_4xx_is_final_and_not_retried(stub):
    stub.script("slack", "400")
    outcome = post_json(stub.url("slack"), BODY, destination="slack", policy=FAST)
    assert (outcome.delivered, outcome.http_status, outcome.attempts) == (False, 400, 1)
    assert outcome.detail == "HTTP 400: invalid_payload"
    assert outcome.as_dict()["outcome"] == "rejected"
    assert stub.count("slack") == 1


def test_redirect_is_not_followed_as_a_bodiless_get(stub):
    stub.script("teams", "302")
    outcome = post_json(stub.url("teams"), BODY, destination="teams", policy=FAST)
    assert (outcome.delivered, outcome.http_status) == (False, 302)
    assert stub.count("teams") == 1


def test_connection_refused_is_retried_then_fails():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeliveryFailed, match=r"after 4 attempt\(s\): connection failed \(ConnectionRefusedError\)"):
        post_json(f"http://127.0.0.1:{port}/hooks/x/{SECRET_MARKER}", BODY, destination="slack", policy=FAST)


def test_deadline_bounds_the_total_time(stub):
    stub.script("slack", *["hang"] * 10)
    policy = RetryPolicy(timeout_seconds=5.0, max_attempts=10, backoff_base_seconds=0.01,
                         backoff_max_seconds=0.01, max_total_seconds=60.0)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="timed out"):
        post_json(stub.url("slack"), BODY, destination="slack", policy=policy, deadline=started + 0.4)
    # Each attempt's timeout shrinks to what is left, so a hanging webhook cannot outlast the deadline.
    assert stub.count("slack") >= 1
    with pytest.raises(DeliveryFailed, match=r"after 0 attempt\(s\): no attempt made"):
        post_json(stub.url("slack"), BODY, destination="slack", policy=policy, deadline=time.monotonic() - 1)


def test_a_trickling_server_cannot_outlast_the_wall_clock_deadline(stub):
    # One byte every 50 ms: no read waits long enough for the 2 s socket timeout, so without a wall-clock
    # deadline this POST would take 13 s and succeed. The deadline cuts it, and the connection with it.
    stub.script("teams", "trickle")
    policy = RetryPolicy(timeout_seconds=2.0, max_attempts=1, max_total_seconds=0.5)
    with pytest.raises(DeliveryFailed, match=r"teams: not delivered after 1 attempt\(s\): timed out \(the delivery"):
        post_json(stub.url("teams"), BODY, destination="teams", policy=policy)
    assert stub.cut.wait(10), "the trickling connection was not shut down"
    assert stub.count("teams") == 1


def test_an_attempt_cancelled_before_its_connection_opens_sends_nothing():
    attempt = delivery._Attempt()
    attempt.cancel()
    left, right = socket.socketpair()
    with right, pytest.raises(ConnectionAbortedError, match="before the connection opened"):
        attempt.opened(left)
    assert left.fileno() == -1  # closed, so nothing can be sent on it
    with pytest.raises(ConnectionAbortedError):
        attempt.check()


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/x", "data:,hello"])
def test_only_http_and_https_are_ever_opened(url):
    with pytest.raises(DeliveryFailed, match="slack: the webhook URL is malformed"):
        post_json(url, BODY, destination="slack", policy=FAST)


def test_malformed_url_error_names_the_destination_only():
    with pytest.raises(DeliveryFailed, match="teams: the webhook URL is malformed") as caught:
        post_json(f"http://127.0.0.1:1/{SECRET_MARKER} with space", BODY, destination="teams", policy=FAST)
    assert SECRET_MARKER not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_retry_wait_grows_exponentially_with_full_jitter_and_caps():
    policy = RetryPolicy(backoff_base_seconds=0.5, backoff_max_seconds=4.0, retry_after_max_seconds=10.0)

    def upper(low: float, high: float) -> float:
        return high

    assert [retry_wait(n, policy, None, upper) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert retry_wait(3, policy, None, lambda low, high: low) == 0.0
    assert retry_wait(1, policy, 2.5, upper) == 2.5
    assert retry_wait(1, policy, 120.0, upper) == 10.0


def test_parse_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None and parse_retry_after(None) is None
