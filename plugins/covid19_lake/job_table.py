"""The DynamoDB job table: one record per (job_date, job_name), its status and attempt history.

Its stream (NEW_AND_OLD_IMAGES) drives the notifier, so every write here is deliberate: a status
changes only when a job's fate changes, and a write that would repeat a status is refused by a
condition instead of being sent again.

Duplicate prevention: a date is *claimed* with a conditional write before its EMR step is added.
A second run cannot claim a date while the step recorded for it is really PENDING or RUNNING (asked
of EMR, so a dead step never blocks forever); a claim that never got a step expires after a timeout.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

SUBMITTED, RUNNING, COMPLETED, FAILED = "SUBMITTED", "RUNNING", "COMPLETED", "FAILED"
IN_FLIGHT = (SUBMITTED, RUNNING)
ACTIVE_STEP_STATES = frozenset({"PENDING", "RUNNING", "CANCEL_PENDING"})

StepStateLookup = Callable[[str, str], str | None]
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class RunInfo:
    """Who is writing: the Airflow run and try."""

    dag_id: str
    run_id: str
    try_number: int = 1


@dataclass(frozen=True)
class Decision:
    action: str  # "claim" | "resume" | "skip" | "refuse"
    reason: str


def same_run(item: dict[str, Any] | None, run: RunInfo) -> bool:
    """Whether the record was claimed by this DAG run: run ids are unique per DAG only, so both count."""
    return bool(item) and item.get("run_id") == run.run_id and item.get("dag_id") == run.dag_id


def decide(
    item: dict[str, Any] | None,
    run: RunInfo,
    *,
    force: bool,
    now: datetime,
    claim_timeout: timedelta,
    step_state: StepStateLookup,
) -> Decision:
    """What a run may do with a date, given the date's current record. Pure apart from step_state.

    A record still SUBMITTED/RUNNING whose step has ended is stale: the run that owns it did not record
    the end. Its step's result is settled first (the claim task does that before it claims, and so does
    the job_records_reconcile DAG); meeting one here means another writer is settling it, so a step that
    COMPLETED is never re-claimed over its unrecorded result.
    """
    if item is None:
        return Decision("claim", "no record yet")
    status = item.get("status")
    mine = same_run(item, run)
    owner = f"run {item.get('dag_id')}/{item.get('run_id')}"
    if status in IN_FLIGHT:
        step_id, cluster_id = item.get("step_id"), item.get("cluster_id")
        if step_id and cluster_id:
            state = step_state(cluster_id, step_id)
            if mine and state in (ACTIVE_STEP_STATES | {"COMPLETED"}):
                return Decision("resume", f"this run's step {step_id} is {state}")
            if state in ACTIVE_STEP_STATES:
                return Decision("refuse", f"step {step_id} on {cluster_id} is {state} for {owner}")
            if state == "COMPLETED":
                return Decision("refuse", f"step {step_id} of {owner} COMPLETED but its record is still "
                                          f"{status}: its result must be recorded first")
            return Decision("claim", f"previous step {step_id} ended {state or 'unknown'}")
        if mine:
            return Decision("resume", "this run claimed it and has not added its step yet")
        submitted = item.get("submitted_at")
        if submitted and now - parse_iso(submitted) < claim_timeout:
            return Decision("refuse", f"claimed by {owner} at {submitted}, step not added yet")
        return Decision("claim", f"claim by run {item.get('run_id')} expired without a step")
    if status == COMPLETED and not force:
        return Decision("skip", f"completed by run {item.get('run_id')}; trigger with force to redo")
    return Decision("claim", f"previous status {status}")


def is_stale(item: dict[str, Any], run: RunInfo | None, *, now: datetime, claim_timeout: timedelta,
             step_state: StepStateLookup) -> bool:
    """An in-flight record whose fate is already known and not recorded: its step ended (apart from this
    run's own COMPLETED step, which this run records itself), or its claim expired without a step."""
    if item.get("status") not in IN_FLIGHT:
        return False
    mine = run is not None and same_run(item, run)
    if item.get("step_id") and item.get("cluster_id"):
        state = step_state(item["cluster_id"], item["step_id"])
        return state not in ACTIVE_STEP_STATES and not (mine and state == "COMPLETED")
    submitted = item.get("submitted_at")
    return not mine and bool(submitted) and now - parse_iso(submitted) >= claim_timeout


def failure_decision(item: dict[str, Any] | None, run: RunInfo, *, force: bool) -> str:
    """Whether an Airflow-side failure of ``run`` before any step becomes the date's FAILED record:
    "fail", or why not. A date no run holds (no record, FAILED, or this run's own claim without a step)
    takes it; a date another run is processing reports through that run; a COMPLETED date keeps its
    result unless the run was forced (its claim would have skipped it); this run's FAILED record is a
    repeat."""
    if item is None:
        return "fail"
    status = item.get("status")
    if status in IN_FLIGHT:
        if same_run(item, run) and not item.get("step_id"):
            return "fail"
        return f"in flight for run {item.get('dag_id')}/{item.get('run_id')}"
    if status == COMPLETED and not force:
        return f"completed by run {item.get('run_id')}"
    if status == FAILED and same_run(item, run):
        return "already failed for this run"
    return "fail"


def _number(value: float | int | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(float(value), 3)))


