"""Run-level items in the job table: one item per DAG run that claims two dates or more.

The job table keeps one record per (job_date, job_name). A run over several dates also writes ONE run item
to the same table, and the notifier posts that item's transitions instead of every date's:

    job_date = "<first>..<last>"                   (the run's first and last date)
    job_name = "<job>#run:<dag_id>:<run_id>"       (``run_item_name``; the dates' records carry it as ``run_item``)
    record_type = "run"

Its status goes SUBMITTED -> RUNNING -> COMPLETED | FAILED (FAILED with some dates completed is shown as
"partly failed"). Every write is conditional on the item's ``version`` (``JobTable._put_if_unchanged``) and
a write that would repeat the status is not sent, so the stream never carries the same transition twice.

The item shapes are pure functions (``submitted_item``, ``running_item``, ``finished_item``,
``failed_item``); ``RunRecords`` reads, applies one of them and writes through the amazon provider's
DynamoDBHook. A run of fewer than two dates writes no run item: its date's own record reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from covid19_lake.job_table import (
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    RUNNING,
    SUBMITTED,
    JobTable,
    RunInfo,
    _number,
    iso,
    parse_iso,
    utc_now,
)

RECORD_TYPE = "run"
MIN_DATES = 2  # a run of one date is reported by that date's record
FINAL = (COMPLETED, FAILED)

# DynamoDB refuses items over 400 KB. The reasons are the only free text that grows with the run, so they
# share a budget that keeps the whole item near a quarter of that, whatever the run's size.
FAILURES_BUDGET_BYTES = 96_000
REASON_MAX_BYTES = 2_000  # one date's reason, when few dates failed
REASON_MIN_BYTES = 120  # one date's reason, when many did; below that, later dates keep no reason
ERROR_MAX_BYTES = 4_000  # the run-level reason (failed before any step)
_CUT = " … [cut] … "


def run_item_name(job: str, run: RunInfo) -> str:
    """The run item's ``job_name``; the run's per-date records carry it in their ``run_item`` attribute."""
    return f"{job}#run:{run.dag_id}:{run.run_id}"


def normalize_dates(dates: Iterable[str]) -> list[str]:
    return sorted({str(day) for day in dates})


def needs_run_item(dates: Iterable[str]) -> bool:
    """True when a run over ``dates`` reports through a run item (two dates or more)."""
    return len(normalize_dates(dates)) >= MIN_DATES


def run_key(job: str, run: RunInfo, dates: Iterable[str]) -> dict[str, str]:
    days = normalize_dates(dates)
    if not days:
        raise ValueError(f"run item of {job} for run {run.run_id}: no dates")
    return {"job_date": f"{days[0]}..{days[-1]}", "job_name": run_item_name(job, run)}


def truncate_bytes(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, keeping the head (the exception) and the tail (the root cause)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    marker = _CUT.encode("utf-8")
    if limit <= len(marker) + 8:
        return data[:max(limit, 0)].decode("utf-8", "ignore")
    room = limit - len(marker)
    head, tail = (room * 2) // 3, room - (room * 2) // 3
    # "ignore" drops a character split by the cut, so the result never exceeds the limit.
    return (data[:head].decode("utf-8", "ignore") + _CUT
            + data[len(data) - tail:].decode("utf-8", "ignore"))


def bounded_failures(reasons: Mapping[str, str | None]) -> tuple[dict[str, str], int]:
    """{date: reason} within FAILURES_BUDGET_BYTES, and how many failed dates had to go without a reason.

    Each reason gets an equal share of the budget (between REASON_MIN_BYTES and REASON_MAX_BYTES); when even
    the minimum share does not fit, the earliest dates keep theirs and the count says how many did not.
    """
    days = sorted(reasons)
    if not days:
        return {}, 0
    key_bytes = max(len(day.encode("utf-8")) for day in days)
    share = min(REASON_MAX_BYTES, max(REASON_MIN_BYTES, FAILURES_BUDGET_BYTES // len(days) - key_bytes))
    kept: dict[str, str] = {}
    used = 0
    for day in days:
        reason = truncate_bytes(" ".join(str(reasons[day] or "no reason recorded").split())
                                or "no reason recorded", share)
        size = len(day) + len(reason.encode("utf-8"))
        if used + size > FAILURES_BUDGET_BYTES:
            break
        kept[day] = reason
        used += size
    return kept, len(days) - len(kept)


def _base(job: str, run: RunInfo, dates: list[str], now: datetime) -> dict[str, Any]:
    return {
        **run_key(job, run, dates), "record_type": RECORD_TYPE, "job": job, "dag_id": run.dag_id,
        "run_id": run.run_id, "try_number": run.try_number, "dates": dates, "date_count": len(dates),
        "updated_at": iso(now),
    }


def _next_version(previous: Mapping[str, Any] | None) -> int:
    return int((previous or {}).get("version", 0)) + 1


def _is_newer_try(previous: Mapping[str, Any], run: RunInfo) -> bool:
    return int(previous.get("try_number") or 0) < run.try_number


def submitted_item(job: str, run: RunInfo, dates: Iterable[str], *, cluster_id: str | None, now: datetime,
                   previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """SUBMITTED for a new run, or for a newer try of a run that ended or stalled; None: write nothing."""
    days = normalize_dates(dates)
    if previous is not None and (previous.get("status") == SUBMITTED or not _is_newer_try(previous, run)):
        return None  # a repeat (the claim task retried) or a late write: the item already says more
    return {**_base(job, run, days, now), "status": SUBMITTED, "cluster_id": cluster_id,
            "submitted_at": iso(now), "version": _next_version(previous)}


def running_item(previous: Mapping[str, Any] | None, *, started_at: datetime, step_id: str | None,
                 now: datetime) -> dict[str, Any] | None:
    """RUNNING, from SUBMITTED only."""
    if previous is None or previous.get("status") != SUBMITTED:
        return None
    return {**previous, "status": RUNNING, "started_at": iso(started_at),
            "step_id": step_id or previous.get("step_id"), "updated_at": iso(now),
            "version": _next_version(previous)}


def _duration(previous: Mapping[str, Any] | None, ended_at: datetime) -> Any:
    started = (previous or {}).get("started_at") or (previous or {}).get("submitted_at")
    return _number((ended_at - parse_iso(started)).total_seconds()) if started else None


def _final(previous: Mapping[str, Any] | None, base: dict[str, Any], *, completed: int, failed: int,
           reasons: Mapping[str, str | None], rows_written: int | None, rows_quarantined: int | None,
           error: str | None, ended_at: datetime, keep_previous: bool = True) -> dict[str, Any]:
    """The final item; ``keep_previous`` keeps the in-flight item's times and ids (False: a new try)."""
    failures, without_reason = bounded_failures(reasons)
    kept = previous if keep_previous else None
    return {
        **(kept or {}), **base,
        "status": FAILED if failed else COMPLETED,
        "ended_at": iso(ended_at), "duration_seconds": _duration(kept, ended_at),
        "rows_written": rows_written, "rows_quarantined": rows_quarantined,
        "dates_completed": completed, "dates_failed": failed, "failures": failures or None,
        "failures_without_reason": without_reason or None,
        "error": truncate_bytes(" ".join(error.split()), ERROR_MAX_BYTES) if error else None,
        "version": _next_version(previous),
    }


