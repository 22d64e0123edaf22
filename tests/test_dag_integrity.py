"""Every DAG file: imports fast and offline, no cycles, owner/tags/retries set."""

from __future__ import annotations

import importlib
import socket
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parent.parent / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
# What a running dag-processor has loaded before it parses our files.
WARM_IMPORTS = [
    "airflow.sdk",
    "airflow.providers.amazon.aws.operators.emr",
    "airflow.providers.amazon.aws.sensors.emr",
    "airflow.providers.amazon.aws.operators.athena",
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.amazon.aws.hooks.dynamodb",
    "airflow.providers.amazon.aws.hooks.glue_catalog",
    "airflow.providers.standard.sensors.python",
]


class NetworkBlocked(AssertionError):
    pass


@pytest.fixture(scope="module")
def dagbag():
    for module in WARM_IMPORTS:
        importlib.import_module(module)
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise NetworkBlocked(f"network access during DAG import: {args[1:] if len(args) > 1 else args}")

    with pytest.MonkeyPatch.context() as patch:
        # Any connect (AWS, the metadata DB over TCP, GitHub, X) fails the import instead of hanging.
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.delenv("AIRFLOW_VAR_COVID19_LAKE", raising=False)
        bag = DagBag(dag_folder=str(DAGS_DIR), safe_mode=False)
    return bag


def test_dag_files_exist():
    assert {p.name for p in DAG_FILES} >= {"jhu_daily_reports.py", "jhu_backfill.py"}


def test_every_file_imports_without_error_offline(dagbag):
    assert dagbag.import_errors == {}
    files_with_dags = {Path(stat.file).name for stat in dagbag.dagbag_stats if stat.dag_num}
    assert files_with_dags == {p.name for p in DAG_FILES}


@pytest.mark.parametrize("dag_file", [p.name for p in DAG_FILES])
def test_each_file_imports_in_under_a_second(dagbag, dag_file):
    stat = next(s for s in dagbag.dagbag_stats if Path(s.file).name == dag_file)
    assert stat.duration.total_seconds() < 1.0, f"{dag_file} took {stat.duration.total_seconds():.2f}s to import"


def test_one_dag_per_file_with_owner_tags_retries_and_no_cycles(dagbag):
    from airflow.utils.dag_cycle_tester import check_cycle

    per_file: dict[str, list[str]] = {}
    for dag_id, dag in dagbag.dags.items():
        per_file.setdefault(Path(dag.fileloc).name, []).append(dag_id)
        assert dag.tags, f"{dag_id} has no tags"
        check_cycle(dag)
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1 or task.task_type.endswith("Sensor"), (
                f"{dag_id}.{task.task_id} has no retries")
    assert all(len(ids) == 1 for ids in per_file.values()), per_file


def test_with_default_deferrable_only_the_end_sensor_defers(tmp_path):
    """On MWAA operators.default_deferrable is on. add_step must still return at once (RUNNING is recorded
    while the step runs); the end sensor may defer. The provider reads the option when it is imported,
    hence a fresh interpreter."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag({str(DAGS_DIR)!r}, safe_mode=False)\n"
        "print(json.dumps({d: {t.task_id: bool(getattr(t, 'deferrable', False)) for t in dag.tasks}\n"
        "                  for d, dag in bag.dags.items()}))\n"
    )
    env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
           "PYTHONPATH": os.pathsep.join([str(DAGS_DIR.parent / "plugins"), str(DAGS_DIR.parent)])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    deferrable = json.loads(out.stdout.strip().splitlines()[-1])
    for dag_id in ("jhu_daily_reports", "jhu_backfill", "tweets_process", "weekly_tweets_vs_cases"):
        assert deferrable[dag_id]["spark_job.add_step"] is False, dag_id
        assert deferrable[dag_id]["spark_job.wait_for_start"] is False, dag_id
        assert deferrable[dag_id]["spark_job.wait_for_end"] is True, dag_id
