"""Drive Debian's headless Chromium over the DevTools protocol (no browser download, loopback only).

Used by the dashboard's browser test and by anyone who wants a screenshot of a served page:

    with Browser.launch() as browser:
        page = browser.open("http://127.0.0.1:8050/?country=Germany")
        page.wait_for("document.body.dataset.ready === 'true'")
        page.screenshot(Path("dashboard.png"))
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)


def find_chromium() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium on PATH: install Debian's package with `apt-get install -y chromium`")


def poll(condition: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Call `condition` until it returns something truthy; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Page:
    ws: ClientConnection
    exceptions: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method} failed: {message['error']}")
                return message.get("result", {})
            self._on_event(message)

    def _on_event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        return poll(lambda: self.evaluate(expression), timeout, expression)

    def screenshot(self, path: Path, width: int = 1400) -> Path:
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@dataclass
class Browser:
    process: subprocess.Popen[bytes]
    port: int

    @classmethod
    @contextmanager
    def launch(cls, executable: str | None = None, timeout: float = 60) -> Iterator[Browser]:
        profile = Path(tempfile.mkdtemp(prefix="covid19-lake-chromium-"))
        command = [executable or find_chromium(), *FLAGS, f"--user-data-dir={profile}",
                   "--window-size=1400,1000", "about:blank"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            active = profile / "DevToolsActivePort"

            def port_file() -> str | None:
                if process.poll() is not None:
                    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    raise RuntimeError(f"Chromium exited with {process.returncode}: {stderr[-2000:]}")
                text = active.read_text() if active.is_file() else ""
                return text if "\n" in text else None

            port = int(poll(port_file, timeout, "Chromium's DevTools port").splitlines()[0])
            yield cls(process, port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            shutil.rmtree(profile, ignore_errors=True)

    def _json(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def open(self, url: str) -> Page:
        target = self._json(f"/json/new?{urllib.parse.quote(url, safe='')}", method="PUT")
        page = Page(connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        page.send("Runtime.enable")
        page.send("Page.enable")
        return page
