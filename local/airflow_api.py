"""A small client for Airflow 3's REST API v2: what a user does from the UI, done over HTTP.

Used by `make demo`, the end-to-end test tier and the benchmarks, so they drive Airflow the way users
and MWAA's own API do (no `airflow` CLI, no in-process `dag.test()`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from local import processes

FINISHED_RUN_STATES = frozenset({"success", "failed"})
FINISHED_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


class AirflowApiError(RuntimeError):
    """The API answered with an error; the message names the call and what the API said."""


class AirflowApi:
    """Authenticated calls against one api-server (Airflow's simple auth manager issues the token)."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    # -- plumbing ------------------------------------------------------------------------------------------
    def _login(self) -> str:
        response = self._client.post("/auth/token", json=self._credentials)
        if response.status_code >= 400:
            raise AirflowApiError(f"login as {self._credentials['username']!r} failed: HTTP {response.status_code}")
        return response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; logs in first and again once when the token has expired."""
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            response = self._client.request(method, path, headers={"Authorization": f"Bearer {self._token}"},
                                            **kwargs)
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if response.status_code >= 400:
                raise AirflowApiError(f"{method} {path}: HTTP {response.status_code}: {response.text[:1000]}")
            return response.json() if response.content else None
        raise AssertionError("unreachable")

    # -- DAGs and runs -------------------------------------------------------------------------------------
    def dags(self) -> dict[str, dict[str, Any]]:
        return {d["dag_id"]: d for d in self.request("GET", "/api/v2/dags", params={"limit": 100})["dags"]}

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: datetime | None = None,
                run_id: str | None = None, run_after: datetime | None = None) -> dict[str, Any]:
        """Trigger a run (as the UI's trigger form does). A paused DAG's run waits in `queued`. A logical date
        is unique per DAG; a run without one (Airflow 3) can be triggered again, `run_after` saying when."""
        body: dict[str, Any] = {"conf": conf or {},
                                "logical_date": logical_date.isoformat() if logical_date else None}
        if run_after:
            body["run_after"] = run_after.isoformat()
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Task instances by task id (mapped ones as `task_id[index]`)."""
        found = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                             params={"limit": 1000})["task_instances"]
        return {t["task_id"] + (f"[{t['map_index']}]" if t.get("map_index", -1) >= 0 else ""): t for t in found}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {key: ti["state"] for key, ti in self.task_instances(dag_id, run_id).items()}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0, interval: float = 0.5
                     ) -> dict[str, Any]:
        """Poll until the run is success or failed; return it. A run still queued on a paused DAG says so."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED_RUN_STATES:
                return run
            if time.monotonic() >= deadline:
                hint = ""
                if run["state"] == "queued" and self.dags().get(dag_id, {}).get("is_paused"):
                    hint = f" (DAG {dag_id} is paused: its runs stay queued until it is unpaused)"
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s{hint}")
            time.sleep(interval)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, message: str, interval: float = 0.5) -> Any:
        return processes.wait_for(predicate, timeout=timeout, interval=interval, message=message)

    # -- backfills -----------------------------------------------------------------------------------------
    def create_backfill(self, dag_id: str, from_date: datetime, to_date: datetime, **options: Any) -> dict[str, Any]:
        """POST /api/v2/backfills: Airflow plans one run per logical date of the range. Needs a Postgres or
        MySQL metadata DB (local/postgres.py): on SQLite under a running scheduler Airflow answers 503."""
        body = {"dag_id": dag_id, "from_date": from_date.isoformat(), "to_date": to_date.isoformat(), **options}
        return self.request("POST", "/api/v2/backfills", json=body)
