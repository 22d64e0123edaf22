"""The building block every processing DAG shares: run one Spark job for a set of dates on EMR.

    SETUP     acquire_cluster   the cluster named emr_cluster_name, or a transient one created for the run
    BODY      claim             the dates in the job table (stale records of ended steps settled first)
              add_step          ONE step for the claimed dates (a retry finds it), recorded on each date
              wait_for_start    the step leaves PENDING (deferred to the triggerer, or poking)
              mark_running      RUNNING, with EMR's start time
              wait_for_end      the step ends, however it ends
              add_partitions    Glue partitions of the dates the job summary says COMPLETED
              record_results    each date's final record from the job summary and the step's real end
    TEARDOWN  release_cluster   terminates the cluster only if this run created it

`emr_spark_job` makes these tasks in a TaskGroup; each DAG file chains them in this order, so the file
reads like the list above. The job's JSON summary (written by the Spark job to the lake, its URI on the
step's command line) says, per date, whether it completed and how many rows it wrote and quarantined; the
records and partitions follow it, so one bad file in a backfill fails that date only.

Notifications (docs/notifier.md): a run that claims two dates or more reports through ONE run item
(`covid19_lake.run_records`): claim names it on each date's record and writes it SUBMITTED, mark_running
RUNNING, record_results COMPLETED or FAILED with every failed date's reason. A failure before any step
(the task that made the dates, acquire_cluster, claim) is written by an on_failure_callback as the run
item's (or the one date's) FAILED record with its reason (`record_airflow_failure`), so the notifier on
the job table's stream posts it once, like any other transition.

A record whose step ended without its run recording the end (a killed task, a sensor the scheduler
failed) is settled from the same summary by `settle_stale`: in the claim of the next run that touches
the date, and by the `job_records_reconcile` DAG.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook
from airflow.sdk import Asset, TaskGroup, TriggerRule, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from covid19_lake import config, emr, glue, job_table, run_records
from covid19_lake import lake as lake_paths
from covid19_lake.config import Config, ParseTimeSettings
from covid19_lake.lake import Lake


def run_info(context: dict[str, Any]) -> job_table.RunInfo:
    ti = context["ti"]
    return job_table.RunInfo(dag_id=ti.dag_id, run_id=ti.run_id, try_number=int(ti.try_number or 1))


def summary_uri(cfg: Config, job: SparkJob, run: job_table.RunInfo, dates: Sequence[str]) -> str:
    return lake_paths.join(cfg.lake.uri, "job_summaries", job.name, emr.safe_key(run.dag_id),
                           emr.safe_key(run.run_id), f"{min(dates)}_{max(dates)}.json")


def read_summary(cfg: Config, uri: str | None) -> dict[str, Any] | None:
    if not uri:
        return None
    lake = Lake(cfg.lake.aws_conn_id)
    if not lake.exists(uri):
        return None
    return json.loads(lake.read_bytes(uri))


def final_statuses(
    dates: Sequence[str], summary: dict[str, Any] | None, step: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Each claimed date's final record fields, from the job summary and the step's real state."""
    step_failed = step is not None and step["Status"]["State"] != "COMPLETED"
    step_error = emr.failure_reason(step) if step_failed else None
    per_date = (summary or {}).get("dates", {})
    results = {}
    for day in dates:
        entry = per_date.get(day)
        if entry and entry.get("status") == job_table.COMPLETED:
            results[day] = {"status": job_table.COMPLETED, "rows_written": entry.get("rows_written"),
                            "rows_quarantined": entry.get("rows_quarantined"), "error": None}
        elif entry:
            results[day] = {"status": job_table.FAILED, "rows_written": entry.get("rows_written"),
                            "rows_quarantined": entry.get("rows_quarantined"),
                            "error": entry.get("error") or step_error or "the Spark job reported a failure"}
        else:
            results[day] = {"status": job_table.FAILED, "rows_written": None, "rows_quarantined": None,
                            "error": step_error or "the Spark job wrote no result for this date"}
    return results


def completed_dates(keys: Sequence[str], summary: dict[str, Any] | None) -> list[str]:
    """The claimed dates the job summary reports COMPLETED: the partitions to catalog."""
    per_date = (summary or {}).get("dates", {})
    return [key for key in keys if (per_date.get(key) or {}).get("status") == job_table.COMPLETED]


