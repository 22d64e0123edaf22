"""Every DAG file: imports fast and offline, no cycles, owner/tags/retries set."""

from __future__ import annotations

import importlib
import itertools
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

    from covid19_lake.dag_defaults import DEFAULT_ARGS

    per_file: dict[str, list[str]] = {}
    for dag_id, dag in dagbag.dags.items():
        per_file.setdefault(Path(dag.fileloc).name, []).append(dag_id)
        # One project tag (the UI's filter for all of them) and the defaults from one place.
        assert "covid19-lake" in dag.tags, f"{dag_id} tags {sorted(dag.tags)} lack 'covid19-lake'"
        assert DEFAULT_ARGS.items() <= dag.default_args.items(), f"{dag_id} does not use dag_defaults.DEFAULT_ARGS"
        check_cycle(dag)
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
            assert task.retries >= 1 or task.task_type.endswith("Sensor"), (
                f"{dag_id}.{task.task_id} has no retries")
    assert all(len(ids) == 1 for ids in per_file.values()), per_file


PROCESSING_DAGS = ("jhu_daily_reports", "jhu_backfill", "tweets_process", "weekly_tweets_vs_cases")
SPARK_JOB_ORDER = ["acquire_cluster", "claim", "add_step", "wait_for_start", "mark_running", "wait_for_end",
                   "add_partitions", "record_results", "release_cluster"]


@pytest.mark.parametrize("dag_id", PROCESSING_DAGS)
def test_each_processing_dag_chains_setup_body_teardown_in_order(dagbag, dag_id):
    """The DAG file's chain() puts the shared tasks in the documented order: one setup that acquires the
    cluster, the body, one teardown that only it pairs with; no branch or join tasks."""
    dag = dagbag.dags[dag_id]
    ids = [f"spark_job.{name}" for name in SPARK_JOB_ORDER]
    assert sorted(t.task_id for t in dag.tasks if t.task_id.startswith("spark_job.")) == sorted(ids)
    for before, after in itertools.pairwise(ids):
        assert before in dag.get_task(after).upstream_task_ids, (before, after)
    acquire, release = dag.get_task(ids[0]), dag.get_task(ids[-1])
    assert acquire.is_setup and release.is_teardown
    assert {t.task_id for t in dag.tasks if t.is_setup or t.is_teardown} == {ids[0], ids[-1]}
    assert not any(t.task_type in ("BranchPythonOperator", "_BranchPythonDecoratedOperator") for t in dag.tasks)
    # The cluster reaches the ALL_DONE tasks through add_step, never straight from the setup.
    assert set(acquire.downstream_task_ids) == {"spark_job.claim", "spark_job.add_step", ids[-1]}


def _deferrable_flags(env: dict[str, str]) -> dict[str, dict[str, bool]]:
    """Each task's deferrable flag as a fresh interpreter parses the DAGs in `env` (the provider reads
    operators.default_deferrable when it is imported)."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag({str(DAGS_DIR)!r}, safe_mode=False)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "print(json.dumps({d: {t.task_id: bool(getattr(t, 'deferrable', False)) for t in dag.tasks}\n"
        "                  for d, dag in bag.dags.items()}))\n"
    )
    env = {**os.environ, **env,
           "PYTHONPATH": os.pathsep.join([str(DAGS_DIR.parent / "plugins"), str(DAGS_DIR.parent)])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_step_sensors_follow_the_sensor_mode_setting_not_default_deferrable():
    """COVID19_LAKE_SENSOR_MODE alone decides (MWAA turns operators.default_deferrable on): deferrable, both
    step sensors defer to the triggerer; poke, neither does, whatever default_deferrable says."""
    deferred = _deferrable_flags({"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "False",
                                  "COVID19_LAKE_SENSOR_MODE": "deferrable"})
    poking = _deferrable_flags({"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True", "COVID19_LAKE_SENSOR_MODE": "poke"})
    for dag_id in PROCESSING_DAGS:
        for sensor in ("spark_job.wait_for_start", "spark_job.wait_for_end"):
            assert deferred[dag_id][sensor] is True, (dag_id, sensor)
            assert poking[dag_id][sensor] is False, (dag_id, sensor)


def test_no_sensor_reschedules_and_step_sensors_wait_for_the_step_time_limit(dagbag):
    from covid19_lake.config import ParseTimeSettings

    settings = ParseTimeSettings.from_env()
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            if getattr(task, "mode", None) is not None:
                assert task.mode == "poke", f"{dag.dag_id}.{task.task_id} reschedules"
    for dag_id in PROCESSING_DAGS:
        for sensor in ("spark_job.wait_for_start", "spark_job.wait_for_end"):
            task = dagbag.dags[dag_id].get_task(sensor)
            assert task.timeout == settings.step_timeout_seconds
            # Deferred, the trigger gives up after max_attempts x poke_interval: at least the time limit.
            assert task.max_attempts * int(task.poke_interval) >= settings.step_timeout_seconds


def test_daily_reports_catchup_is_off_by_default(dagbag):
    """Unpausing jhu_daily_reports must not start a run (and an EMR step) per past day."""
    assert dagbag.dags["jhu_daily_reports"].catchup is False
