"""EMR pieces: Spark steps, step lookups, and an add-steps operator that a task retry cannot repeat."""

from __future__ import annotations

import re
from typing import Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook
from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator

from covid19_lake import lake as lake_paths

CLUSTER_LOOKUP_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
# A step in one of these states is (or will be) doing the work: adding it again would duplicate it.
LIVE_OR_DONE_STEP_STATES = ["PENDING", "RUNNING", "COMPLETED"]


def step_name(job_name: str, first: str, last: str, run_id: str) -> str:
    """Unique per run and range, so a retry can find the step it already added (EMR caps names at 256)."""
    return f"{job_name} {first}..{last} [{run_id}]"[:256]


def safe_key(value: str) -> str:
    """A run id as a lake key segment."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", value)


def spark_submit_step(
    name: str,
    spark_jobs_uri: str,
    script: str,
    job_args: list[str],
    *,
    deploy_mode: str = "cluster",
    action_on_failure: str = "CONTINUE",
) -> dict[str, Any]:
    """A command-runner.jar spark-submit step; spark_common.py ships with --py-files."""
    return {
        "Name": name,
        # CONTINUE: one job's failure must not cancel other jobs' steps on a shared cluster.
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit",
                "--deploy-mode", deploy_mode,
                "--py-files", lake_paths.join(spark_jobs_uri, "spark_common.py"),
                lake_paths.join(spark_jobs_uri, script),
                *job_args,
            ],
        },
    }


def find_steps_by_name(hook: EmrHook, cluster_id: str, names: list[str]) -> dict[str, str]:
    """Ids of steps on the cluster with these names that are pending, running or done (newest wins)."""
    found: dict[str, str] = {}
    paginator = hook.conn.get_paginator("list_steps")
    for page in paginator.paginate(ClusterId=cluster_id, StepStates=LIVE_OR_DONE_STEP_STATES):
        for step in page["Steps"]:  # newest first
            if step["Name"] in names and step["Name"] not in found:
                found[step["Name"]] = step["Id"]
    return found


def step_state(hook: EmrHook, cluster_id: str, step_id: str) -> str | None:
    """The step's state, or None when EMR doesn't know the step (or the cluster) any more."""
    try:
        response = hook.conn.describe_step(ClusterId=cluster_id, StepId=step_id)
    except hook.conn.exceptions.InvalidRequestException:
        return None
    return response.get("Step", {}).get("Status", {}).get("State")


def failure_reason(step: dict[str, Any]) -> str:
    """EMR's own words for why a step ended badly."""
    status = step["Status"]
    details = status.get("FailureDetails") or {}
    text = f"EMR step {step.get('Id', '')} {status['State']}"
    detail = "; ".join(x for x in (details.get("Reason"), details.get("Message")) if x)
    detail = detail or (status.get("StateChangeReason") or {}).get("Message")
    if detail:
        text += f": {detail}"
    if details.get("LogFile"):
        text += f" (log: {details['LogFile']})"
    return text


class IdempotentEmrAddStepsOperator(EmrAddStepsOperator):
    """EmrAddStepsOperator that reuses the steps it already added when its task is retried.

    Step names are unique per DAG run (see step_name), so a step with the same name on the cluster
    that is pending, running or completed is this run's own earlier attempt.
    """

    def execute(self, context):
        if self.job_flow_id and isinstance(self.steps, list) and self.steps:
            names = [step["Name"] for step in self.steps]
            existing = find_steps_by_name(self.hook, self.job_flow_id, names)
            if len(existing) == len(names):
                self.log.info("Steps already added by an earlier try, not adding again: %s", existing)
                return [existing[name] for name in names]
        return super().execute(context)
