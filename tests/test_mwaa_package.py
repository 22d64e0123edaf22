"""plugins.zip and dags/ work on MWAA's packages alone: every module imports, every DAG parses.

The check runs in a clean venv holding only what an MWAA worker has for our code (Airflow 3.3.1 and the
amazon provider as MWAA pins them, plus requirements.txt, under the vendored constraints; built once and
cached by tests/venvs.py). The repository is not on its path: the code comes from the unpacked plugins.zip
(what `make package` builds) and a copy of dags/ (what `make deploy` uploads), laid out as MWAA lays them
out, with infra/mwaa/startup.sh sourced first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from infra.deploy import dag_artifacts
from infra.package import build_plugins_zip
from tests import venvs

REPO_ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import importlib, json, pathlib, sys, traceback
plugins, dags = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
report = {"modules": {}, "import_errors": {}, "sys_path": sys.path}
for path in sorted(plugins.rglob("*.py")):
    parts = path.relative_to(plugins).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    try:
        report["modules"][name] = importlib.import_module(name).__file__
    except BaseException:
        report["import_errors"][name] = traceback.format_exc(limit=3)
for dev_only in ("duckdb", "local", "pyspark", "moto"):
    try:
        importlib.import_module(dev_only)
        report.setdefault("dev_only_importable", []).append(dev_only)
    except ImportError:
        pass
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=str(dags), safe_mode=False)
report["dag_import_errors"] = {pathlib.Path(k).name: v for k, v in bag.import_errors.items()}
report["dags"] = {dag_id: pathlib.Path(dag.fileloc).name for dag_id, dag in bag.dags.items()}
report["airflow"] = importlib.import_module("airflow").__version__
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def mwaa_layout(tmp_path_factory) -> Path:
    """/usr/local/airflow as MWAA fills it: plugins.zip unpacked into plugins/, dags/ from the bucket."""
    home = tmp_path_factory.mktemp("usr-local-airflow")
    archive = build_plugins_zip(REPO_ROOT / "plugins", home / "plugins.zip")
    zipfile.ZipFile(archive).extractall(home / "plugins")
    for artifact in dag_artifacts(REPO_ROOT / "dags"):
        target = home / artifact.key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact.path, target)
    return home


@pytest.fixture(scope="module")
def report(mwaa_layout: Path) -> dict:
    python = venvs.venv_python(venvs.ensure("mwaa"))
    home = mwaa_layout
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "PYTHONPATH": str(home / "plugins"),  # MWAA puts the unpacked plugins folder on sys.path
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    }
    startup = REPO_ROOT / "infra" / "mwaa" / "startup.sh"
    result = subprocess.run(
        ["bash", "-c", f'source "{startup}" >/dev/null && exec "{python}" -s -c "$0" "$@"', PROBE,
         str(home / "plugins"), str(home / "dags")],
        capture_output=True, text=True, env=env, cwd=home, timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    return json.loads(lines[-1].removeprefix("REPORT "))


def test_the_venv_is_mwaa_s_set_and_the_repository_is_not_on_its_path(report: dict, mwaa_layout: Path) -> None:
    assert report["airflow"] == "3.3.1"
    assert report.get("dev_only_importable", []) == []
    from_repo = [p for p in report["sys_path"]
                 if Path(p).is_relative_to(REPO_ROOT) and not Path(p).is_relative_to(venvs.VENV_ROOT)]
    assert from_repo == []
    assert all(Path(f).is_relative_to(mwaa_layout / "plugins") for f in report["modules"].values())


def test_every_module_in_plugins_zip_imports(report: dict, mwaa_layout: Path) -> None:
    assert report["import_errors"] == {}
    names = set(report["modules"])
    assert {"covid19_lake", "covid19_lake.config", "covid19_lake.analytics.tasks"} <= names
    shipped = {p.relative_to(mwaa_layout / "plugins").as_posix() for p in (mwaa_layout / "plugins").rglob("*.py")}
    assert len(names) == len(shipped)


def test_plugins_zip_holds_no_development_module(mwaa_layout: Path) -> None:
    names = zipfile.ZipFile(mwaa_layout / "plugins.zip").namelist()
    for dev_only in ("dashboard", "demo", "duck", "fixture_lake", "headless", "serve"):
        assert f"covid19_lake/analytics/{dev_only}.py" not in names
    assert not [n for n in names if n.startswith(("local/", "tests/"))]


def test_every_dag_parses(report: dict) -> None:
    assert report["dag_import_errors"] == {}
    dag_files = {p.name for p in (REPO_ROOT / "dags").glob("*.py")}
    assert set(report["dags"].values()) == dag_files
