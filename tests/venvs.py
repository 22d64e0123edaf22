"""Isolated virtualenvs for checks that need another package set than the development venv's.

    python -m tests.venvs mwaa       # MWAA's packages: Airflow 3.3.1, the amazon provider, requirements.txt
    python -m tests.venvs checkov    # the pinned IaC scanner (its pins conflict with Airflow's constraints)

Each venv lives in ``.local/venvs/<name>-<key>``, where the key hashes the requirements it was built from
(and the interpreter): a rerun with unchanged requirements reuses it at once, a changed requirement builds
a new one (and removes the stale ones). pip's own wheel cache makes a rebuild cheap. `make test` builds
them before pytest runs, so the tests themselves only reuse them.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_ROOT = REPO_ROOT / ".local" / "venvs"
CONSTRAINTS = REPO_ROOT / "constraints" / "constraints-airflow-3.3.1-python-3.12.txt"
ESSENTIAL = REPO_ROOT / "constraints" / "mwaa-essential-constraints-3.3.1.txt"
REQUIREMENTS = REPO_ROOT / "requirements.txt"
CHECKOV_REQUIREMENTS = REPO_ROOT / "infra" / "checkov" / "requirements.txt"
AMAZON_PROVIDER = "apache-airflow-providers-amazon"
_COMPLETE = ".complete"


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split(" #")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pin(path: Path, name: str) -> str:
    for line in _requirement_lines(path):
        if not line.startswith("-") and Requirement(line).name.lower() == name:
            return line
    raise SystemExit(f"{path}: no pin for {name}")


def mwaa_requirements() -> str:
    """What an MWAA worker has for our code: Airflow and the amazon provider as MWAA pins them, plus
    requirements.txt, all under the vendored copy of the constraints its --constraint line names."""
    ours = [line for line in _requirement_lines(REQUIREMENTS) if not line.startswith("-")]
    return "\n".join([
        f"-c {CONSTRAINTS}",
        _pin(ESSENTIAL, "apache-airflow"),
        _pin(CONSTRAINTS, AMAZON_PROVIDER),
        *ours,
        f"# constraints sha256 {hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()}",
    ]) + "\n"


def checkov_requirements() -> str:
    return CHECKOV_REQUIREMENTS.read_text(encoding="utf-8")


SETS: dict[str, Callable[[], str]] = {"mwaa": mwaa_requirements, "checkov": checkov_requirements}


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure(name: str, requirements: str | None = None, *, python: str = sys.executable,
           root: Path = VENV_ROOT) -> Path:
    """The venv for ``name`` built from ``requirements`` (default: its set above); builds it when missing."""
    requirements = SETS[name]() if requirements is None else requirements
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                             check=True).stdout.strip()
    portable = requirements.replace(str(REPO_ROOT), "<repo>")  # the same key in any checkout
    key = hashlib.sha256(f"{version}\n{portable}".encode()).hexdigest()[:12]
    venv = root / f"{name}-{key}"
    if (venv / _COMPLETE).is_file():
        return venv
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; a waiting one then finds it complete
        if (venv / _COMPLETE).is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        started = time.monotonic()
        print(f"building {venv.relative_to(REPO_ROOT) if venv.is_relative_to(REPO_ROOT) else venv} ...",
              file=sys.stderr, flush=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        (venv / "requirements.txt").write_text(requirements, encoding="utf-8")
        subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(venv / "requirements.txt")], check=True)
        (venv / _COMPLETE).write_text(f"{time.monotonic() - started:.1f} s\n", encoding="utf-8")
        for stale in root.glob(f"{name}-*"):
            if stale != venv:
                shutil.rmtree(stale, ignore_errors=True)
    return venv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=sorted(SETS))
    args = parser.parse_args(argv)
    for name in args.names:
        print(ensure(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
