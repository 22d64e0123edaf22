"""The job table: claim decisions, conditional writes, and idempotent status transitions (moto)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from covid19_lake import job_table
from covid19_lake.job_table import Decision, JobTable, RunInfo, decide, for_each_date
from local.dynamodb_atomic import serialize_dynamodb_writes
from tests.job_table_schema import moto_job_table

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RUN_A = RunInfo("jhu_daily_reports", "scheduled__2020-03-01", 1)
RUN_B = RunInfo("jhu_backfill", "manual__2026-11-28", 1)
RUN_A_ELSEWHERE = RunInfo("jhu_backfill", RUN_A.run_id, 1)  # same run id, another DAG
TIMEOUT = timedelta(minutes=30)


def no_step(cluster: str, step: str) -> str | None:
    raise AssertionError("no step lookup expected")


def in_flight(run: RunInfo, **extra) -> dict:
    return {"status": "SUBMITTED", "dag_id": run.dag_id, "run_id": run.run_id, "submitted_at": job_table.iso(NOW),
            **extra}


@pytest.mark.parametrize(
    ("item", "run", "force", "step_state", "action"),
    [
        (None, RUN_A, False, None, "claim"),
        ({"status": "COMPLETED", "run_id": RUN_B.run_id}, RUN_A, False, None, "skip"),
        ({"status": "COMPLETED", "run_id": RUN_B.run_id}, RUN_A, True, None, "claim"),
        ({"status": "FAILED", "run_id": RUN_B.run_id}, RUN_A, False, None, "claim"),
        # A live step of another run blocks; of this run, it is resumed.
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), RUN_A, False, "RUNNING", "refuse"),
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), RUN_A, True, "PENDING", "refuse"),
        (in_flight(RUN_A, step_id="s-1", cluster_id="j-1"), RUN_A, False, "RUNNING", "resume"),
        # A dead step never blocks, whatever the record still says.
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1", status="RUNNING"), RUN_A, False, "FAILED", "claim"),
        # (a) A step that COMPLETED while its record is not final: never re-claimed over its result.
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1", status="RUNNING"), RUN_A, False, "COMPLETED", "refuse"),
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), RUN_A, True, "COMPLETED", "refuse"),
        (in_flight(RUN_A, step_id="s-1", cluster_id="j-1"), RUN_A, False, "COMPLETED", "resume"),
        # (c) The same run id in another DAG is another run.
        (in_flight(RUN_A_ELSEWHERE, step_id="s-1", cluster_id="j-1"), RUN_A, False, "RUNNING", "refuse"),
        (in_flight(RUN_A_ELSEWHERE), RUN_A, False, None, "refuse"),
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), RUN_A, False, None, "claim"),
        # A claim without a step blocks other runs until it expires.
        (in_flight(RUN_B), RUN_A, False, None, "refuse"),
        (in_flight(RUN_A), RUN_A, False, None, "resume"),
    ],
)
def test_decide(item, run, force, step_state, action):
    lookup = (lambda c, s: step_state) if item and item.get("step_id") else no_step
    decision = decide(item, run, force=force, now=NOW, claim_timeout=TIMEOUT, step_state=lookup)
    assert decision.action == action, decision.reason


def test_expired_claim_without_step_can_be_taken_over():
    item = in_flight(RUN_B, submitted_at=job_table.iso(NOW - TIMEOUT - timedelta(seconds=1)))
    decision = decide(item, RUN_A, force=False, now=NOW, claim_timeout=TIMEOUT, step_state=no_step)
    assert decision == Decision("claim", f"claim by run {RUN_B.run_id} expired without a step")


@pytest.fixture
def table(monkeypatch):
    with moto_job_table(monkeypatch) as name:
        yield JobTable(name)


def claim(table: JobTable, run: RunInfo, state: str | None = None, force: bool = False) -> Decision:
    return table.claim("2020-03-01", "jhu", run, cluster_id="j-1", force=force, claim_timeout=TIMEOUT,
                       step_state=lambda c, s: state, now=NOW)


def test_full_lifecycle_keeps_an_attempt_history(table):
    assert claim(table, RUN_A).action == "claim"
    assert table.record_step("2020-03-01", "jhu", RUN_A, "j-1", "s-1")
    assert table.mark_running("2020-03-01", "jhu", RUN_A, NOW + timedelta(seconds=5))
    assert table.finish("2020-03-01", "jhu", RUN_A, status="COMPLETED", ended_at=NOW + timedelta(seconds=65),
                        rows_written=3400, rows_quarantined=2)
    item = table.get("2020-03-01", "jhu")
    assert item["status"] == "COMPLETED"
    assert item["step_id"] == "s-1" and item["cluster_id"] == "j-1"
    assert float(item["duration_seconds"]) == 60.0
    assert (item["rows_written"], item["rows_quarantined"]) == (3400, 2)
    assert [(a["run_id"], a["status"], a.get("step_id")) for a in item["attempts"]] == [
        (RUN_A.run_id, "COMPLETED", "s-1")
    ]
    # COMPLETED is final for this run: a retried task writes nothing (no second notification).
    assert not table.finish("2020-03-01", "jhu", RUN_A, status="FAILED", ended_at=NOW)
    assert not table.mark_running("2020-03-01", "jhu", RUN_A, NOW)
    assert table.get("2020-03-01", "jhu")["version"] == item["version"]

    # A later forced run appends a second attempt and starts clean.
    assert claim(table, RUN_B, force=True).action == "claim"
    item = table.get("2020-03-01", "jhu")
    assert item["status"] == "SUBMITTED" and "step_id" not in item and "rows_written" not in item
    assert [a["run_id"] for a in item["attempts"]] == [RUN_A.run_id, RUN_B.run_id]


def test_second_run_is_refused_while_the_step_is_live_and_admitted_once_it_died(table):
    claim(table, RUN_A)
    table.record_step("2020-03-01", "jhu", RUN_A, "j-1", "s-1")
    assert claim(table, RUN_B, state="RUNNING").action == "refuse"
    assert table.get("2020-03-01", "jhu")["run_id"] == RUN_A.run_id
    assert claim(table, RUN_B, state="CANCELLED").action == "claim"
    assert table.get("2020-03-01", "jhu")["run_id"] == RUN_B.run_id
    # The old run can no longer write its outcome over the new claim.
    assert not table.finish("2020-03-01", "jhu", RUN_A, status="FAILED", ended_at=NOW)


def test_concurrent_claims_have_exactly_one_winner(table):
    # DynamoDB checks a condition and writes the item atomically; moto's in-memory backend does not, so
    # two threads could both pass `attribute_not_exists`. The local stack gives moto that atomicity
    # (tests/test_local_dynamodb_atomic.py), and so does this test.
    serialize_dynamodb_writes()
    runs = [RunInfo("jhu_daily_reports", f"manual__{i}", 1) for i in range(8)]
    barrier = threading.Barrier(len(runs))
    decisions: dict[str, str] = {}

    def contend(run: RunInfo) -> None:
        barrier.wait()
        decisions[run.run_id] = claim(table, run).action

    threads = [threading.Thread(target=contend, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [run_id for run_id, action in decisions.items() if action == "claim"]
    assert len(winners) == 1, decisions
    assert set(decisions.values()) == {"claim", "refuse"}
    item = table.get("2020-03-01", "jhu")
    assert item["run_id"] == winners[0] and len(item["attempts"]) == 1


def test_finish_rejects_a_non_final_status(table):
    claim(table, RUN_A)
    with pytest.raises(ValueError, match="COMPLETED or FAILED"):
        table.finish("2020-03-01", "jhu", RUN_A, status="RUNNING", ended_at=NOW)


def test_for_each_date_writes_every_date_on_several_threads_and_keeps_the_order(table):
    days = [f"2020-03-{n:02d}" for n in range(31, 0, -1)]
    threads: set[int] = set()

    def claim_day(jobs: JobTable, day: str) -> str:
        threads.add(threading.get_ident())
        return jobs.claim(day, "jhu", RUN_A, cluster_id="j-1", force=False, claim_timeout=TIMEOUT,
                          step_state=no_step, now=NOW).action

    decisions = for_each_date("jobs", "aws_default", days, claim_day, workers=4)
    assert list(decisions) == days and set(decisions.values()) == {"claim"}
    assert 1 < len(threads) <= 4
    assert all(table.get(day, "jhu")["status"] == "SUBMITTED" for day in days)
    assert for_each_date("jobs", "aws_default", [], claim_day) == {}


def test_for_each_date_runs_the_other_dates_before_raising_the_first_error(table):
    days = ["2020-03-01", "2020-03-02", "2020-03-03"]

    def claim_or_fail(jobs: JobTable, day: str) -> str:
        if day == "2020-03-02":
            raise RuntimeError(f"cannot write {day}")
        return jobs.claim(day, "jhu", RUN_A, cluster_id="j-1", force=False, claim_timeout=TIMEOUT,
                          step_state=no_step, now=NOW).action

    with pytest.raises(RuntimeError, match="cannot write 2020-03-02"):
        for_each_date("jobs", "aws_default", days, claim_or_fail)
    assert table.get("2020-03-01", "jhu") and table.get("2020-03-03", "jhu")
    assert table.get("2020-03-02", "jhu") is None


@pytest.mark.parametrize(
    ("item", "state", "stale"),
    [
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), "RUNNING", False),
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), "PENDING", False),
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1", status="RUNNING"), "COMPLETED", True),
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), "FAILED", True),
        (in_flight(RUN_B, step_id="s-1", cluster_id="j-1"), None, True),  # EMR forgot the step
        # This run's own COMPLETED step is this run's to record; its FAILED one is settled.
        (in_flight(RUN_A, step_id="s-1", cluster_id="j-1"), "COMPLETED", False),
        (in_flight(RUN_A_ELSEWHERE, step_id="s-1", cluster_id="j-1"), "COMPLETED", True),
        (in_flight(RUN_A, step_id="s-1", cluster_id="j-1"), "FAILED", True),
        # A claim without a step: stale once expired.
        (in_flight(RUN_B), None, False),
        (in_flight(RUN_B, submitted_at=job_table.iso(NOW - TIMEOUT)), None, True),
        ({"status": "COMPLETED", "run_id": RUN_B.run_id, "step_id": "s-1", "cluster_id": "j-1"}, "FAILED", False),
    ],
)
def test_is_stale(item, state, stale):
    assert job_table.is_stale(item, RUN_A, now=NOW, claim_timeout=TIMEOUT,
                              step_state=lambda c, s: state) is stale


def test_writes_compare_dag_and_run_not_the_run_id_alone(table):
    """(c) Another DAG's run with the same run id cannot write this run's record, nor resume its claim."""
    assert claim(table, RUN_A).action == "claim"
    assert not table.record_step("2020-03-01", "jhu", RUN_A_ELSEWHERE, "j-1", "s-9")
    assert claim(table, RUN_A_ELSEWHERE).action == "refuse"
    assert not table.finish("2020-03-01", "jhu", RUN_A_ELSEWHERE, status="FAILED", ended_at=NOW)
    item = table.get("2020-03-01", "jhu")
    assert item["dag_id"] == RUN_A.dag_id and "step_id" not in item and item["status"] == "SUBMITTED"


def test_record_step_after_a_takeover_is_refused(table):
    """(b) Run A's claim expired without a step and run B took the date: A's late record_step writes
    nothing and says so (add_step then cancels A's step, tested with the DAGs)."""
    old = NOW - TIMEOUT - timedelta(minutes=1)
    assert table.claim("2020-03-01", "jhu", RUN_A, cluster_id="j-1", force=False, claim_timeout=TIMEOUT,
                       step_state=no_step, now=old).action == "claim"
    assert claim(table, RUN_B).action == "claim"
    assert table.record_step("2020-03-01", "jhu", RUN_A, "j-1", "s-late") is False
    assert table.get("2020-03-01", "jhu")["run_id"] == RUN_B.run_id


def test_claim_stores_the_run_item_and_a_later_claim_without_one_drops_it(table):
    assert claim(table, RUN_A).action == "claim"
    assert "run_item" not in table.get("2020-03-01", "jhu")
    table.finish("2020-03-01", "jhu", RUN_A, status="FAILED", ended_at=NOW, error="boom")
    assert table.claim("2020-03-01", "jhu", RUN_B, cluster_id="j-1", force=False, claim_timeout=TIMEOUT,
                       step_state=no_step, now=NOW, run_item="run#jhu_backfill#manual__2026-11-28").action == "claim"
    assert table.get("2020-03-01", "jhu")["run_item"] == "run#jhu_backfill#manual__2026-11-28"
    table.finish("2020-03-01", "jhu", RUN_B, status="FAILED", ended_at=NOW, error="boom")
    assert claim(table, RUN_A).action == "claim"
    assert "run_item" not in table.get("2020-03-01", "jhu")


def test_finish_takes_the_steps_start_when_running_was_never_written(table):
    claim(table, RUN_A)
    table.record_step("2020-03-01", "jhu", RUN_A, "j-1", "s-1")
    assert table.finish("2020-03-01", "jhu", RUN_A, status="COMPLETED", ended_at=NOW + timedelta(seconds=90),
                        started_at=NOW + timedelta(seconds=30), rows_written=10)
    item = table.get("2020-03-01", "jhu")
    assert item["started_at"] == job_table.iso(NOW + timedelta(seconds=30))
    assert float(item["duration_seconds"]) == 60.0


def test_in_flight_scans_every_page_for_submitted_and_running_records(table):
    for n in range(1, 31):
        day = f"2020-03-{n:02d}"
        table.claim(day, "jhu", RUN_A, cluster_id="j-1", force=False, claim_timeout=TIMEOUT, step_state=no_step,
                    now=NOW)
        if n % 3 == 0:
            table.finish(day, "jhu", RUN_A, status="COMPLETED", ended_at=NOW)
        elif n % 3 == 1:
            table.mark_running(day, "jhu", RUN_A, NOW)
    found = table.in_flight(page_size=4)  # several pages
    assert sorted(i["job_date"] for i in found) == [f"2020-03-{n:02d}" for n in range(1, 31) if n % 3]
    assert {i["status"] for i in found} == {"SUBMITTED", "RUNNING"}