class JobTable:
    """Reads and conditional writes of job records, through the amazon provider's DynamoDBHook."""

    def __init__(self, table_name: str, aws_conn_id: str = "aws_default") -> None:
        from airflow.providers.amazon.aws.hooks.dynamodb import DynamoDBHook

        self.table_name = table_name
        self._table = DynamoDBHook(aws_conn_id=aws_conn_id, table_name=table_name).get_conn().Table(table_name)

    def get(self, job_date: str, job_name: str) -> dict[str, Any] | None:
        return self._table.get_item(Key={"job_date": job_date, "job_name": job_name}, ConsistentRead=True).get(
            "Item"
        )

    def in_flight(self, page_size: int | None = None) -> list[dict[str, Any]]:
        """Every SUBMITTED or RUNNING record (a filtered scan over every page: the table holds one small
        item per date and job)."""
        kwargs: dict[str, Any] = {
            "FilterExpression": "#s IN (:submitted, :running)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":submitted": SUBMITTED, ":running": RUNNING},
            "ConsistentRead": True,
        }
        if page_size:
            kwargs["Limit"] = page_size
        items: list[dict[str, Any]] = []
        while True:
            page = self._table.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_if_unchanged(self, new_item: dict[str, Any], old_item: dict[str, Any] | None) -> bool:
        """Optimistic concurrency: write only if nobody wrote since we read."""
        if old_item is None:
            condition, values = "attribute_not_exists(job_date)", {}
        else:
            condition, values = "#v = :v", {":v": old_item["version"]}
        kwargs: dict[str, Any] = {"Item": {k: v for k, v in new_item.items() if v is not None},
                                  "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeNames"] = {"#v": "version"}
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._table.put_item(**kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim(
        self,
        job_date: str,
        job_name: str,
        run: RunInfo,
        *,
        cluster_id: str,
        force: bool,
        claim_timeout: timedelta,
        step_state: StepStateLookup,
        now: datetime | None = None,
        run_item: str | None = None,
    ) -> Decision:
        """Claim a date for this run (status SUBMITTED) unless decide() says otherwise.

        `run_item` (optional) is stored on the record as `run_item`: the run-level item a multi-date run
        reports through (the notifier's), so its dates are announced together.
        """
        for _ in range(5):
            item = self.get(job_date, job_name)
            moment = now or utc_now()
            decision = decide(item, run, force=force, now=moment, claim_timeout=claim_timeout,
                              step_state=step_state)
            if decision.action != "claim":
                return decision
            attempts = list((item or {}).get("attempts", []))
            attempts.append({"run_id": run.run_id, "try_number": run.try_number, "status": SUBMITTED,
                             "submitted_at": iso(moment)})
            new_item = {
                "job_date": job_date, "job_name": job_name, "status": SUBMITTED,
                "dag_id": run.dag_id, "run_id": run.run_id, "try_number": run.try_number,
                "cluster_id": cluster_id, "submitted_at": iso(moment), "updated_at": iso(moment),
                "attempts": attempts, "version": int((item or {}).get("version", 0)) + 1,
                "run_item": run_item,
            }
            if self._put_if_unchanged(new_item, item):
                return decision
        return Decision("refuse", "the record kept changing under concurrent writers")

    def _update(
        self,
        job_date: str,
        job_name: str,
        run: RunInfo,
        allowed_statuses: Iterable[str],
        changes: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]],
        attempt_changes: dict[str, Any] | None = None,
    ) -> bool:
        """Apply changes (or changes computed from the current record) to this run's record (same dag_id
        and run_id) if its status allows; False when it doesn't (no write)."""
        allowed = set(allowed_statuses)
        for _ in range(5):
            item = self.get(job_date, job_name)
            if item is None or not same_run(item, run) or item.get("status") not in allowed:
                return False
            new_values = changes(item) if callable(changes) else changes
            new_item = {**item, **new_values, "updated_at": iso(utc_now()), "version": int(item["version"]) + 1}
            if attempt_changes and new_item.get("attempts"):
                attempts = [dict(a) for a in new_item["attempts"]]
                attempts[-1].update({k: v for k, v in attempt_changes.items() if v is not None})
                new_item["attempts"] = attempts
            if self._put_if_unchanged(new_item, item):
                return True
        raise RuntimeError(f"job record {job_name}/{job_date} kept changing under concurrent writers")

    def record_step(self, job_date: str, job_name: str, run: RunInfo, cluster_id: str, step_id: str) -> bool:
        """Record the run's step on its claimed date; False when the date is no longer this run's."""
        return self._update(job_date, job_name, run, IN_FLIGHT,
                            {"cluster_id": cluster_id, "step_id": step_id}, {"step_id": step_id})

    def mark_running(self, job_date: str, job_name: str, run: RunInfo, started_at: datetime) -> bool:
        return self._update(job_date, job_name, run, [SUBMITTED],
                            {"status": RUNNING, "started_at": iso(started_at)}, {"status": RUNNING})

    def finish(
        self,
        job_date: str,
        job_name: str,
        run: RunInfo,
        *,
        status: str,
        ended_at: datetime,
        rows_written: int | None = None,
        rows_quarantined: int | None = None,
        error: str | None = None,
        started_at: datetime | None = None,
    ) -> bool:
        """Write the final status once; a repeat (task retry) finds the status final and writes nothing.

        `started_at` (the step's real start) fills a record that never got its RUNNING write."""
        if status not in (COMPLETED, FAILED):
            raise ValueError(f"final status must be COMPLETED or FAILED, got {status!r}")

        def changes(item: dict[str, Any]) -> dict[str, Any]:
            started = item.get("started_at") or (iso(started_at) if started_at else None)
            begun = started or item.get("submitted_at")
            duration = (ended_at - parse_iso(begun)).total_seconds() if begun else None
            return {"status": status, "ended_at": iso(ended_at), "duration_seconds": _number(duration),
                    "started_at": started, "rows_written": rows_written, "rows_quarantined": rows_quarantined,
                    "error": error}

        return self._update(job_date, job_name, run, IN_FLIGHT, changes,
                            {"status": status, "ended_at": iso(ended_at), "error": error})

    def drop_run_item(self, job_date: str, job_name: str, run: RunInfo) -> bool:
        """This run's in-flight record stops naming a run item (its run turned out to hold one date only), so
        its own transitions are posted from now on; no status changes, so this write posts nothing."""
        return self._update(job_date, job_name, run, IN_FLIGHT, {"run_item": None})

    def fail_before_step(self, job_date: str, job_name: str, run: RunInfo, *, error: str, ended_at: datetime,
                         force: bool = False, run_item: str | None = None) -> bool:
        """Record an Airflow-side failure before any step (landing, no cluster, the claim crashed) as the
        date's FAILED record, so the stream notifier reports it; False when nothing was written.

        ``failure_decision`` says which records take it; a write is conditional on the record read, and a
        repeat (the same run's FAILED record) writes nothing, so the stream carries the failure once.
        """
        for _ in range(5):
            item = self.get(job_date, job_name)
            if failure_decision(item, run, force=force) != "fail":
                return False
            moment = iso(ended_at)
            attempts = list((item or {}).get("attempts", []))
            if item is not None and same_run(item, run) and item.get("status") in IN_FLIGHT and attempts:
                attempts[-1] = {**attempts[-1], "status": FAILED, "ended_at": moment, "error": error}
                kept = {k: v for k, v in item.items() if k not in ("run_item",)}
            else:
                attempts.append({"run_id": run.run_id, "try_number": run.try_number, "status": FAILED,
                                 "ended_at": moment, "error": error})
                kept = {"job_date": job_date, "job_name": job_name}
            new_item = {
                **kept, "status": FAILED, "dag_id": run.dag_id, "run_id": run.run_id,
                "try_number": run.try_number, "ended_at": moment, "updated_at": iso(utc_now()), "error": error,
                "attempts": attempts, "version": int((item or {}).get("version", 0)) + 1, "run_item": run_item,
            }
            if self._put_if_unchanged(new_item, item):
                return True
        raise RuntimeError(f"job record {job_name}/{job_date} kept changing under concurrent writers")