@dataclass(frozen=True)
class SparkJob:
    """What differs between processing jobs."""

    name: str  # the job table's job_name, e.g. "jhu_daily_reports"
    script: str  # file under spark_jobs_uri
    # (config, claimed keys, summary URI) -> the job's own arguments after the script; they must pass the
    # summary URI as --summary-uri (records are settled from the summary the step names).
    arguments: Callable[[Config, list[str], str], list[str]]
    glue_tables: tuple[str, ...] = ()
    # (claimed keys, summary) -> values of the tables' single partition key to add
    partition_values: Callable[[Sequence[str], dict[str, Any] | None], list[str]] = completed_dates
    # (claimed keys, summary, EMR step or None) -> each key's final record fields
    results: Callable[..., dict[str, dict[str, Any]]] = final_statuses


# -- EMR steps as the tasks see them -------------------------------------------------------------------
def emr_hook(cfg: Config) -> EmrHook:
    # No emr_conn_id: the transient cluster's RunJobFlow arguments are all in the Variable.
    return EmrHook(aws_conn_id=cfg.lake.aws_conn_id, emr_conn_id=None)


class StepLookup:
    """DescribeStep once per step for the length of a task, shared by the threads that write records."""

    def __init__(self, hook: EmrHook) -> None:
        self.hook = hook
        hook.conn  # noqa: B018 - the client is created once, before threads share it
        self._steps: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def step(self, cluster_id: str, step_id: str) -> dict[str, Any] | None:
        key = (cluster_id, step_id)
        with self._lock:
            if key in self._steps:
                return self._steps[key]
        found = emr.describe_step(self.hook, cluster_id, step_id)
        with self._lock:
            return self._steps.setdefault(key, found)

    def state(self, cluster_id: str, step_id: str) -> str | None:
        return state_of(self.step(cluster_id, step_id))


def state_of(step: dict[str, Any] | None) -> str | None:
    return (step or {}).get("Status", {}).get("State")


def step_time(step: dict[str, Any] | None, name: str) -> datetime | None:
    """A moment of the step's timeline (StartDateTime, EndDateTime, CreationDateTime) as an aware datetime."""
    value = ((step or {}).get("Status", {}).get("Timeline") or {}).get(name)
    if isinstance(value, str):
        value = job_table.parse_iso(value)
    return value


def settle_stale(
    cfg: Config,
    jobs: Mapping[str, SparkJob],
    items: Iterable[dict[str, Any]],
    steps: StepLookup,
    *,
    run: job_table.RunInfo | None = None,
    now: datetime | None = None,
) -> dict[tuple[str, str], str]:
    """Record the known fate of stale records (job_table.is_stale): each (job_date, job_name) settled, with
    its final status.

    A step that ended: the dates get what its job summary says (COMPLETED with the rows, or FAILED with the
    reason, EMR's own when the summary has none), and the COMPLETED ones their Glue partitions first, as in
    a normal run. A claim that expired without a step, or a step EMR no longer knows: FAILED. Each record
    is finished as the run that claimed it (conditionally: a concurrent writer's result wins, once).
    """
    moment = now or job_table.utc_now()
    claim_timeout = timedelta(minutes=cfg.lake.claim_timeout_minutes)
    stale = [item for item in items if item.get("job_name") in jobs and job_table.is_stale(
        item, run, now=moment, claim_timeout=claim_timeout, step_state=steps.state)]
    groups: dict[tuple[str, str | None, str | None], list[dict[str, Any]]] = {}
    for item in stale:
        groups.setdefault((item["job_name"], item.get("cluster_id"), item.get("step_id")), []).append(item)
    finishes: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for (job_name, cluster_id, step_id), records in sorted(groups.items(), key=lambda g: str(g[0])):
        job, keys = jobs[job_name], sorted(r["job_date"] for r in records)
        step = steps.step(cluster_id, step_id) if cluster_id and step_id else None
        if not step_id:
            reason = (f"the claim expired after {cfg.lake.claim_timeout_minutes} minutes without an EMR step "
                      "(the run stopped before adding it)")
            results = {key: {"status": job_table.FAILED, "error": reason} for key in keys}
        elif step is None:
            reason = f"EMR no longer knows step {step_id} on cluster {cluster_id}"
            results = {key: {"status": job_table.FAILED, "error": reason} for key in keys}
        else:
            summary = read_summary(cfg, emr.step_argument(step, "--summary-uri"))
            results = job.results(keys, summary, step)
            values = job.partition_values([k for k in keys if results[k]["status"] == job_table.COMPLETED],
                                          summary)
            for table in job.glue_tables if values else ():
                glue.add_partitions(cfg.lake.glue_database, table, values, cfg.lake.aws_conn_id)
        ended = step_time(step, "EndDateTime") or moment
        started = step_time(step, "StartDateTime")
        for record in records:
            fields_ = {"status": job_table.FAILED, "rows_written": None, "rows_quarantined": None,
                       **results[record["job_date"]], "ended_at": ended, "started_at": started}
            finishes.append((record, fields_))
            print(f"{job_name} {record['job_date']}: settled {fields_['status']} for run "
                  f"{record.get('dag_id')}/{record.get('run_id')} (step {step_id or '-'} "
                  f"{state_of(step) or 'none'}){': ' + fields_['error'] if fields_.get('error') else ''}")
    keyed = {f"{r['job_name']}/{r['job_date']}": (r, f) for r, f in finishes}
    job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, list(keyed),
                            lambda table, key: _finish_as_owner(table, *keyed[key]))
    return {(r["job_date"], r["job_name"]): f["status"] for r, f in keyed.values()}


