"""Airflow 3.3.1 against the local stack: environment, metadata DB, and in-process DAG runs.

The same DAG files run here as on MWAA; only configuration differs: the AWS connection points at the
local stack's endpoint, the ``covid19_lake`` Variable is the one the template wrote for the local target
(local lake, the repo's spark_jobs/, DuckDB analytics; see local/stack.py), and the EMR step sensors ask
every second instead of every minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
JHU_MIRROR = (REPO_ROOT.parent / "shared" / "data" / "jhu" / "daily_reports").resolve()


def jhu_source_url() -> str | None:
    """The local mirror when there is one, else None (the DAGs then default to GitHub)."""
    override = os.environ.get("COVID19_LAKE_JHU_SOURCE_URL")
    if override:
        return override
    return JHU_MIRROR.as_uri() if JHU_MIRROR.is_dir() else None


def lake_variable(stack: Any, **overrides: dict[str, Any]) -> dict[str, Any]:
    """The ``covid19_lake`` Variable of a local stack (RunningStack or LocalStack): the one the template
    wrote, with the stack's local values, plus ``overrides`` by section (``emr={"cluster_mode": ...}``)."""
    from local.stack import merge_variable

    if not getattr(stack, "airflow_variable", None):
        raise RuntimeError("the local stack has no Airflow Variable (a stack.json from before the Variable "
                           "was written by the stack: restart it)")
    return merge_variable(stack.airflow_variable, overrides)


def airflow_env(stack: Any, airflow_home: Path, **variable_overrides: dict[str, Any]) -> dict[str, str]:
    """Everything Airflow needs in its environment to run our DAGs on the local stack."""
    return {
        **stack.env(),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "AIRFLOW_VAR_COVID19_LAKE": json.dumps(lake_variable(stack, **variable_overrides), sort_keys=True),
        # EMR step sensors defer to the triggerer as on MWAA (dag.test runs the trigger in process), asking
        # EMR every second; COVID19_LAKE_SENSOR_MODE=poke keeps them in their worker instead.
        "COVID19_LAKE_SENSOR_MODE": "deferrable",
        "COVID19_LAKE_SENSOR_POKE_SECONDS": "1",
        "COVID19_LAKE_LAND_RETRY_MINUTES": "0.05",
        "COVID19_LAKE_TWEETS_HOUR_POKE_SECONDS": "5",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
    }


def ensure_metadata_db(env: dict[str, str]) -> None:
    """Create or upgrade the metadata DB the environment names (a no-op when it is current)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), "db", "migrate"], env={**os.environ, **env},
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


def load_dag(dag_id: str) -> Any:
    """Parse dags/ as the dag-processor would; the environment must already be set."""
    from airflow.dag_processing.dagbag import DagBag

    plugins = str(REPO_ROOT / "plugins")
    if plugins not in sys.path:
        sys.path.insert(0, plugins)
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"), safe_mode=False)
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def run_dag(dag_id: str, logical_date: datetime | None = None, conf: dict[str, Any] | None = None) -> Any:
    """One DAG run in this process, tasks one after the other (Airflow's dag.test)."""
    dag = load_dag(dag_id)
    kwargs: dict[str, Any] = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
            for ti in dag_run.get_task_instances()}