# Every date is its own record, so their writes are independent; one at a time, a backfill's 495 dates
# cost two round trips each per phase (claim, step, running, result): about 30 s of the whole backfill.
JOB_TABLE_WORKERS = 8


def for_each_date(table_name: str, aws_conn_id: str, dates: Sequence[str],
                  action: Callable[[JobTable, str], T], workers: int = JOB_TABLE_WORKERS) -> dict[str, T]:
    """`action(table, date)` for every date on a few threads; the results in the order of `dates`.

    Each thread borrows its own JobTable (boto3 resources are not shared across threads), made here on the
    calling thread, which is the one that may fetch the Airflow connection. The first error is raised after
    the other dates have run, so one bad record does not leave the rest unwritten.
    """
    if not dates:
        return {}
    count = max(1, min(workers, len(dates)))
    tables: queue.SimpleQueue[JobTable] = queue.SimpleQueue()
    for _ in range(count):
        tables.put(JobTable(table_name, aws_conn_id))

    def run(day: str) -> T:
        table = tables.get()
        try:
            return action(table, day)
        finally:
            tables.put(table)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = {day: pool.submit(run, day) for day in dates}
    errors = [error for error in (future.exception() for future in futures.values()) if error is not None]
    if errors:
        raise errors[0]
    return {day: future.result() for day, future in futures.items()}
