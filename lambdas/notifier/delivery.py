"""POST a JSON body to a webhook with bounded retries; never lets the URL reach a message or a log.

Retried: 408, 429 (honouring Retry-After, capped), 5xx, timeouts and connection errors, with exponential
backoff and full jitter, within both an attempt count and a time budget. Any other status (4xx, 3xx) is
final: the webhook has refused this body and sending it again cannot help.

The time budget is a wall-clock deadline for the whole delivery, retries included. A socket timeout bounds
each read, not a request: a server that trickles one byte a second, or a name lookup that hangs, would
outlast it. So each attempt runs on a helper thread that the caller stops waiting for at the deadline;
its socket is then shut down, and a connection that opens after the deadline is closed before it sends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from .config import RetryPolicy
from .message import scrub

USER_AGENT = "covid19-lake-notifier/1.0"
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
_BODY_SNIPPET = 200


class DeliveryFailed(Exception):
    """Retryable failures outlasted the policy; the message names the destination, never its URL."""


@dataclass
class DeliveryOutcome:
    destination: str
    delivered: bool
    http_status: int | None
    attempts: int
    detail: str = ""
    waits: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"destination": self.destination, "outcome": "delivered" if self.delivered else "rejected",
                "http_status": self.http_status, "attempts": self.attempts, "detail": self.detail}


@dataclass(frozen=True)
class _Response:
    status: int | None
    body: str = ""
    retry_after: str | None = None
    failure: str | None = None  # set when no HTTP status came back (timeout, refused, reset)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body: treat a redirect as the answer.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Cancelled(ConnectionAbortedError):
    """The caller gave up on this attempt at its deadline."""


class _Attempt:
    """One POST on a helper thread, which the caller may abandon at its deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cancelled = False
        self.done = threading.Event()
        self.response: _Response | None = None
        self.error: BaseException | None = None

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.cancelled:
                self._sockets.append(sock)
                return
        sock.close()  # opened after the deadline (a slow lookup or handshake): send nothing
        raise _Cancelled("the delivery deadline passed before the connection opened")

    def check(self) -> None:
        if self.cancelled:
            raise _Cancelled("the delivery deadline passed")

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read at once


_THREAD = threading.local()


def _current_attempt() -> _Attempt | None:
    return getattr(_THREAD, "attempt", None)


def _watch(sock: socket.socket) -> None:
    attempt = _current_attempt()
    if attempt is not None:
        attempt.opened(sock)


def _may_send() -> None:
    attempt = _current_attempt()
    if attempt is not None:
        attempt.check()


