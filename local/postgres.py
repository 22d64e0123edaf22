"""The PostgreSQL server behind the local Airflow's metadata DB, as MWAA and docker-compose have one.

Airflow 3 refuses some writes on SQLite while a scheduler runs: `POST /api/v2/backfills` answers 503
"Database is locked ... not supported on SQLite under concurrent access". So `make airflow` and the
end-to-end tier run the stock PostgreSQL server of the machine (Debian's `postgresql` package, Homebrew's
`postgresql@16`) on a cluster of their own: loopback only, a free port, password authentication
(scram-sha-256) with a generated password kept 0600 beside the Airflow home, never logged.

PostgreSQL will not run as root; as root the server runs as the `postgres` system user the Debian package
creates, and its data directory moves to a place that user can reach when the Airflow home is not.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

STATE_FILE = "postgres.json"
DATABASE = "airflow"
USERNAME = "airflow"
SERVER_USER_WHEN_ROOT = "postgres"
BINARY_DIRS = ("/usr/lib/postgresql/*/bin", "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin")
INSTALL_HINT = ("The local Airflow's metadata DB needs a PostgreSQL server (initdb, pg_ctl):\n"
                "  Debian/Ubuntu: sudo apt-get install -y postgresql\n"
                "  macOS:         brew install postgresql@16")


class PostgresError(RuntimeError):
    """Postgres is missing or would not start; the message says which command and what it printed."""


def binary(name: str) -> str:
    """initdb/pg_ctl from PATH or the usual version directories (Debian keeps them off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for pattern in BINARY_DIRS:
        for directory in sorted(glob.glob(pattern), reverse=True):
            if (Path(directory) / name).is_file():
                return str(Path(directory) / name)
    raise PostgresError(f"{name} not found. {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _reachable_by_others(path: Path) -> bool:
    """Every existing ancestor lets other users through (the server user must reach its data directory)."""
    for ancestor in [path, *path.parents]:
        if ancestor.exists() and not ancestor.stat().st_mode & stat.S_IXOTH:
            return False
    return True


class LocalPostgres:
    """One cluster for one Airflow home: `start()` creates it on first use, `url()` is Airflow's DB URL."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).resolve()
        self.state_path = self.home / STATE_FILE
        self.run_as = SERVER_USER_WHEN_ROOT if os.geteuid() == 0 else None
        self.state = self._load_state()

    # -- state ---------------------------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        if self.state_path.exists():
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        state = {"port": free_port(), "password": secrets.token_urlsafe(24), "data_dir": str(self._data_dir()),
                 "initialized": False}
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_path.touch(mode=0o600)
        self.state_path.write_text(json.dumps(state), encoding="utf-8")
        return state

    def _save_state(self) -> None:
        self.state_path.write_text(json.dumps(self.state), encoding="utf-8")

    def _data_dir(self) -> Path:
        inside_home = self.home / "postgres"
        if self.run_as is None or _reachable_by_others(self.home):
            return inside_home
        # e.g. pytest's 0700 /tmp/pytest-of-root: the server user cannot reach it.
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "covid19-lake-postgres" / digest

    @property
    def data_dir(self) -> Path:
        return Path(self.state["data_dir"])

    @property
    def port(self) -> int:
        return int(self.state["port"])

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def url(self) -> str:
        return f"postgresql+psycopg2://{USERNAME}:{self.state['password']}@127.0.0.1:{self.port}/{DATABASE}"

    # -- commands ------------------------------------------------------------------------------------------
    def _as_server_user(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", self.run_as, "--", *args] if self.run_as else args
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=tempfile.gettempdir())

    def _run(self, args: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        result = self._as_server_user(args, timeout)
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise PostgresError(f"{' '.join(args[:2])} failed (exit {result.returncode}):\n"
                                f"{result.stdout[-2000:]}{result.stderr[-2000:]}{log}")
        return result

    def _chown(self, path: Path) -> None:
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(path, user.pw_uid, user.pw_gid)

    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._as_server_user([binary("pg_ctl"), "-D", str(self.data_dir), "status"], 30).returncode == 0

    def _initdb(self) -> None:
        if self.run_as:
            try:
                pwd.getpwnam(self.run_as)
            except KeyError:
                raise PostgresError(f"PostgreSQL does not run as root, and there is no {self.run_as!r} user to "
                                    f"run it as. {INSTALL_HINT}") from None
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made cluster from an interrupted first start
        self.data_dir.mkdir(mode=0o700)
        self._chown(self.data_dir)
        with tempfile.NamedTemporaryFile("w", dir=self.data_dir.parent, delete=False) as password_file:
            password_file.write(self.state["password"])
        try:
            os.chmod(password_file.name, 0o600)
            self._chown(Path(password_file.name))
            self._run([binary("initdb"), "-D", str(self.data_dir), "--username", USERNAME, "--auth",
                       "scram-sha-256", "--pwfile", password_file.name, "--encoding", "UTF8", "--no-instructions"])
        finally:
            Path(password_file.name).unlink(missing_ok=True)
        self.state["initialized"] = True
        self._save_state()

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        """Create the cluster on first use, start it when it is not running, create the Airflow database."""
        if not self.state.get("initialized") and (self.data_dir / "PG_VERSION").exists():
            # A cluster this state did not make (an earlier home of the same path lost its state file while
            # the server ran, as pytest's basetemp is cleared): its password is unknown.
            with suppress(PostgresError):
                self._run([binary("pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"])
            shutil.rmtree(self.data_dir)
        if not self.running():
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            if not _port_free(self.port):
                self.state["port"] = free_port()
                self._save_state()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} "
                       "-c max_connections=200")
            self._run([binary("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                       "-t", str(int(timeout)), "-o", options, "start"], timeout=timeout + 10)
        self._ensure_database(timeout)
        return self

    def _ensure_database(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=USERNAME,
                                              password=self.state["password"], dbname="postgres", connect_timeout=5)
                break
            except psycopg2.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            connection.close()

    def stop(self) -> None:
        if self.running():
            self._run([binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def destroy(self) -> None:
        """Stop the server and remove its cluster and state (the end-to-end tier's throwaway DB)."""
        with suppress(PostgresError):
            self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.state_path.unlink(missing_ok=True)