def _finish_as_owner(table: job_table.JobTable, record: dict[str, Any], result: dict[str, Any]) -> bool:
    owner = job_table.RunInfo(record.get("dag_id", ""), record.get("run_id", ""))
    return table.finish(record["job_date"], record["job_name"], owner, **result)


# -- the tasks ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SparkJobTasks:
    """The tasks of one Spark job run, in the order the DAG chains them (see the module's docstring)."""

    # SETUP
    acquire_cluster: Any
    # BODY
    claim: Any
    add_step: Any
    wait_for_start: Any
    mark_running: Any
    wait_for_end: Any
    add_partitions: Any
    record_results: Any
    # TEARDOWN
    release_cluster: Any

    def in_order(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]


def step_sensor_kwargs(settings: ParseTimeSettings) -> dict[str, Any]:
    """How the EMR step sensors wait (docs/configuration.md): deferred to the triggerer or poking, every
    COVID19_LAKE_SENSOR_POKE_SECONDS, for at most the step's time limit either way. Never rescheduled
    (it races the scheduler), and operators.default_deferrable does not change the choice."""
    return {
        "deferrable": settings.sensor_mode == "deferrable",
        "mode": "poke",
        "poke_interval": settings.sensor_poke_seconds,
        "timeout": settings.step_timeout_seconds,
        "max_attempts": settings.step_sensor_attempts,
    }


