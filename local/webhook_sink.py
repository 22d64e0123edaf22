"""A loopback stand-in for Chime/Slack/Teams incoming webhooks: every POST becomes one JSON line.

Any path is accepted (the local webhooks secret points at /chime, /slack and /teams). A path starting
with ``/status/<code>/`` answers that HTTP status instead of 200 (still recorded), so a client's retry
logic can be exercised against it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_HIDDEN_HEADERS = {"authorization", "proxy-authorization", "cookie"}
MAX_BODY_BYTES = 1_000_000


def _status_for(path: str) -> int:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "status" and parts[2].isdigit() and 100 <= int(parts[2]) <= 599:
        return int(parts[2])
    return 200


class WebhookSink:
    """``with WebhookSink(log_file) as sink: ...``; ``sink.url`` is the base URL."""

    def __init__(self, log_file: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.log_file = Path(log_file)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookSink:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self._lock, open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, MAX_BODY_BYTES)) if length else b""
                text = raw.decode("utf-8", errors="replace")
                try:
                    body: Any = json.loads(text) if text else None
                    parse_error = None
                except json.JSONDecodeError as exc:
                    body, parse_error = None, f"not JSON: {exc}"
                entry = {
                    "path": self.path,
                    "headers": {k: v for k, v in self.headers.items() if k.lower() not in _HIDDEN_HEADERS},
                    "body": body,
                    "received_at": datetime.now(UTC).isoformat(),
                }
                if parse_error:
                    entry["body_text"] = text
                    entry["error"] = parse_error
                sink.record(entry)
                status = _status_for(self.path)
                payload = b"ok" if status < 300 else b"error"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                payload = b"webhook sink: POST JSON to any path\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def read_sink_log(log_file: Path) -> list[dict[str, Any]]:
    """All recorded requests, oldest first."""
    path = Path(log_file)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# A message's title reads "<emoji> <STATUS>: <job> for <date or dates>" in every destination's format.
_TITLE_STATUS = re.compile(r"(PARTLY FAILED|SUBMITTED|RUNNING|COMPLETED|FAILED|SKIPPED|UNKNOWN): ")


def post_status(post: dict[str, Any]) -> str:
    """The status a recorded post announces (PARTLY FAILED for a run that failed in part), or "other"."""
    found = _TITLE_STATUS.search(json.dumps(post.get("body"), ensure_ascii=False))
    return found.group(1) if found else "other"


def destination_of(post: dict[str, Any]) -> str:
    """``chime``, ``slack`` or ``teams``: the last part of the path the local webhooks secret points at."""
    return str(post.get("path") or "").split("?")[0].rstrip("/").rsplit("/", 1)[-1] or "/"


def count_messages(log_file: Path, skip_lines: int = 0, about: str | None = None) -> dict[str, Any]:
    """The messages the sink accepted, per destination: ``{"total", "by_destination": {"slack": 6, ...},
    "by_status": {...}, "by_destination_and_status": {"slack": {"SUBMITTED": 2, ...}}}``.

    ``skip_lines`` leaves out the posts recorded before (the log's length when a run began);
    ``about`` keeps only the posts whose body contains that text (e.g. ``"for 2020-03-01..2020-03-31"``).
    Posts the sink answered with an error status (``/status/<code>/...``) were not delivered: not counted.
    """
    posts = [post for post in read_sink_log(log_file)[skip_lines:]
             if _status_for(str(post.get("path") or "")) < 300
             and (about is None or about in json.dumps(post.get("body"), ensure_ascii=False))]
    by_destination: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    both: dict[str, Counter[str]] = {}
    for post in posts:
        destination, status = destination_of(post), post_status(post)
        by_destination[destination] += 1
        by_status[status] += 1
        both.setdefault(destination, Counter())[status] += 1
    return {"total": len(posts), "by_destination": dict(sorted(by_destination.items())),
            "by_status": dict(by_status),
            "by_destination_and_status": {d: dict(c) for d, c in sorted(both.items())}}
