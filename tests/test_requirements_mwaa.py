"""requirements.txt (what MWAA installs) against the vendored MWAA constraints."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "requirements.txt"
DEV_REQUIREMENTS = REPO_ROOT / "requirements-dev.txt"
CONSTRAINTS = REPO_ROOT / "constraints" / "constraints-airflow-3.3.1-python-3.12.txt"
ESSENTIAL = REPO_ROOT / "constraints" / "mwaa-essential-constraints-3.3.1.txt"
CONSTRAINT_URL = "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.1/constraints-3.12.txt"


def _lines(path: Path) -> list[str]:
    return [line.split(" #")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _pins(path: Path) -> dict[str, tuple[str, str]]:
    """canonical name -> (version, original line) for every requirement line (options skipped)."""
    pins = {}
    for line in _lines(path):
        if line.startswith("-"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise AssertionError(f"{path.name}: {line!r} must pin exactly one version with ==")
        pins[canonicalize_name(requirement.name)] = (specifiers[0].version, line)
    return pins


def test_constraint_line_is_airflow_3_3_1_on_python_3_12() -> None:
    options = [line for line in _lines(REQUIREMENTS) if line.startswith("-")]
    assert options == [f'--constraint "{CONSTRAINT_URL}"']
    # The vendored copy is that same file.
    assert CONSTRAINT_URL in CONSTRAINTS.read_text(encoding="utf-8").splitlines()[1]


def test_every_requirement_is_pinned_to_the_constraints_version() -> None:
    requirements = _pins(REQUIREMENTS)
    assert requirements, "requirements.txt lists nothing"
    constraints = _pins(CONSTRAINTS)
    mismatched = {name: (pin, constraints[name][0]) for name, (pin, _) in requirements.items()
                  if name in constraints and constraints[name][0] != pin}
    assert mismatched == {}, "pins that differ from MWAA's constraints (requirement, constraint)"


def test_every_pin_resolves_here() -> None:
    """Each pin is installed at exactly that version in the development environment, which is built from
    the same constraints (requirements-dev.txt): the set resolves together."""
    installed = {name: importlib.metadata.version(name) for name in _pins(REQUIREMENTS)}
    assert installed == {name: version for name, (version, _) in _pins(REQUIREMENTS).items()}
    dev = _pins(DEV_REQUIREMENTS)
    assert {n: v for n, (v, _) in _pins(REQUIREMENTS).items()} == {
        n: dev[n][0] for n in _pins(REQUIREMENTS) if n in dev}


def test_nothing_mwaa_forbids() -> None:
    essential = {canonicalize_name(Requirement(line).name) for line in _lines(ESSENTIAL)}
    assert "apache-airflow" in essential and "celery" in essential  # the file parsed as expected
    listed = set(_pins(REQUIREMENTS))
    assert "apache-airflow" not in listed, "MWAA installs Airflow itself"
    assert listed & essential == set()


@pytest.mark.parametrize("line, problem", [
    ("tweepy>=4", "must pin exactly one version"),
    ("tweepy", "must pin exactly one version"),
])
def test_unpinned_lines_are_rejected(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(f"{line}\n")
    with pytest.raises(AssertionError, match=re.escape(problem)):
        _pins(path)