def emr_spark_job(
    job: SparkJob,
    dates: Any,
    *,
    outlets: Sequence[Asset] = (),
    group_id: str = "spark_job",
    planned_dates: PlannedDates | None = None,
) -> SparkJobTasks:
    """Make the shared tasks for `job` over `dates` (an XComArg of ISO dates) in a TaskGroup; the DAG file
    chains them (SparkJobTasks lists them in order). Data flows between them as XComArgs only.

    A failure before any step (the task that made `dates`, acquire_cluster, claim) becomes the job record
    of the run's dates, FAILED with its reason (`record_airflow_failure`): the dates come from `dates`, or
    from `planned_dates(context)` when the task that makes them failed."""
    settings = ParseTimeSettings.from_env()
    sensor_kwargs = step_sensor_kwargs(settings)
    on_failure = failure_callback(job, dates, planned_dates)
    add_failure_callback(getattr(dates, "operator", None), on_failure)

    with TaskGroup(group_id=group_id):

        @task(multiple_outputs=True, on_failure_callback=on_failure)
        def acquire_cluster(**context) -> dict[str, Any]:
            """The EMR cluster to run on: {"id", "created"} (created: a transient cluster of this run)."""
            cfg = config.load()
            hook = emr_hook(cfg)
            if cfg.emr.cluster_mode == "transient":
                overrides = cfg.emr.job_flow_overrides
                ti = context["ti"]
                tag = emr.run_tag(ti.dag_id, ti.run_id)
                cluster_id = emr.find_run_cluster(hook, overrides.get("Name", ""), tag)
                if cluster_id:
                    print(f"transient cluster {cluster_id} was created by an earlier try of this run")
                else:
                    cluster_id = emr.create_run_cluster(hook, overrides, tag)
                    print(f"created transient cluster {cluster_id} ({overrides.get('Name')})")
                return {"id": cluster_id, "created": True}
            cluster_id = hook.get_cluster_id_by_name(cfg.emr.cluster_name, emr.CLUSTER_LOOKUP_STATES)
            if not cluster_id:
                raise AirflowFailException(
                    f"No EMR cluster named {cfg.emr.cluster_name!r} in {emr.CLUSTER_LOOKUP_STATES}; start one "
                    "or set emr_cluster_mode to 'transient' in the covid19_lake Variable"
                )
            print(f"found cluster {cluster_id} named {cfg.emr.cluster_name!r}")
            return {"id": cluster_id, "created": False}

        @task(multiple_outputs=True, on_failure_callback=on_failure)
        def claim(dates: list[str] | None, cluster_id: str, **context) -> dict[str, Any]:
            """Claim each date for this run; {"dates": claimed or resumed, "decisions": date -> why}."""
            cfg = config.load()
            force = bool(context["params"].get("force", False))
            run = run_info(context)
            days = sorted(set(dates or []))
            steps = StepLookup(emr_hook(cfg))
            items = job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, days,
                                            lambda table, day: table.get(day, job.name))
            settled = settle_stale(cfg, {job.name: job}, [i for i in items.values() if i], steps, run=run)
            claim_timeout = timedelta(minutes=cfg.lake.claim_timeout_minutes)
            if settled:
                items = job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, days,
                                                lambda table, day: table.get(day, job.name))
            run_item = planned_run_item(job, run, items, force=force, claim_timeout=claim_timeout,
                                        step_state=steps.state)
            decisions = job_table.for_each_date(
                cfg.lake.job_table, cfg.lake.aws_conn_id, days,
                lambda table, day: table.claim(
                    day, job.name, run, cluster_id=cluster_id, force=force,
                    claim_timeout=claim_timeout, step_state=steps.state, run_item=run_item,
                ),
            )
            outcome: dict[str, str] = {}
            for day, decision in decisions.items():
                before = f"settled {settled[(day, job.name)]}, then " if (day, job.name) in settled else ""
                outcome[day] = f"{before}{decision.action} ({decision.reason})"
                print(f"{job.name} {day}: {outcome[day]}")
            claimed = sorted(day for day, d in decisions.items() if d.action in ("claim", "resume"))
            if not claimed:
                context["ti"].xcom_push(key="decisions", value=outcome)
                raise AirflowSkipException(nothing_to_run(job.name, outcome))
            run_item = announce_run(cfg, job, run, claimed, run_item, cluster_id)
            return {"dates": claimed, "decisions": outcome, "run_item": run_item}

        @task(multiple_outputs=True)
        def add_step(cluster_id: str, dates: list[str], **context) -> dict[str, str]:
            """ONE step for the claimed dates (a retry finds the one it added), recorded on every date:
            {"cluster_id", "step_id"}."""
            cfg = config.load()
            return {"cluster_id": cluster_id,
                    "step_id": submit_step(cfg, job, run_info(context), cluster_id, dates, emr_hook(cfg))}

        @task
        def mark_running(cluster_id: str, step_id: str, dates: list[str], run_item: str | None = None,
                         **context) -> str | None:
            """RUNNING with EMR's start time (nothing to write for a step that ended without running)."""
            cfg = config.load()
            step = emr.describe_step(emr_hook(cfg), cluster_id, step_id)
            started = step_time(step, "StartDateTime")
            if started is None:
                print(f"step {step_id} is {state_of(step)} and never ran: no RUNNING record")
                return None
            run = run_info(context)
            job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, dates, lambda table, day: (
                table.mark_running(day, job.name, run, started)))
            if run_item:
                run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id).running(job.name, run, dates, started,
                                                                              step_id=step_id)
            return job_table.iso(started)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def add_partitions(cluster_id: str | None, step_id: str | None, dates: list[str] | None,
                           ) -> dict[str, dict[str, int]]:
            if not dates or not cluster_id or not step_id:
                raise AirflowSkipException("no step ran for this run")
            cfg = config.load()
            step = emr.describe_step(emr_hook(cfg), cluster_id, step_id)
            if state_of(step) in job_table.ACTIVE_STEP_STATES:
                raise AirflowSkipException(f"step {step_id} is still {state_of(step)}: its partitions are "
                                           "added when its end is recorded")
            summary = read_summary(cfg, emr.step_argument(step, "--summary-uri"))
            values = job.partition_values(dates, summary)
            if not values:
                raise AirflowSkipException("the job completed no partition")
            return {table: glue.add_partitions(cfg.lake.glue_database, table, values, cfg.lake.aws_conn_id)
                    for table in job.glue_tables}

        @task(trigger_rule=TriggerRule.ALL_DONE, outlets=list(outlets))
        def record_results(cluster_id: str | None, step_id: str | None, dates: list[str] | None,
                           decisions: dict[str, str] | None, run_item: str | None = None,
                           **context) -> dict[str, Any]:
            """Each date's final record; fails the run when a date FAILED, skips when nothing was run."""
            if not dates:
                raise AirflowSkipException(nothing_to_run(job.name, decisions or {}))
            cfg = config.load()
            return record_run_results(cfg, job, run_info(context), cluster_id, step_id, dates, emr_hook(cfg),
                                      step_timeout=timedelta(seconds=settings.step_timeout_seconds),
                                      run_item=bool(run_item))

        @task
        def release_cluster(cluster: dict[str, Any] | None) -> str:
            """Terminate the cluster if this run created it; a cluster found by name is left running."""
            if not cluster or not cluster.get("created"):
                raise AirflowSkipException(f"cluster {(cluster or {}).get('id')} was found by name: left running")
            cfg = config.load()
            emr_hook(cfg).conn.terminate_job_flows(JobFlowIds=[cluster["id"]])
            print(f"terminating transient cluster {cluster['id']}")
            return cluster["id"]

        # Only claim reads the setup's output: tasks that run whatever happened (ALL_DONE) must not
        # follow a setup task directly, so they learn the cluster from add_step (or the job records).
        cluster = acquire_cluster()
        claimed = claim(dates, cluster["id"])
        step = add_step(cluster["id"], claimed["dates"])
        wait_for_start = emr.EmrStepStateSensor(
            task_id="wait_for_start", job_flow_id=step["cluster_id"], step_id=step["step_id"],
            target_states=list(emr.STEP_STARTED_STATES), **sensor_kwargs)
        wait_for_end = emr.EmrStepStateSensor(
            task_id="wait_for_end", job_flow_id=step["cluster_id"], step_id=step["step_id"],
            target_states=list(emr.STEP_TERMINAL_STATES), **sensor_kwargs)
        release = release_cluster(cluster).operator.as_teardown(setups=cluster.operator)
        return SparkJobTasks(
            acquire_cluster=cluster.operator,
            claim=claimed.operator,
            add_step=step.operator,
            wait_for_start=wait_for_start,
            mark_running=mark_running(step["cluster_id"], step["step_id"], claimed["dates"],
                                      claimed["run_item"]).operator,
            wait_for_end=wait_for_end,
            add_partitions=add_partitions(step["cluster_id"], step["step_id"], claimed["dates"]).operator,
            record_results=record_results(step["cluster_id"], step["step_id"], claimed["dates"],
                                          claimed["decisions"], claimed["run_item"]).operator,
            release_cluster=release,
        )


