"""Run-level messages: one DAG run over several dates, its dates as ranges and every failed date named.

Golden files as in test_notifier_format.py (regenerate with NOTIFIER_UPDATE_GOLDEN=1, then review the diff).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from lambdas.notifier.chime import CHIME_MAX_CONTENT, render_chime
from lambdas.notifier.message import (
    build_notification,
    date_ranges,
    format_ranges,
    group_failures,
    reported_by_run_item,
)
from lambdas.notifier.slack import SECTION_TEXT_MAX, render_slack
from lambdas.notifier.teams import MESSAGE_MAX_BYTES, render_teams
from lambdas.notifier.transitions import Transition, detect_transition
from tests.fixtures.notifier.events import (
    FORTY_DATES,
    SPARK_ERROR,
    date_record,
    item,
    record,
    run_item,
)
from tests.test_notifier_format import AIRFLOW, assert_golden, pretty

RUN_URL = f"{AIRFLOW}/dags/jhu_backfill/runs/manual__2026-11-28T12%3A00%3A00%2B00%3A00"

PARTLY_FAILURES = {
    "2020-03-04": "quarantine: every row failed the country check (a new column layout?)",
    "2020-03-05": "quarantine: every row failed the country check (a new column layout?)",
    "2020-03-06": "quarantine: every row failed the country check (a new column layout?)",
    "2020-03-22": SPARK_ERROR,
    "2020-04-02": "no result was recorded for this date",
    "2020-04-07": "ValueError: Last_Update '4/7/20 25:61' is not a timestamp",
}


def partly_failed(**changes: Any) -> dict[str, Any]:
    values = {"dates_completed": 34, "dates_failed": 6, "failures": PARTLY_FAILURES, "rows_written": 34 * 3417,
              "rows_quarantined": 3 * 3400 + 11, **changes}
    return run_item("FAILED", FORTY_DATES, **values)


def long_reason(n: int) -> str:
    return (f"org.apache.spark.SparkException: Job aborted due to stage failure {n}: "
            + "Caused by: java.io.IOException: s3a read of raw/jhu timed out after 3 retries; " * 8
            + f"root cause #{n}")


NINETY_DATES = [(date(2020, 3, 1) + timedelta(days=n)).isoformat() for n in range(90)]
LONG_FAILURES = {day: long_reason(n) for n, day in enumerate(NINETY_DATES[10:], start=1)}  # 80 dates

CASES: dict[str, dict[str, Any]] = {
    "run_submitted": record("INSERT", new=run_item("SUBMITTED")),
    "run_running": record("MODIFY", new=run_item("RUNNING"), old=run_item("SUBMITTED")),
    "run_completed": record("MODIFY", new=run_item("COMPLETED"), old=run_item("RUNNING")),
    "run_partly_failed": record("MODIFY", new=partly_failed(), old=run_item("RUNNING", FORTY_DATES)),
    "run_failed_long": record("MODIFY", new=run_item(
        "FAILED", NINETY_DATES, dates_completed=10, dates_failed=80, failures=LONG_FAILURES,
        rows_written=10 * 3417, rows_quarantined=2),
        old=run_item("RUNNING", NINETY_DATES)),
    "run_failed_before_step": record("INSERT", new=run_item(
        "FAILED", cluster_id=None, step_id=None, started_at=None, duration_seconds=None, rows_written=None,
        rows_quarantined=None, dates_completed=0, dates_failed=30,
        error="no EMR cluster named covid19-lake is STARTING, BOOTSTRAPPING, RUNNING or WAITING")),
}


def notification_for(case: str | dict[str, Any]):
    transition = detect_transition(CASES[case] if isinstance(case, str) else case)
    assert transition is not None
    return build_notification(transition, airflow_base_url=AIRFLOW, console_region="us-east-1")


@pytest.mark.parametrize("case", list(CASES))
def test_run_goldens(case):
    notification = notification_for(case)
    chime = render_chime(notification)
    assert len(chime["Content"]) <= CHIME_MAX_CONTENT
    assert_golden(f"{case}.chime.md", chime["Content"] + "\n")
    slack = render_slack(notification)
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_MAX for b in slack["blocks"] if b["type"] == "section"
               and "text" in b)
    assert_golden(f"{case}.slack.json", pretty(slack))
    teams = render_teams(notification)
    assert len(json.dumps(teams, ensure_ascii=False).encode("utf-8")) <= MESSAGE_MAX_BYTES
    assert_golden(f"{case}.teams.json", pretty(teams))


def test_dates_are_compact_ranges():
    assert date_ranges(["2020-03-03", "2020-03-01", "2020-03-02", "2020-03-05", "2020-03-05"]) == [
        ("2020-03-01", "2020-03-03"), ("2020-03-05", "2020-03-05")]
    assert format_ranges(["2020-02-28", "2020-02-29", "2020-03-01", "2020-03-03"]) == (
        "2020-02-28..2020-03-01, 2020-03-03")
    every_other = [f"2020-03-{n:02d}" for n in range(1, 32, 2)]
    assert format_ranges(every_other, max_ranges=3) == "2020-03-01, 2020-03-03, 2020-03-05, … and 13 more dates"
    assert format_ranges(["week-12", "2020-03-01", "2020-03-02"]) == "2020-03-01..2020-03-02, week-12"
    n = notification_for("run_submitted")
    assert n.title == "📤 SUBMITTED: jhu_daily_reports for 2020-03-01..2020-03-31 (30 dates)"
    assert dict(n.facts())["Dates"] == "2020-03-01..2020-03-10, 2020-03-12..2020-03-31 (30 dates)"


def test_partly_failed_40_date_run_names_each_failed_date_and_reason_everywhere():
    n = notification_for("run_partly_failed")
    assert n.title == "⚠️ PARTLY FAILED: jhu_daily_reports for 2020-03-01..2020-04-09 (40 dates)"
    facts = dict(n.facts())
    assert facts["Result"] == "34 of 40 dates completed, 6 failed"
    assert facts["Dates"] == "2020-03-01..2020-04-09 (40 dates)" and facts["Rows written"] == "116,178"
    assert [(g.dates, g.count) for g in n.failures] == [
        ("2020-03-04..2020-03-06", 3), ("2020-03-22", 1), ("2020-04-02", 1), ("2020-04-07", 1)]
    bodies = {
        "chime": render_chime(n)["Content"],
        "slack": json.dumps(render_slack(n), ensure_ascii=False),
        "teams": json.dumps(render_teams(n), ensure_ascii=False),
    }
    for name, body in bodies.items():
        for day in ("2020-03-04..2020-03-06", "2020-03-22", "2020-04-02", "2020-04-07"):
            assert day in body, (name, day)
        for reason in ("every row failed the country check", "FileNotFoundException", "retries exhausted",
                       "no result was recorded", "'4/7/20 25:61' is not a timestamp"):
            assert reason in body, (name, reason)
        assert "more failed date" not in body, name  # all six fit: nothing is left out


def test_a_long_failure_list_is_cut_with_a_count_and_a_link_in_every_destination():
    n = notification_for("run_failed_long")
    assert n.failed_count == 80 and len(n.failures) == 80
    chime = render_chime(n)["Content"]
    assert len(chime) <= CHIME_MAX_CONTENT
    slack = render_slack(n)
    teams = render_teams(n)
    teams_text = json.dumps(teams, ensure_ascii=False)
    shown = {
        "chime": sum(1 for day in LONG_FAILURES if f"`{day}`" in chime),
        "slack": sum(1 for day in LONG_FAILURES if f"`{day}`" in json.dumps(slack, ensure_ascii=False)),
        "teams": sum(1 for day in LONG_FAILURES if f'"title": "{day}"' in pretty(teams)),
    }
    assert all(0 < count < 80 for count in shown.values()), shown
    assert f"… and {80 - shown['chime']} more failed dates: [Airflow run]({RUN_URL})" in chime
    sections = [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section" and "text" in b]
    assert len(sections) == 3 and all(len(text) <= SECTION_TEXT_MAX for text in sections)
    assert sections[-1].endswith(f"• … and {80 - shown['slack']} more failed dates: <{RUN_URL}|Airflow run>")
    assert f"… and {80 - shown['teams']} more failed dates" in teams_text and f"[Airflow run]({RUN_URL})" in teams_text
    assert len(teams_text.encode("utf-8")) <= MESSAGE_MAX_BYTES
    # Each reason shown keeps its head and its tail.
    assert "Job aborted due to stage failure 1:" in chime and "root cause #1" in chime


def test_failed_dates_without_a_stored_reason_are_counted_and_the_link_is_optional():
    image = partly_failed(dates_failed=9, failures_without_reason=3, dag_id=None)
    n = build_notification(Transition("e", "MODIFY", "RUNNING", "FAILED", image), airflow_base_url=AIRFLOW,
                           console_region=None)
    assert n.more_url is None and n.links == ()
    chime = render_chime(n)["Content"]
    assert chime.endswith("- … and 3 more failed dates")
    assert "Failed dates (9)" in chime


def test_run_failed_before_any_step_shows_its_reason_once():
    n = notification_for("run_failed_before_step")
    assert n.title == "❌ FAILED: jhu_daily_reports for 2020-03-01..2020-03-31 (30 dates)"
    assert dict(n.facts())["Result"] == "0 of 30 dates completed, 30 failed" and n.failures == ()
    chime = render_chime(n)["Content"]
    assert chime.count("no EMR cluster named covid19-lake") == 1 and "Failed dates" not in chime


def test_a_huge_message_fits_every_limit_even_with_wide_characters():
    days = [f"2020-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)]
    failures = {day: "Côte d’Ivoire 😀 <&> " * 200 + f"end {day}" for day in days}
    image = run_item("FAILED", days, dates_completed=0, dates_failed=len(days), failures=failures,
                     error="E" * 50_000)
    n = build_notification(Transition("e", "INSERT", None, "FAILED", image), airflow_base_url=AIRFLOW,
                           console_region="us-east-1")
    assert len(render_chime(n)["Content"]) <= CHIME_MAX_CONTENT
    slack = render_slack(n)
    assert len(slack["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_MAX for b in slack["blocks"] if "text" in b
               and b["type"] == "section")
    assert len(json.dumps(render_teams(n), ensure_ascii=False).encode("utf-8")) <= MESSAGE_MAX_BYTES


@pytest.mark.parametrize("image", [
    {"record_type": "run"},
    {"record_type": "RUN", "status": "FAILED", "dates": "2020-03-01", "failures": ["x"], "dates_failed": "two",
     "dates_completed": None, "date_count": -3},
    {"record_type": "run", "status": "FAILED", "dates": [None, 7, "2020-03-01"], "failures": {"": "x", "d": None},
     "dates_completed": 1, "dates_failed": 1},
    {"record_type": "run", "status": "COMPLETED", "job_name": "x#run:d:r", "dates_completed": "1.5"},
])
def test_odd_run_items_never_crash(image):
    n = build_notification(Transition("evt", "INSERT", None, image.get("status"), image),
                           airflow_base_url=AIRFLOW, console_region="us-east-1")
    for render in (render_chime, render_slack, render_teams):
        assert json.dumps(render(n), ensure_ascii=False)
    assert n.is_run


def test_which_records_a_run_item_reports():
    assert reported_by_run_item(date_record("COMPLETED", "2020-03-02"))
    assert not reported_by_run_item(item("COMPLETED"))  # a single-date run reports itself
    assert not reported_by_run_item(run_item("COMPLETED", run_item="itself"))
    assert not reported_by_run_item(item("COMPLETED", run_item=""))


def test_failures_are_grouped_by_reason_and_scrubbed():
    groups = group_failures({"2020-03-02": "token=abc123 refused", "2020-03-01": "token=abc123 refused",
                             "2020-03-09": "other"}, secrets=["abc123"])
    assert [(g.dates, g.count, g.reason) for g in groups] == [
        ("2020-03-01..2020-03-02", 2, "token=*** refused"), ("2020-03-09", 1, "other")]
