"""Message content and per-destination rendering, checked against golden messages reviewed by eye.

Regenerate the golden files after a deliberate format change, then review the diff:
    NOTIFIER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_notifier_format.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lambdas.notifier.chime import CHIME_MAX_CONTENT, render_chime
from lambdas.notifier.message import (
    airflow_run_url,
    build_notification,
    emr_cluster_url,
    format_count,
    format_duration,
    format_time,
    scrub,
    truncate_middle,
)
from lambdas.notifier.slack import render_slack
from lambdas.notifier.teams import render_teams
from lambdas.notifier.transitions import Transition, detect_transition
from tests.fixtures.notifier.events import item, record

GOLDEN = Path(__file__).parent / "fixtures" / "notifier" / "golden"
AIRFLOW = "https://airflow.covid19-lake.example"

CASES: dict[str, dict[str, Any]] = {
    "submitted": record("INSERT", new=item("SUBMITTED")),
    "running": record("MODIFY", new=item("RUNNING"), old=item("SUBMITTED")),
    "completed": record("MODIFY", new=item("COMPLETED"), old=item("RUNNING")),
    "failed": record("MODIFY", new=item("FAILED", try_number=2), old=item("RUNNING")),
    "skipped": record("INSERT", new=item("SKIPPED", cluster_id=None, step_id=None)),
    "minimal": record("INSERT", new={"job_date": "2020-03-22", "job_name": "tweets_process"}),
}


def notification_for(case: str, **kwargs: Any):
    transition = detect_transition(CASES[case])
    assert transition is not None
    return build_notification(transition, airflow_base_url=AIRFLOW, console_region="us-east-1", **kwargs)


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NOTIFIER_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with NOTIFIER_UPDATE_GOLDEN=1 once and review it"
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def pretty(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


@pytest.mark.parametrize("case", list(CASES))
def test_chime_golden(case):
    payload = render_chime(notification_for(case))
    assert list(payload) == ["Content"]
    assert payload["Content"].startswith("/md ")
    assert len(payload["Content"]) <= CHIME_MAX_CONTENT
    assert_golden(f"{case}.chime.md", payload["Content"] + "\n")


@pytest.mark.parametrize("case", list(CASES))
def test_slack_golden(case):
    payload = render_slack(notification_for(case))
    assert payload["text"] and payload["blocks"][0]["type"] == "header"
    assert_golden(f"{case}.slack.json", pretty(payload))


@pytest.mark.parametrize("case", list(CASES))
def test_teams_golden(case):
    payload = render_teams(notification_for(case))
    attachment = payload["attachments"][0]
    assert payload["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    assert_golden(f"{case}.teams.json", pretty(payload))


def test_content_of_a_failure():
    n = notification_for("failed")
    assert n.title == "❌ FAILED: jhu_daily_reports for 2020-03-22"
    assert n.status_text == "FAILED (try 2, was RUNNING)"
    facts = dict(n.facts())
    assert facts["Duration"] == "12m 34s"
    assert facts["Ended"] == "2020-03-23T06:13:44Z"
    assert facts["Rows written"] == "0"
    assert n.error is not None and "FileNotFoundException" in n.error
    assert [link.url for link in n.links] == [
        f"{AIRFLOW}/dags/jhu_daily_reports/runs/scheduled__2020-03-23T06%3A00%3A00%2B00%3A00",
        "https://us-east-1.console.aws.amazon.com/emr/home?region=us-east-1#/clusterDetails/j-2AXXXXXXGAPLF",
    ]


def test_error_is_shown_only_for_failures():
    transition = detect_transition(record("MODIFY", new=item("COMPLETED", error="old error"), old=item("FAILED")))
    assert transition is not None
    notification = build_notification(transition, airflow_base_url=None, console_region=None)
    assert notification.error is None and notification.links == ()


@pytest.mark.parametrize("image", [
    {},
    {"status": "FAILED"},
    {"status": "COMPLETED", "rows_written": "n/a", "duration_seconds": "slow", "started_at": "yesterday",
     "ended_at": 17, "try_number": None, "attempts": "garbled", "error": ""},
    {"status": "RUNNING", "dag_id": "d", "run_id": None, "cluster_id": ""},
])
def test_missing_or_odd_attributes_never_crash(image):
    transition = Transition("evt", "INSERT", None, image.get("status"), image)
    notification = build_notification(transition, airflow_base_url=AIRFLOW, console_region="us-east-1")
    for render in (render_chime, render_slack, render_teams):
        assert json.dumps(render(notification), ensure_ascii=False)
    assert notification.job_name == "unknown" and notification.job_date == "unknown"
    if image.get("rows_written") == "n/a":
        facts = dict(notification.facts())
        # Values that are not what was expected are shown as given, not dropped.
        assert (facts["Rows written"], facts["Duration"], facts["Started"], facts["Ended"]) == (
            "n/a", "slow", "yesterday", "17")


def test_duration_is_computed_when_not_recorded():
    transition = detect_transition(record("INSERT", new=item("COMPLETED", duration_seconds=None,
                                                          ended_at="2020-03-23T07:02:20+00:00")))
    assert transition is not None
    notification = build_notification(transition, airflow_base_url=None, console_region=None)
    assert notification.duration == "1h 01m 10s"


def test_value_formatting():
    assert format_count(1234567) == "1,234,567" and format_count("12") == "12" and format_count(None) is None
    assert format_duration(0) == "0s" and format_duration(59.6) == "1m 00s" and format_duration(3600) == "1h 00m 00s"
    assert format_time("2020-03-23T08:00:01.123456+02:00") == "2020-03-23T06:00:01Z"
    assert format_time("2020-03-23T06:00:01") == "2020-03-23T06:00:01Z"
    assert airflow_run_url(AIRFLOW, "d", "manual__2020-01-01T00:00:00+00:00") == (
        f"{AIRFLOW}/dags/d/runs/manual__2020-01-01T00%3A00%3A00%2B00%3A00")
    assert airflow_run_url(None, "d", "r") is None and airflow_run_url(AIRFLOW, "d", None) is None
    assert emr_cluster_url(None, "j-1") is None and emr_cluster_url("us-east-1", None) is None


def test_long_error_keeps_head_and_tail_within_every_limit():
    error = "HEAD " + "x" * 50_000 + " | <tail> & ``` TAIL"
    transition = detect_transition(record("MODIFY", new=item("FAILED", error=error), old=item("RUNNING")))
    assert transition is not None
    notification = build_notification(transition, airflow_base_url=AIRFLOW, console_region="us-east-1")

    chime = render_chime(notification)["Content"]
    assert len(chime) <= CHIME_MAX_CONTENT and len(chime) > CHIME_MAX_CONTENT - 10
    assert "HEAD" in chime and "TAIL" in chime and "characters cut" in chime
    assert chime.count("```") == 2  # the error cannot close the code block early
    assert "| Links | [Airflow run](" in chime

    slack = render_slack(notification)
    error_block = slack["blocks"][2]["text"]["text"]
    assert len(error_block) <= 3000 and "HEAD" in error_block and "TAIL" in error_block
    assert "&lt;tail&gt; &amp;" in error_block and "<tail>" not in error_block
    assert all(len(field["text"]) <= 2000 for field in slack["blocks"][1]["fields"])
    assert len(slack["blocks"][1]["fields"]) <= 10

    teams_text = render_teams(notification)["attachments"][0]["content"]["body"][-1]["text"]
    assert len(teams_text) <= 4000 and teams_text.endswith("TAIL")


def test_chime_limit_holds_for_any_budget():
    notification = notification_for("failed")
    for limit in (200, 700, 1000, 4096):
        assert len(render_chime(notification, max_chars=limit)["Content"]) <= limit


def test_truncate_middle_is_exact():
    text = "".join(chr(65 + i % 26) for i in range(10_000))
    for limit in (30, 99, 100, 101, 1000, 9999):
        cut = truncate_middle(text, limit)
        assert len(cut) <= limit and cut.startswith("ABC")
    assert truncate_middle("short", 10) == "short"


def test_cells_escape_pipes_and_newlines():
    transition = detect_transition(record("INSERT", new=item("SUBMITTED", job_name="a|b\nc")))
    assert transition is not None
    content = render_chime(build_notification(transition, airflow_base_url=None, console_region=None))["Content"]
    assert "| Job | `a\\|b c` |" in content


def test_secrets_in_free_text_are_masked():
    hook = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    text = (f"post to {hook} failed; s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI@bucket/key; "
            "https://x.blob.core.windows.net/c?sv=1&sig=abcdEFGH%2B; token=xoxb-1234567890-abcdef; "
            "https://prod-1.westus.logic.azure.com/workflows/1/triggers/manual/paths/invoke?sp=x")
    masked = scrub(text, ["https://custom.example/my-hook-token"])
    for secret in ("XXXXSECRET", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "abcdEFGH", "xoxb-1234567890", "sp=x"):
        assert secret not in masked
    assert scrub("see https://custom.example/my-hook-token now", ["https://custom.example/my-hook-token"]) == (
        "see *** now")
    assert scrub("Task 3 in stage 2.0 failed 4 times") == "Task 3 in stage 2.0 failed 4 times"
