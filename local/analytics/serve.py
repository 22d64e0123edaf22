"""A static file server for the dashboard, bound to the loopback interface only.

    python -m local.analytics.serve --dir .local/site [--port 8050]
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEFAULT_PORT = 8050


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def make_server(directory: Path, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server for `directory` on host:port (port 0 picks a free one); only loopback hosts are allowed."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"refusing to serve the dashboard on {host}: only loopback addresses are allowed")
    if not (Path(directory) / "index.html").is_file():
        raise FileNotFoundError(f"{directory} has no index.html: write the site first")
    handler = functools.partial(_QuietHandler, directory=str(directory))
    return ThreadingHTTPServer((host, port), handler)


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve_in_thread(directory: Path, port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = make_server(directory, port)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-server", daemon=True)
    thread.start()
    return server, thread


def serve_until_interrupted(site: Path, port: int = DEFAULT_PORT, path: str = "") -> None:
    """Serve ``site`` on 127.0.0.1 until Ctrl-C."""
    server = make_server(site, port)
    print(f"open the dashboard at {url_of(server)}{path}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the dashboard on 127.0.0.1")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve_until_interrupted(args.dir, args.port)


if __name__ == "__main__":
    main()
