"""checkov (pinned in infra/checkov/requirements.txt, in its own venv) over every template in infra/.

Each finding is either fixed in the template or skipped in the resource's Metadata with a one-line reason
(``Metadata: {checkov: {skip: [{id: CKV_..., comment: why}]}}``); nothing else may remain.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import venvs

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((REPO_ROOT / "infra").glob("*.yaml"))


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    python = venvs.venv_python(venvs.ensure("checkov"))
    command = [str(python), "-m", "checkov.main", "--framework", "cloudformation", "--output", "json",
               "--skip-download", "--compact", *(arg for path in TEMPLATES for arg in ("--file", str(path)))]
    # No update check against PyPI, no platform calls: the scan uses only what the pinned package ships.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(REPO_ROOT / ".local"),
           "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING",
           "CHECKOV_PARALLELIZATION_TYPE": "none"}  # two small files: forking workers costs more than it saves
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-4000:]  # 1: there are failed checks (reported below)
    parsed = json.loads(result.stdout)
    return parsed[0] if isinstance(parsed, list) else parsed


def _where(check: dict[str, Any]) -> str:
    return f"{Path(check['file_path']).name}:{check['resource']} {check['check_id']} ({check['check_name']})"


def test_every_template_is_scanned(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 50 and summary["resource_count"] > 50
    scanned = {Path(c["file_path"]).name for c in report["results"]["passed_checks"]}
    assert scanned == {p.name for p in TEMPLATES}


def test_no_finding_is_left(report: dict[str, Any]) -> None:
    assert [_where(c) for c in report["results"]["failed_checks"]] == []


def test_every_skip_says_why(report: dict[str, Any]) -> None:
    skipped = report["results"]["skipped_checks"]
    assert skipped, "expected the documented skips to show up as skipped"
    unexplained = [_where(c) for c in skipped
                   if len((c.get("check_result", {}).get("suppress_comment") or "").split()) < 4]
    assert unexplained == []