class _AttemptBound:
    """Registers its socket with the current attempt (for https once the TLS handshake is done) and sends
    nothing once the attempt is cancelled."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)

    def send(self, data: Any) -> None:
        _may_send()
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_AttemptBound, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_AttemptBound, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        # No context given: http.client's default one, which verifies the certificate and the host name.
        return self.do_open(_HTTPSConnection, req)


def _opener() -> urllib.request.OpenerDirector:
    """http(s) only (no file:, ftp: or data: handlers), environment proxies honoured, redirects not followed."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _HTTPHandler(),
                    _HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(), _NoRedirect(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


_OPENER = _opener()
# After the deadline, how long an attempt may still finish on its own (an answer already on its way).
_CANCEL_GRACE_SECONDS = 0.1


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def retry_wait(attempt: int, policy: RetryPolicy, retry_after: float | None,
               rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based).

    The server's Retry-After wins when given (capped, so a hostile value cannot stall the batch); otherwise
    full jitter over an exponentially growing, capped window spreads concurrent retries apart.
    """
    if retry_after is not None:
        return min(retry_after, policy.retry_after_max_seconds)
    window = min(policy.backoff_max_seconds, policy.backoff_base_seconds * (2 ** (attempt - 1)))
    return rng(0.0, window)


class _MalformedUrl(Exception):
    pass


def _send_once(url: str, data: bytes, timeout: float) -> _Response:
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise _MalformedUrl
    try:
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT})
        with _OPENER.open(request, timeout=timeout) as response:
            return _Response(response.status, response.read(_BODY_SNIPPET).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        # HTTPError's own text holds no URL, but its attributes do: keep only status, headers and body.
        try:
            body = exc.read(_BODY_SNIPPET).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            body = ""
        finally:
            exc.close()
        return _Response(exc.code, body, exc.headers.get("Retry-After") if exc.headers else None)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return _Response(None, failure="timed out")
        return _Response(None, failure=f"connection failed ({type(reason).__name__})")
    except TimeoutError:
        return _Response(None, failure="timed out")
    except (http.client.InvalidURL, ValueError):
        # Their text quotes the URL; a malformed URL is a configuration error, not a passing failure.
        raise _MalformedUrl from None
    except (OSError, http.client.HTTPException) as exc:
        return _Response(None, failure=f"connection failed ({type(exc).__name__})")


def _send_within(url: str, data: bytes, timeout: float, wall_seconds: float) -> _Response:
    """``_send_once`` that returns after ``wall_seconds`` at the latest, whatever the server does."""
    attempt = _Attempt()

    def work() -> None:
        _THREAD.attempt = attempt
        try:
            attempt.response = _send_once(url, data, timeout)
        except BaseException as exc:  # handed to the caller's thread
            attempt.error = exc
        finally:
            _THREAD.attempt = None
            attempt.done.set()

    threading.Thread(target=work, name="notifier-post", daemon=True).start()
    if not attempt.done.wait(max(wall_seconds, 0.0)):
        attempt.cancel()
        attempt.done.wait(_CANCEL_GRACE_SECONDS)
        response = attempt.response
        if response is not None and response.status is not None and 200 <= response.status < 300:
            return response  # it made it after all: not sent again
        return _Response(None, failure="timed out (the delivery's deadline passed)")
    if attempt.error is not None:
        raise attempt.error
    assert attempt.response is not None
    return attempt.response


def post_json(
    url: str,
    body: dict[str, Any],
    *,
    destination: str,
    policy: RetryPolicy,
    deadline: float | None = None,
    secrets: Iterable[str] = (),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[float, float], float] = random.uniform,
) -> DeliveryOutcome:
    """Deliver ``body`` or explain why not.

    Returns delivered=True on 2xx and delivered=False on a final refusal (logged by the caller, not
    retried); raises DeliveryFailed when retryable failures outlast ``policy`` or ``deadline`` (a
    ``clock()`` value, typically the Lambda's remaining time less a margin).
    """
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    secret_values = [url, *secrets]
    budget_end = clock() + policy.max_total_seconds
    end = budget_end if deadline is None else min(budget_end, deadline)
    waits: list[float] = []
    last = "no attempt made: time budget already spent"
    attempt = 0
    while attempt < policy.max_attempts:
        remaining = end - clock()
        if remaining <= 0:
            break
        attempt += 1
        try:
            response = _send_within(url, data, min(policy.timeout_seconds, remaining), remaining)
        except _MalformedUrl:
            raise DeliveryFailed(f"{destination}: the webhook URL is malformed; fix it in the secret") from None
        if response.status is not None and 200 <= response.status < 300:
            return DeliveryOutcome(destination, True, response.status, attempt, waits=waits)
        snippet = scrub(" ".join(response.body.split())[:_BODY_SNIPPET], secret_values) or ""
        if response.status is not None and response.status not in RETRYABLE_STATUSES:
            detail = f"HTTP {response.status}" + (f": {snippet}" if snippet else "")
            return DeliveryOutcome(destination, False, response.status, attempt, detail, waits)
        last = response.failure or f"HTTP {response.status}" + (f": {snippet}" if snippet else "")
        if attempt >= policy.max_attempts:
            break
        wait = retry_wait(attempt, policy, parse_retry_after(response.retry_after), rng)
        if clock() + wait >= end:
            last += "; the time budget leaves no room for another attempt"
            break
        waits.append(wait)
        sleep(wait)
    raise DeliveryFailed(f"{destination}: not delivered after {attempt} attempt(s): {last}")
