"""The end-to-end tier: the real Airflow 3.3.1 (api-server, scheduler, dag-processor, triggerer,
LocalExecutor) on the session's local stack, started once with the machinery of `make airflow`
(local/airflow_server.py) and driven only through the REST API v2, as users and MWAA's API drive it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from local.airflow_api import AirflowApi
from local.airflow_server import AirflowServer, server_env
from local.postgres import LocalPostgres


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def airflow_server(local_stack, jhu_mirror, tmp_path_factory) -> Iterator[AirflowServer]:
    home = tmp_path_factory.mktemp("airflow-e2e")
    env = server_env(local_stack, home, free_port(), jhu={"source_url": jhu_mirror.as_uri()})
    server = AirflowServer(home, env).start()
    try:
        yield server
    finally:
        server.stop()
        LocalPostgres(home).destroy()


@pytest.fixture(scope="session")
def api(airflow_server) -> Iterator[AirflowApi]:
    client = airflow_server.api()
    yield client
    client.close()