def submit_step(cfg: Config, job: SparkJob, run: job_table.RunInfo, cluster_id: str, dates: list[str],
                hook: EmrHook) -> str:
    """Add ONE step for the claimed dates unless this run's earlier try did, and record it on every date;
    its id. If a date is no longer this run's (another run took over its expired claim) the step is
    cancelled, this run's other dates are recorded FAILED and the task fails: never two steps for a date."""
    name = emr.step_name(job.name, min(dates), max(dates), run.dag_id, run.run_id)
    arguments = job.arguments(cfg, dates, summary_uri(cfg, job, run, dates))
    step = emr.spark_submit_step(name, cfg.lake.spark_jobs_uri, job.script, arguments,
                                 deploy_mode=cfg.emr.spark_deploy_mode)
    step_id, added = emr.add_step_once(hook, cluster_id, step)
    print(f"{'added' if added else 'found the earlier try s'} step {step_id} ({name}) on {cluster_id}")
    recorded = job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, dates, lambda table, day: (
        table.record_step(day, job.name, run, cluster_id, step_id)))
    lost = sorted(day for day, ok in recorded.items() if not ok)
    if not lost:
        return step_id
    answer = emr.cancel_step(hook, cluster_id, step_id)
    reason = (f"step {step_id} cancelled ({answer}): {len(lost)} of its dates were claimed by another run "
              f"before the step was recorded: {lost}")
    ended = job_table.utc_now()
    job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, [d for d in dates if d not in lost],
                            lambda table, day: table.finish(day, job.name, run, status=job_table.FAILED,
                                                            ended_at=ended, error=reason))
    raise AirflowFailException(reason)


