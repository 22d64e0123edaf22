"""Shared test fixtures: one SparkSession per test session, an isolated Airflow home, the JHU mirror."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import pytest

# The session's one embedded local AWS stack (moto server, EMR step runner, webhook sink, and the stream
# bridge running what the template attaches to streams: the notifier on the job table).
pytest_plugins = ["tests.fixtures_local_stack"]

REPO_ROOT = Path(__file__).resolve().parent.parent
JHU_MIRROR = (REPO_ROOT.parent / "shared" / "data" / "jhu" / "daily_reports").resolve()

# Airflow reads its configuration at import time, so the isolated home must exist before any test
# module imports airflow. Tests never touch ~/airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="covid19-lake-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO_ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# No test may reach real AWS: fake credentials and a region, endpoints set per fixture.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def jhu_mirror() -> Path:
    """The offline mirror of JHU's daily reports in ../shared (read only, never copied)."""
    if not JHU_MIRROR.is_dir():
        pytest.fail(f"JHU mirror not found at {JHU_MIRROR}: ../shared must sit beside the repository")
    return JHU_MIRROR


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession of the test session, configured as the jobs configure theirs."""
    from spark_common import build_spark_session

    # Python workers must run the venv's interpreter (the one with pyspark's exact version), not PATH's.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # Hadoop's stock local file system, as every other user of the jobs has.
    session = build_spark_session("covid19-lake-tests", master="local[2]", extra_conf={
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.driver.memory": "1g",
    })
    yield session
    session.stop()
    # py4j logs "Closing down clientserver connection" from an atexit hook, after pytest closed the
    # streams its log handlers write to ("--- Logging error ---"): nothing to report by then.
    logging.getLogger("py4j").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def airflow_local_env(local_stack, jhu_mirror) -> dict[str, str]:
    """The environment Airflow needs for the session's local stack (as `make demo` sets it), with the
    metadata DB migrated once."""
    from local import airflow_local

    env = airflow_local.airflow_env(local_stack, Path(os.environ["AIRFLOW_HOME"]),
                                    jhu={"source_url": jhu_mirror.as_uri()})
    airflow_local.ensure_metadata_db(env)
    return env


@pytest.fixture
def airflow_on_local_stack(local_stack, airflow_local_env, monkeypatch):
    """Airflow 3.3.1 in this process, pointed at the local stack for one test only: the endpoint and
    credentials must not leak into tests that use moto's in-process mock."""
    for key, value in airflow_local_env.items():
        monkeypatch.setenv(key, value)
    return local_stack