def _total(values: Iterable[Any]) -> int | None:
    numbers = [int(value) for value in values if value is not None]
    return sum(numbers) if numbers else None


def finished_item(job: str, run: RunInfo, results: Mapping[str, Mapping[str, Any]], *, ended_at: datetime,
                  now: datetime, previous: Mapping[str, Any] | None,
                  dates: Iterable[str] | None = None) -> dict[str, Any] | None:
    """COMPLETED when every date completed, else FAILED, with the totals and every failed date's reason.

    ``results`` is {date: {"status": COMPLETED | FAILED, "rows_written", "rows_quarantined", "error"}} as
    the job writes each date's record; a date of ``dates`` without a result counts as failed. Allowed from
    SUBMITTED or RUNNING, or with no item yet (the outcome is still reported once); never over a final one.
    """
    for day, result in results.items():
        if result.get("status") not in FINAL:
            raise ValueError(f"result of {day}: status must be COMPLETED or FAILED, got {result.get('status')!r}")
    if previous is not None and previous.get("status") not in IN_FLIGHT:
        return None
    days = normalize_dates(dates if dates is not None else results)
    reasons: dict[str, str | None] = {}
    for day in days:
        result = results.get(day)
        if result is None:
            reasons[day] = "no result was recorded for this date"
        elif result["status"] == FAILED:
            reasons[day] = result.get("error")
    chosen = [results[day] for day in days if day in results]
    base = _base(job, run, days, now)
    if previous is not None:  # a newer try's totals replace the item's, its identity stays
        base["try_number"] = previous.get("try_number", run.try_number)
    return _final(previous, base, completed=len(days) - len(reasons), failed=len(reasons), reasons=reasons,
                  rows_written=_total(r.get("rows_written") for r in chosen),
                  rows_quarantined=_total(r.get("rows_quarantined") for r in chosen),
                  error=None, ended_at=ended_at)