def record_run_results(cfg: Config, job: SparkJob, run: job_table.RunInfo, cluster_id: str | None,
                       step_id: str | None, dates: list[str], hook: EmrHook, *,
                       step_timeout: timedelta, run_item: bool | None = None) -> dict[str, Any]:
    """Write each claimed date's final record from the step's real end and its job summary.

    Without a step id (add_step did not finish) the step recorded on the dates is used, if any. A step
    still running leaves the records as they are and fails (the next run of the dates or
    job_records_reconcile records its end), unless it has run past `step_timeout`: then it is cancelled
    and its dates recorded FAILED. Any FAILED date fails the task.

    `run_item` (default: whether the dates need one) says whether the run reports through its run item:
    then the item is finished with the same results, after the dates' records.
    """
    if not step_id:
        items = job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, dates,
                                        lambda table, day: table.get(day, job.name))
        recorded = sorted({(i["cluster_id"], i["step_id"]) for i in items.values()
                           if i and job_table.same_run(i, run) and i.get("step_id") and i.get("cluster_id")})
        cluster_id, step_id = recorded[0] if recorded else (cluster_id, None)
    step = emr.describe_step(hook, cluster_id, step_id) if cluster_id and step_id else None
    error = None
    if state_of(step) in job_table.ACTIVE_STEP_STATES:
        began = step_time(step, "StartDateTime") or step_time(step, "CreationDateTime")
        if began is None or job_table.utc_now() - began < step_timeout:
            status = job_table.RUNNING if step_time(step, "StartDateTime") else job_table.SUBMITTED
            raise AirflowFailException(
                f"step {step_id} is still {state_of(step)}: its {len(dates)} dates stay {status} until its end "
                "is recorded by the next run of these dates or by job_records_reconcile")
        answer = emr.cancel_step(hook, cluster_id, step_id)
        error = (f"EMR step {step_id} ran longer than the step time limit of {step_timeout.total_seconds() / 60:g} "
                 f"minutes (COVID19_LAKE_STEP_TIMEOUT_MINUTES) and was cancelled ({answer})")
    if error:
        results = {day: {"status": job_table.FAILED, "rows_written": None, "rows_quarantined": None,
                         "error": error} for day in dates}
    else:
        summary = read_summary(cfg, emr.step_argument(step, "--summary-uri"))
        results = job.results(dates, summary, step or _missing_step(cluster_id, step_id))
    ended = step_time(step, "EndDateTime") or job_table.utc_now()
    started = step_time(step, "StartDateTime")
    job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, list(results), lambda table, day: (
        table.finish(day, job.name, run, ended_at=ended, started_at=started, **results[day])))
    if run_item if run_item is not None else run_records.needs_run_item(dates):
        run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id).finished(job.name, run, results, ended,
                                                                                  dates=dates)
    failed = {d: r["error"] for d, r in results.items() if r["status"] == job_table.FAILED}
    if failed:
        raise AirflowFailException(f"{len(failed)} of {len(results)} dates failed: {failed}")
    return {"dates": len(results), "step_id": step_id}


