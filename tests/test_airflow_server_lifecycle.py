"""`make airflow-down` (python -m local.airflow_server down) leaves nothing running: every process group
it started, their children (task processes), and the metadata DB's Postgres server."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from local import airflow_server
from local.postgres import LocalPostgres
from local.processes import all_pids, in_group

# A component stand-in: a process group whose leader has a child, as a worker has task processes.
COMPONENT = ("import subprocess, sys, time\n"
             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
             "time.sleep(600)\n")


def group_members(pgid: int) -> list[int]:
    return [pid for pid in all_pids() if in_group(pid, pgid)]


def test_down_stops_every_component_group_its_children_and_postgres(tmp_path):
    state_dir = tmp_path / "state"
    home = state_dir / "airflow"
    postgres = LocalPostgres(home)
    try:
        postgres.start()
        started = {name: subprocess.Popen([sys.executable, "-c", COMPONENT], start_new_session=True)
                   for name in airflow_server.COMPONENTS}
        (home / airflow_server.PROCESSES_FILE).write_text(json.dumps({n: p.pid for n, p in started.items()}))
        deadline = time.monotonic() + 30
        while any(len(group_members(p.pid)) < 2 for p in started.values()):
            assert time.monotonic() < deadline, "the stand-in components did not start their children"
            time.sleep(0.05)
        assert postgres.running()

        assert airflow_server.main(["down", "--state-dir", str(state_dir)]) == 0

        for process in started.values():
            process.wait(timeout=10)
        assert {name: group_members(p.pid) for name, p in started.items()} == {n: [] for n in started}
        assert not postgres.running()
        assert not (home / airflow_server.PROCESSES_FILE).exists()
        # Twice is safe, and status says nothing runs.
        assert airflow_server.main(["down", "--state-dir", str(state_dir)]) == 0
        assert airflow_server.main(["status", "--state-dir", str(state_dir)]) == 3
    finally:
        postgres.destroy()


def test_the_local_postgres_refuses_a_wrong_password_keeps_its_own_0600_and_starts_twice_safely(tmp_path):
    import psycopg2

    postgres = LocalPostgres(tmp_path / "home")
    try:
        postgres.start()
        assert oct(postgres.state_path.stat().st_mode & 0o777) == "0o600"
        assert postgres.url().endswith(f"@127.0.0.1:{postgres.port}/airflow")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=postgres.port, user="airflow", password="wrong",
                             dbname="airflow", connect_timeout=5)
        port = postgres.port
        assert postgres.start().port == port and postgres.running()  # make airflow twice
    finally:
        postgres.destroy()
    assert not postgres.data_dir.exists()


def test_a_lost_state_file_over_a_running_cluster_gets_a_fresh_cluster_it_can_log_in_to(tmp_path):
    """As when pytest clears a basetemp while an interrupted run's server still runs on that path."""
    import psycopg2

    home = tmp_path / "home"
    LocalPostgres(home).start().state_path.unlink()
    url = LocalPostgres(home).url()  # as server_env reads it before AirflowServer.start() starts the server
    fresh = LocalPostgres(home)
    assert fresh.url() == url
    try:
        fresh.start()
        psycopg2.connect(host="127.0.0.1", port=fresh.port, user="airflow", password=fresh.state["password"],
                         dbname="airflow", connect_timeout=5).close()
    finally:
        fresh.destroy()
    assert not fresh.running()


def test_down_signals_again_a_scheduler_that_waits_for_its_running_tasks(tmp_path):
    """Airflow's LocalExecutor answers the first SIGTERM with "waiting for running tasks to finish. Signal
    again if you don't want to wait": `down` signals again instead of waiting for SIGKILL."""
    state_dir = tmp_path / "state"
    home = state_dir / "airflow"
    home.mkdir(parents=True)
    marker, ready = tmp_path / "signalled-again", tmp_path / "handler-installed"
    patient = ("import pathlib, signal, sys, time\n"
               "count = []\n"
               "def on_term(*_):\n"
               "    count.append(1)\n"
               f"    if len(count) == 2:\n        pathlib.Path({str(marker)!r}).write_text('2'); sys.exit(0)\n"
               "signal.signal(signal.SIGTERM, on_term)\n"
               f"pathlib.Path({str(ready)!r}).write_text('ready')\n"
               "while True: time.sleep(0.05)\n")
    scheduler = subprocess.Popen([sys.executable, "-c", patient], start_new_session=True)
    (home / airflow_server.PROCESSES_FILE).write_text(json.dumps({"scheduler": scheduler.pid}))
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "the stand-in scheduler did not start"
        time.sleep(0.05)
    assert airflow_server.main(["down", "--state-dir", str(state_dir)]) == 0
    scheduler.wait(timeout=10)
    assert marker.read_text() == "2"
    assert group_members(scheduler.pid) == []