def failed_item(job: str, run: RunInfo, dates: Iterable[str], reason: str | Mapping[str, str], *,
                ended_at: datetime, now: datetime, previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """FAILED before (or instead of) the step: every date of the run failed.

    ``reason`` is one text for the whole run (stored as ``error``), or {date: reason} (stored in
    ``failures``; dates it does not name get "no reason recorded"). Allowed with no item, from SUBMITTED or
    RUNNING, and over a final item of an older try; a repeat is refused.
    """
    days = normalize_dates(dates)
    in_flight = previous is not None and previous.get("status") in IN_FLIGHT
    if previous is not None and not in_flight and not _is_newer_try(previous, run):
        return None
    if isinstance(reason, Mapping):
        reasons: dict[str, str | None] = {day: reason.get(day) for day in days}
        error = None
    else:
        reasons, error = {}, str(reason)
    base = _base(job, run, days, now)
    if in_flight:
        base["try_number"] = (previous or {}).get("try_number", run.try_number)
    return _final(previous, base, completed=0, failed=len(days), reasons=reasons, rows_written=None,
                  rows_quarantined=None, error=error, ended_at=ended_at, keep_previous=in_flight)


class RunRecords:
    """Writes a multi-date run's item through the amazon provider's DynamoDBHook (as JobTable does).

    Every method returns True when it wrote, False when it wrote nothing: a run of fewer than two dates,
    a repeat of the status the item already has, or a write that comes too late (the item is further on).
    """

    def __init__(self, table_name: str, aws_conn_id: str = "aws_default") -> None:
        self.table_name = table_name
        self._jobs = JobTable(table_name, aws_conn_id)

    def get(self, job: str, run: RunInfo, dates: Iterable[str]) -> dict[str, Any] | None:
        key = run_key(job, run, dates)
        return self._jobs.get(key["job_date"], key["job_name"])

    def _write(self, job: str, run: RunInfo, dates: Iterable[str],
               make: Callable[[dict[str, Any] | None, datetime], dict[str, Any] | None]) -> bool:
        days = normalize_dates(dates)
        if len(days) < MIN_DATES:
            return False
        for _ in range(5):
            previous = self.get(job, run, days)
            new_item = make(previous, utc_now())
            if new_item is None:
                return False
            if self._jobs._put_if_unchanged(new_item, previous):
                return True
        raise RuntimeError(f"run item {run_item_name(job, run)} kept changing under concurrent writers")

    def submitted(self, job: str, run: RunInfo, dates: Iterable[str], cluster_id: str | None = None) -> bool:
        """The run claimed ``dates`` (claimed and resumed ones) on ``cluster_id``."""
        return self._write(job, run, dates, lambda previous, now: submitted_item(
            job, run, dates, cluster_id=cluster_id, now=now, previous=previous))

    def running(self, job: str, run: RunInfo, dates: Iterable[str], started_at: datetime,
                step_id: str | None = None) -> bool:
        """The run's EMR step started (EMR's start time)."""
        return self._write(job, run, dates, lambda previous, now: running_item(
            previous, started_at=started_at, step_id=step_id, now=now))

    def finished(self, job: str, run: RunInfo, results: Mapping[str, Mapping[str, Any]], ended_at: datetime,
                 dates: Iterable[str] | None = None) -> bool:
        """Each date's result is known (the same ``results`` the dates' records are finished with)."""
        days = normalize_dates(dates if dates is not None else results)
        return self._write(job, run, days, lambda previous, now: finished_item(
            job, run, results, ended_at=ended_at, now=now, previous=previous, dates=days))

    def failed(self, job: str, run: RunInfo, dates: Iterable[str], reason: str | Mapping[str, str],
               ended_at: datetime | None = None) -> bool:
        """An Airflow-side failure before any step (landing failed after the publication window, no
        cluster, the claim crashed): the run and all its dates FAILED with ``reason``.

        Once the run has submitted, pass the same dates as ``submitted`` did (they name the item)."""
        return self._write(job, run, dates, lambda previous, now: failed_item(
            job, run, dates, reason, ended_at=ended_at or now, now=now, previous=previous))