def nothing_to_run(job_name: str, decisions: Mapping[str, str]) -> str:
    """The skip message of a run that processed none of its dates, naming each date's decision."""
    if not decisions:
        return f"nothing to run for {job_name}: no dates were asked for"
    shown = "; ".join(f"{day}: {why}" for day, why in sorted(decisions.items())[:20])
    more = f"; and {len(decisions) - 20} more" if len(decisions) > 20 else ""
    return f"nothing to run for {job_name}: none of its {len(decisions)} dates was claimed: {shown}{more}"


def _missing_step(cluster: str | None, step_id: str | None) -> dict[str, Any]:
    """A stand-in when no step was added: the dates failed before EMR was involved."""
    reason = "the EMR step was not added" + ("" if cluster else " (no cluster was found or created)")
    return {"Id": step_id or "-", "Status": {"State": "FAILED", "StateChangeReason": {"Message": reason}}}


# -- run items and Airflow-side failures ----------------------------------------------------------------
PlannedDates = Callable[[Mapping[str, Any]], Sequence[str]]


def planned_run_item(job: SparkJob, run: job_table.RunInfo, items: Mapping[str, dict[str, Any] | None], *,
                     force: bool, claim_timeout: timedelta, step_state: job_table.StepStateLookup,
                     now: datetime | None = None) -> str | None:
    """The run item the claim names on its dates' records: when two dates or more will be claimed or
    resumed (decided on the records just read, as the claim will decide), else None."""
    moment = now or job_table.utc_now()
    claimable = [day for day, item in items.items() if job_table.decide(
        item, run, force=force, now=moment, claim_timeout=claim_timeout,
        step_state=step_state).action in ("claim", "resume")]
    return run_records.run_item_name(job.name, run) if run_records.needs_run_item(claimable) else None


def announce_run(cfg: Config, job: SparkJob, run: job_table.RunInfo, claimed: list[str],
                 run_item: str | None, cluster_id: str) -> str | None:
    """The run item SUBMITTED for the claimed dates; the run item the run reports through, or None.

    A claim raced by another run can leave one date where two were planned: that date's record stops
    naming the run item, so its own later transitions are posted (its SUBMITTED was not)."""
    if not run_item:
        return None
    if not run_records.needs_run_item(claimed):
        job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, claimed,
                                lambda table, day: table.drop_run_item(day, job.name, run))
        return None
    run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id).submitted(job.name, run, claimed,
                                                                               cluster_id=cluster_id)
    return run_item


def record_airflow_failure(cfg: Config, job: SparkJob, run: job_table.RunInfo, dates: Iterable[str],
                           reason: str, *, force: bool = False,
                           ended_at: datetime | None = None) -> dict[str, Any]:
    """A failure before any step (landing, no cluster, the claim crashed) as job records, so the stream
    notifier posts it once: the run item FAILED with the reason when two dates or more take it, else the
    one date's record FAILED. Which dates take it: `job_table.failure_decision`. Idempotent: a repeat
    finds the records FAILED for this run and writes nothing."""
    ended = ended_at or job_table.utc_now()
    days = sorted({str(day) for day in dates})
    error = run_records.truncate_bytes(" ".join(reason.split()), run_records.ERROR_MAX_BYTES)
    items = job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, days,
                                    lambda table, day: table.get(day, job.name))
    why = {day: job_table.failure_decision(items[day], run, force=force) for day in days}
    failing = [day for day in days if why[day] == "fail"]
    for day in days:
        if why[day] != "fail":
            print(f"{job.name} {day}: failure not recorded on this date ({why[day]})")
    run_item = run_records.run_item_name(job.name, run) if run_records.needs_run_item(failing) else None
    reported = False
    if run_item:  # first: once the run item says FAILED, the failure is on its way to chat
        reported = run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id).failed(
            job.name, run, failing, error, ended_at=ended)
    written = job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, failing, lambda table, day: (
        table.fail_before_step(day, job.name, run, error=error, ended_at=ended, force=force, run_item=run_item)))
    if not run_item:
        reported = any(written.values())
    print(f"{job.name}: recorded the failure on {sum(written.values())} of {len(days)} dates"
          f"{' and its run item' if run_item and reported else ''}: {error}")
    return {"dates": failing, "run_item": run_item, "reported": reported}


