"""The real Airflow 3.3.1 on the local stack, without Docker: api-server, scheduler, dag-processor and
triggerer as background processes (LocalExecutor, a PostgreSQL metadata DB of its own: local/postgres.py),
as `make airflow` starts them.

    python -m local.airflow_server up|down|status [--state-dir .local] [--port 8080]

`up` starts the local stack first when it is not running, then Postgres and Airflow, and returns once the API answers,
every component reports healthy and the DAGs are parsed; it prints the UI URL and the login. Running it
again while everything is up changes nothing. `down` stops every process it started (Postgres included),
then the stack.

The same machinery runs the end-to-end test tier and `make demo`, so what users click is what is tested.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from local import airflow_local
from local import config as stack_config
from local.airflow_api import AirflowApi
from local.postgres import STATE_FILE as POSTGRES_STATE_FILE
from local.postgres import LocalPostgres
from local.processes import group_alive, pid_alive

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
PROCESSES_FILE = "airflow-processes.json"
SECRETS_FILE = "airflow-secrets.json"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"
USERNAME = "admin"
DEFAULT_PORT = 8080
SECOND_SIGNAL_AFTER_SECONDS = 5.0
# DAGs that only ever run when someone asks: unpaused at start, so a trigger from the UI or the API runs
# at once. Scheduled DAGs stay paused, as on MWAA (dags_are_paused_at_creation).
MANUAL_DAGS = ("jhu_backfill",)


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _local_secrets(home: Path) -> dict[str, str]:
    """The JWT and session secrets every component must share; made once per Airflow home, never logged."""
    path = home / SECRETS_FILE
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    values = {"jwt_secret": secrets.token_urlsafe(32), "secret_key": secrets.token_urlsafe(32)}
    home.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values), encoding="utf-8")
    return values


def server_env(stack: Any, home: Path, port: int, **variable_overrides: Any) -> dict[str, str]:
    """`airflow_local.airflow_env` plus what running the real components needs (executor, API, auth)."""
    home = Path(home).resolve()
    keys = _local_secrets(home)
    base_url = f"http://127.0.0.1:{port}"
    return {
        **airflow_local.airflow_env(stack, home, **variable_overrides),
        # SQLite serves dag.test's one process; a scheduler beside an api-server needs a real server.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": LocalPostgres(home).url(),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Files are parsed at start; re-parse changed ones within seconds while developing.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        # As in the MWAA environment's AirflowConfigurationOptions (infra/covid19-lake.yaml).
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
    }


class AirflowServer:
    """The four components of one Airflow home, started and stopped together."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = Path(home).resolve()
        self.env = env
        self.base_url = env["AIRFLOW__API__BASE_URL"]
        self.log_dir = self.home / "logs"

    # -- state ---------------------------------------------------------------------------------------------
    def _pids(self) -> dict[str, int]:
        path = self.home / PROCESSES_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def alive(self) -> dict[str, bool]:
        return {name: pid_alive(pid) for name, pid in self._pids().items()}

    def password(self) -> str:
        path = self.home / PASSWORDS_FILE
        return json.loads(path.read_text(encoding="utf-8"))[USERNAME]

    def api(self) -> AirflowApi:
        return AirflowApi(self.base_url, USERNAME, self.password())

    def health(self) -> dict[str, Any] | None:
        import httpx

        try:
            response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def healthy(self) -> bool:
        health = self.health()
        if not health or health.get("metadatabase", {}).get("status") != "healthy":
            return False
        return all((health.get(key) or {}).get("status") == "healthy" for key in HEALTH_KEYS.values())

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self, timeout: float = 240.0, unpause: tuple[str, ...] = MANUAL_DAGS) -> AirflowServer:
        """Start whatever is not running; return once the API answers, all are healthy and DAGs parsed."""
        alive = self.alive()
        if alive and all(alive.values()) and set(alive) == set(COMPONENTS) and self.healthy():
            return self
        self.stop()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            LocalPostgres(self.home).start()
            airflow_local.ensure_metadata_db(self.env)
            deadline = time.monotonic() + timeout
            self._start_components()
            self._wait(lambda: self.healthy(), deadline, "every Airflow component to report healthy")
            api = self.api()
            expected = expected_dag_ids()
            self._wait(lambda: expected <= set(api.dags()) or self._import_errors(api), deadline,
                       f"the dag-processor to parse {sorted(expected)}")
            errors = self._import_errors(api)
            if errors:
                raise RuntimeError(f"DAG import errors: {errors}")
            for dag_id in unpause:
                api.set_paused(dag_id, False)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_components(self) -> None:
        pids: dict[str, int] = {}
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        for name in COMPONENTS:
            args = [airflow_bin(), name]
            if name == "api-server":
                args += ["--host", "127.0.0.1", "--port", self.env["AIRFLOW__API__PORT"], "--workers", "1"]
            with open(self.log_dir / f"{name}.log", "ab") as log_file:
                process = subprocess.Popen(args, cwd=airflow_local.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                           stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            pids[name] = process.pid
            # Written as each starts, so a failure part-way still stops what did start.
            (self.home / PROCESSES_FILE).write_text(json.dumps(pids), encoding="utf-8")

    def _wait(self, predicate: Any, deadline: float, message: str) -> None:
        while not predicate():
            dead = [name for name, up in self.alive().items() if not up]
            if dead:
                tails = {name: _tail(self.log_dir / f"{name}.log") for name in dead}
                raise RuntimeError(f"Airflow {dead} exited while waiting for {message}:\n" +
                                   "\n".join(f"--- {n} ---\n{t}" for n, t in tails.items()))
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out waiting for {message}; logs in {self.log_dir}")
            time.sleep(0.5)

    @staticmethod
    def _import_errors(api: AirflowApi) -> list[dict[str, Any]]:
        return api.request("GET", "/api/v2/importErrors")["import_errors"]

    def postgres(self) -> LocalPostgres | None:
        return LocalPostgres(self.home) if (self.home / POSTGRES_STATE_FILE).exists() else None

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM every component's process group (task processes included), SIGTERM the components again
        after a few seconds, SIGKILL what is left at the timeout; then stop the metadata DB's server."""
        pids = self._pids()
        for pid in pids.values():
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        began = time.monotonic()
        signalled_again = False
        while any(group_alive(pid) for pid in pids.values()) and time.monotonic() < began + timeout:
            if not signalled_again and time.monotonic() >= began + SECOND_SIGNAL_AFTER_SECONDS:
                # The scheduler's LocalExecutor waits for running tasks ("Signal again if you don't want to
                # wait"): a sensor poking for hours would hold `down` until SIGKILL.
                for pid in pids.values():
                    with suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGTERM)
                signalled_again = True
            time.sleep(0.2)
        for pid in pids.values():
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        (self.home / PROCESSES_FILE).unlink(missing_ok=True)
        postgres = self.postgres()
        if postgres:
            postgres.stop()
        return bool(pids)


