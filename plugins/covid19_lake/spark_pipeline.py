"""The building block every processing DAG shares: run one Spark job for a set of dates on EMR.

    cluster (find by name | create transient) -> claim dates in the job table -> add ONE step
    -> wait until it starts -> RUNNING -> wait until it ends -> Glue partitions -> final records
    -> terminate the transient cluster

The job's JSON summary (written by the Spark job to the lake) says, per date, whether it completed
and how many rows it wrote and quarantined; the job records and Glue partitions follow it, so one bad
file in a backfill fails that date only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook
from airflow.providers.amazon.aws.operators.emr import (
    EmrCreateJobFlowOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk import Asset, TaskGroup, TriggerRule, chain, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from covid19_lake import emr, glue, job_table
from covid19_lake import lake as lake_paths
from covid19_lake.config import LakeConfig, ParseTimeSettings
from covid19_lake.lake import Lake


def run_info(context: dict[str, Any]) -> job_table.RunInfo:
    ti = context["ti"]
    return job_table.RunInfo(dag_id=ti.dag_id, run_id=ti.run_id, try_number=int(ti.try_number or 1))


def summary_uri(cfg: LakeConfig, job: SparkJob, run_id: str, dates: Sequence[str]) -> str:
    return lake_paths.join(
        cfg.lake_uri, "job_summaries", job.name, emr.safe_key(run_id), f"{min(dates)}_{max(dates)}.json"
    )


def read_summary(cfg: LakeConfig, uri: str) -> dict[str, Any] | None:
    lake = Lake(cfg.aws_conn_id)
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
    # (config, claimed keys, summary URI) -> the job's own arguments after the script
    arguments: Callable[[LakeConfig, list[str], str], list[str]]
    glue_tables: tuple[str, ...] = ()
    # (claimed keys, summary) -> values of the tables' single partition key to add
    partition_values: Callable[[Sequence[str], dict[str, Any] | None], list[str]] = completed_dates
    # (claimed keys, summary, EMR step or None) -> each key's final record fields
    results: Callable[..., dict[str, dict[str, Any]]] = final_statuses


def emr_spark_job(
    job: SparkJob,
    dates: Any,
    *,
    outlets: Sequence[Asset] = (),
    group_id: str = "spark_job",
) -> TaskGroup:
    """Wire the shared tasks for `job` over `dates` (an XComArg of ISO dates) into a TaskGroup."""
    settings = ParseTimeSettings.from_env()
    # A step that FAILED stays FAILED: retrying its sensor would only delay the FAILED record.
    sensor_kwargs = {"poke_interval": settings.sensor_poke_seconds, "mode": settings.sensor_mode, "retries": 0}
    step_id = f"{{{{ ti.xcom_pull(task_ids='{group_id}.add_step')[0] }}}}"

    with TaskGroup(group_id=group_id) as group:

        @task.branch
        def choose_cluster(**context) -> str:
            cfg = LakeConfig.load()
            context["ti"].xcom_push(key="job_flow_overrides", value=cfg.emr_job_flow_overrides)
            return f"{group_id}.{'create_cluster' if cfg.emr_cluster_mode == 'transient' else 'find_cluster'}"

        @task
        def find_cluster() -> str:
            cfg = LakeConfig.load()
            cluster_id = EmrHook(aws_conn_id=cfg.aws_conn_id).get_cluster_id_by_name(
                cfg.emr_cluster_name, emr.CLUSTER_LOOKUP_STATES
            )
            if not cluster_id:
                raise AirflowFailException(
                    f"No EMR cluster named {cfg.emr_cluster_name!r} in {emr.CLUSTER_LOOKUP_STATES}; start one "
                    "or set emr_cluster_mode to 'transient' in the covid19_lake Variable"
                )
            return cluster_id

        chosen = choose_cluster()
        create_cluster = EmrCreateJobFlowOperator(
            task_id="create_cluster", job_flow_overrides=chosen["job_flow_overrides"]
        )

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def cluster_id(**context) -> str:
            ti = context["ti"]
            found = ti.xcom_pull(task_ids=f"{group_id}.find_cluster")
            return found or ti.xcom_pull(task_ids=f"{group_id}.create_cluster")

        @task
        def claim(dates: list[str], cluster: str, **context) -> dict[str, list[str]]:
            cfg = LakeConfig.load()
            force = bool(context["params"].get("force", False))
            hook = EmrHook(aws_conn_id=cfg.aws_conn_id)
            hook.conn  # noqa: B018 - the client is created once, before the threads share it
            run = run_info(context)
            outcome: dict[str, list[str]] = {"claim": [], "resume": [], "skip": [], "refuse": []}
            decisions = job_table.for_each_date(
                cfg.job_table, cfg.aws_conn_id, sorted(set(dates)),
                lambda table, day: table.claim(
                    day, job.name, run, cluster_id=cluster, force=force,
                    claim_timeout=timedelta(minutes=cfg.claim_timeout_minutes),
                    step_state=lambda c, s: emr.step_state(hook, c, s),
                ),
            )
            for day, decision in decisions.items():
                print(f"{job.name} {day}: {decision.action} ({decision.reason})")
                outcome[decision.action].append(day)
            claimed = sorted(outcome["claim"] + outcome["resume"])
            if not claimed:
                raise AirflowSkipException(f"nothing to run for {job.name}: {outcome}")
            return {"dates": claimed, **outcome}

        @task
        def build_step(claimed: dict[str, list[str]], **context) -> list[dict[str, Any]]:
            cfg = LakeConfig.load()
            days = claimed["dates"]
            run_id = context["ti"].run_id
            name = emr.step_name(job.name, min(days), max(days), run_id)
            arguments = job.arguments(cfg, days, summary_uri(cfg, job, run_id, days))
            return [emr.spark_submit_step(name, cfg.spark_jobs_uri, job.script, arguments,
                                          deploy_mode=cfg.spark_deploy_mode)]

        cluster = cluster_id()
        claimed = claim(dates, cluster)
        steps = build_step(claimed)
        # Not deferrable even where operators.default_deferrable is on (MWAA): a deferred add-steps
        # waits for the step to END, and the RUNNING record must be written while it runs.
        add_step = emr.IdempotentEmrAddStepsOperator(task_id="add_step", job_flow_id=cluster, steps=steps,
                                                     deferrable=False)

        @task
        def record_step(claimed: dict[str, list[str]], cluster: str, step_ids: list[str], **context) -> None:
            cfg = LakeConfig.load()
            job_table.for_each_date(cfg.job_table, cfg.aws_conn_id, claimed["dates"], lambda table, day: (
                table.record_step(day, job.name, context["ti"].run_id, cluster, step_ids[0])))

        wait_for_start = EmrStepSensor(
            task_id="wait_for_start", job_flow_id=cluster, step_id=step_id,
            target_states=["RUNNING", "COMPLETED"], deferrable=False, **sensor_kwargs,
        )

        @task
        def mark_running(claimed: dict[str, list[str]], cluster: str, step_ids: list[str], **context) -> None:
            cfg = LakeConfig.load()
            step = EmrHook(aws_conn_id=cfg.aws_conn_id).conn.describe_step(ClusterId=cluster, StepId=step_ids[0])
            started = step["Step"]["Status"]["Timeline"].get("StartDateTime") or job_table.utc_now()
            job_table.for_each_date(cfg.job_table, cfg.aws_conn_id, claimed["dates"], lambda table, day: (
                table.mark_running(day, job.name, context["ti"].run_id, started)))

        wait_for_end = EmrStepSensor(task_id="wait_for_end", job_flow_id=cluster, step_id=step_id,
                                     **sensor_kwargs)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def add_partitions(claimed: dict[str, list[str]] | None, **context) -> dict[str, dict[str, int]]:
            if not claimed:
                raise AirflowSkipException("no dates were claimed")
            cfg = LakeConfig.load()
            summary = read_summary(cfg, summary_uri(cfg, job, context["ti"].run_id, claimed["dates"]))
            values = job.partition_values(claimed["dates"], summary)
            if not values:
                raise AirflowSkipException("the job completed no partition")
            return {table: glue.add_partitions(cfg.glue_database, table, values, cfg.aws_conn_id)
                    for table in job.glue_tables}

        @task.branch(trigger_rule=TriggerRule.ALL_DONE)
        def after_job(**context) -> list[str]:
            created = context["ti"].xcom_pull(task_ids=f"{group_id}.create_cluster")
            follow = [f"{group_id}.record_results"]
            return [f"{group_id}.terminate_cluster", *follow] if created else follow

        terminate_cluster = EmrTerminateJobFlowOperator(
            task_id="terminate_cluster", job_flow_id=create_cluster.output, trigger_rule=TriggerRule.ALL_DONE
        )

        @task(trigger_rule=TriggerRule.ALL_DONE, outlets=list(outlets))
        def record_results(claimed: dict[str, list[str]] | None, cluster: str | None,
                           step_ids: list[str] | None, **context) -> dict[str, Any]:
            if not claimed:
                raise AirflowSkipException("no dates were claimed")
            cfg = LakeConfig.load()
            run_id = context["ti"].run_id
            step = None
            if cluster and step_ids:
                step = EmrHook(aws_conn_id=cfg.aws_conn_id).conn.describe_step(
                    ClusterId=cluster, StepId=step_ids[0])["Step"]
            if step and step["Status"]["State"] in job_table.ACTIVE_STEP_STATES:
                raise AirflowFailException(f"step {step['Id']} is still {step['Status']['State']}")
            summary = read_summary(cfg, summary_uri(cfg, job, run_id, claimed["dates"]))
            results = job.results(claimed["dates"], summary, step or _missing_step(cluster, step_ids))
            ended = job_table.utc_now()
            job_table.for_each_date(cfg.job_table, cfg.aws_conn_id, list(results), lambda table, day: (
                table.finish(day, job.name, run_id, ended_at=ended, **results[day])))
            failed = {d: r["error"] for d, r in results.items() if r["status"] == job_table.FAILED}
            if failed:
                raise AirflowFailException(f"{len(failed)} of {len(results)} dates failed: {failed}")
            return {"dates": len(results), "summary_totals": (summary or {}).get("totals")}

        results = record_results(claimed, cluster, add_step.output)
        chain(chosen, [find_cluster(), create_cluster], cluster, claimed, steps, add_step,
              record_step(claimed, cluster, add_step.output), wait_for_start,
              mark_running(claimed, cluster, add_step.output), wait_for_end,
              add_partitions(claimed), after_job(), [terminate_cluster, results])
        terminate_cluster >> results
    return group


def _missing_step(cluster: str | None, step_ids: list[str] | None) -> dict[str, Any]:
    """A stand-in when no step was added: the dates failed before EMR was involved."""
    reason = "no cluster was found or created" if not cluster else "the EMR step was not added"
    return {"Id": (step_ids or ["-"])[0], "Status": {"State": "FAILED", "StateChangeReason": {"Message": reason}}}