def settle_run_items(cfg: Config, job_names: Iterable[str], items: Iterable[dict[str, Any]],
                     now: datetime | None = None) -> dict[str, str]:
    """Finish the in-flight run items (of `job_names`) whose dates all have a final record: their run did
    not (a killed record_results, a step settled by settle_stale). {run item name: its final status}.

    Each date's result is its record's, when that record still names the run item; a date another run
    took over counts as failed ("no result was recorded"). A run item with a date still in flight is left
    for a later pass."""
    names = set(job_names)
    runs = [item for item in items if item.get("record_type") == run_records.RECORD_TYPE
            and item.get("job") in names and item.get("status") in job_table.IN_FLIGHT and item.get("dates")]
    settled: dict[str, str] = {}
    for item in runs:
        job, days = str(item["job"]), [str(day) for day in item["dates"]]
        records = job_table.for_each_date(cfg.lake.job_table, cfg.lake.aws_conn_id, days,
                                          lambda table, day, job=job: table.get(day, job))
        mine = {day: r for day, r in records.items() if r and r.get("run_item") == item["job_name"]
                and job_table.same_run(r, job_table.RunInfo(item["dag_id"], item["run_id"]))}
        if any(r.get("status") in job_table.IN_FLIGHT for r in mine.values()):
            continue
        results = {day: {"status": r["status"], "rows_written": r.get("rows_written"),
                         "rows_quarantined": r.get("rows_quarantined"), "error": r.get("error")}
                   for day, r in mine.items() if r.get("status") in run_records.FINAL}
        ends = [job_table.parse_iso(r["ended_at"]) for r in mine.values() if r.get("ended_at")]
        owner = job_table.RunInfo(item["dag_id"], item["run_id"], int(item.get("try_number") or 1))
        if run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id).finished(
                job, owner, results, max(ends) if ends else (now or job_table.utc_now()), dates=days):
            final = run_records.RunRecords(cfg.lake.job_table, cfg.lake.aws_conn_id).get(job, owner, days) or {}
            settled[item["job_name"]] = str(final.get("status"))
            print(f"run item {item['job_name']} ({item['job_date']}): settled {final.get('status')}")
    return settled


def failure_callback(job: SparkJob, dates: Any = None,
                     planned_dates: PlannedDates | None = None) -> Callable[[Mapping[str, Any]], None]:
    """An on_failure_callback (the task's last try failed) recording the failure with `record_airflow_failure`:
    its dates are the XCom `dates` (an XComArg) when its task pushed it, else `planned_dates(context)`."""
    source = getattr(dates, "operator", None)
    key = getattr(dates, "key", None) or "return_value"

    def on_failure(context: Mapping[str, Any]) -> None:
        ti = context["ti"]
        try:
            days: Sequence[str] | None = None
            if source is not None and source.task_id != ti.task_id:
                days = ti.xcom_pull(task_ids=source.task_id, key=key)
            if not days and planned_dates is not None:
                days = planned_dates(context)
            if not days:
                print(f"{ti.task_id} failed before {job.name} knew its dates: no job record to write")
                return
            exception = context.get("exception")
            if exception is None:
                reason = f"{ti.task_id} failed (no exception was recorded; see its log)"
            elif type(exception).__name__.startswith("Airflow"):  # the task's own words
                reason = f"{ti.task_id} failed: {exception}"
            else:
                reason = f"{ti.task_id} failed: {type(exception).__name__}: {exception}"
            params = context.get("params") or {}
            record_airflow_failure(config.load(), job, run_info(dict(context)), list(days), reason,
                                   force=bool(params.get("force", False)))
        except Exception as error:  # Airflow logs and drops a callback's exception: say what was lost
            print(f"could not record the failure of {ti.task_id} in the job table: {error!r}")
            raise

    on_failure.__name__ = f"record_failure_of_{job.name}"
    return on_failure


def add_failure_callback(operator: Any, callback: Callable[..., None]) -> None:
    """Add `callback` to an operator's on_failure_callback (keeping any it has)."""
    if operator is None:
        return
    existing = operator.on_failure_callback
    if existing is None:
        operator.on_failure_callback = [callback]
    elif isinstance(existing, list):
        if callback not in existing:
            operator.on_failure_callback = [*existing, callback]
    else:
        operator.on_failure_callback = [existing, callback]