def expected_dag_ids() -> set[str]:
    """The DAG ids of dags/ (one DAG a file, named after it)."""
    ignored = (airflow_local.REPO_ROOT / "dags" / ".airflowignore")
    patterns = ignored.read_text().split() if ignored.exists() else []
    return {p.stem for p in (airflow_local.REPO_ROOT / "dags").glob("*.py")
            if not any(pattern in p.name for pattern in patterns)}


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


# -- CLI ---------------------------------------------------------------------------------------------------
def _home(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "airflow"


def server_for(state_dir: Path, port: int) -> AirflowServer:
    from local.stack import RunningStack

    stack = RunningStack(state_dir)
    home = _home(state_dir)
    return AirflowServer(home, server_env(stack, home, port))


def is_up(state_dir: Path) -> bool:
    alive = AirflowServer(_home(state_dir), {"AIRFLOW__API__BASE_URL": ""}).alive()
    return bool(alive) and all(alive.values())


def stack_is_up(state_dir: Path) -> bool:
    from local.stack import daemon_pid

    return daemon_pid(Path(state_dir).resolve()) is not None


def up(state_dir: Path, port: int) -> AirflowServer:
    from local.stack import _parser, start_daemon

    start_daemon(_parser().parse_args(["up", "--state-dir", str(state_dir),
                                       "--airflow-base-url", f"http://127.0.0.1:{port}"]))
    return server_for(state_dir, port).start()


def down(state_dir: Path) -> None:
    from local.stack import stop_daemon

    home = _home(state_dir)
    if (home / PROCESSES_FILE).exists() or (home / POSTGRES_STATE_FILE).exists():
        AirflowServer(home, {"AIRFLOW__API__BASE_URL": ""}).stop()
    stop_daemon(state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.airflow_server", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=stack_config.DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    if args.command == "down":
        down(args.state_dir)
        print("Airflow and the local stack are stopped")
        return 0
    if args.command == "status":
        home = _home(args.state_dir)
        server = AirflowServer(home, {"AIRFLOW__API__BASE_URL": ""})
        alive = server.alive()
        postgres = server.postgres()
        alive["postgres"] = bool(postgres and postgres.running())
        print(json.dumps({"airflow_home": str(home), "processes": alive}, indent=2))
        return 0 if alive and all(alive.values()) else 3
    server = up(args.state_dir, args.port)
    print(f"Airflow 3.3.1 is up on the local stack: {server.base_url}/ (loopback only)\n"
          f"  log in as {USERNAME!r}; the generated password is in {server.home / PASSWORDS_FILE}\n"
          f"  logs: {server.log_dir}   stop everything: make airflow-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
