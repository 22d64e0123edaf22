"""EMR pieces: Spark steps a task retry cannot add twice, step lookups, transient clusters of a run, and a
step sensor that waits for a step's start or end in poke mode or deferred to the triggerer."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.sdk.exceptions import AirflowException

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
    from airflow.sdk import Context

from covid19_lake import lake as lake_paths

CLUSTER_LOOKUP_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
# A step in one of these states is (or will be) doing the work: adding it again would duplicate it.
LIVE_OR_DONE_STEP_STATES = ["PENDING", "RUNNING", "COMPLETED"]
# The Spark jobs' packages (spark_common, jhu) as one zip under spark_jobs_uri (infra.package.SPARK_LIBRARY).
SPARK_LIBRARY = "lib.zip"


def step_name(job_name: str, first: str, last: str, dag_id: str, run_id: str) -> str:
    """Unique per DAG run and range, so a retry can find the step it already added (run ids are unique per
    DAG only, hence both; EMR caps names at 256)."""
    return f"{job_name} {first}..{last} [{dag_id}/{run_id}]"[:256]


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
    """A command-runner.jar spark-submit step of a job script; the jobs' packages ship with --py-files as
    lib.zip (infra/package.py builds and uploads it next to the scripts)."""
    return {
        "Name": name,
        # CONTINUE: one job's failure must not cancel other jobs' steps on a shared cluster.
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit",
                "--deploy-mode", deploy_mode,
                "--py-files", lake_paths.join(spark_jobs_uri, SPARK_LIBRARY),
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


def add_step_once(hook: EmrHook, cluster_id: str, step: dict[str, Any]) -> tuple[str, bool]:
    """The id of the step named like `step` on the cluster, adding it only when there is none that is
    pending, running or completed; and whether it was added now. Step names are unique per DAG run (see
    step_name), so a step found by name is this run's own earlier try: a task retry never adds a second."""
    existing = find_steps_by_name(hook, cluster_id, [step["Name"]])
    if step["Name"] in existing:
        return existing[step["Name"]], False
    return hook.conn.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step])["StepIds"][0], True


def cancel_step(hook: EmrHook, cluster_id: str, step_id: str) -> str:
    """Ask EMR to cancel a pending or running step (its process is killed); EMR's answer."""
    infos = hook.conn.cancel_steps(ClusterId=cluster_id, StepIds=[step_id],
                                   StepCancellationOption="TERMINATE_PROCESS")["CancelStepsInfoList"]
    info = next((i for i in infos if i.get("StepId") == step_id), {})
    return f"{info.get('Status', 'unknown')}{': ' + info['Reason'] if info.get('Reason') else ''}"


def describe_step(hook: EmrHook, cluster_id: str, step_id: str) -> dict[str, Any] | None:
    """The step (DescribeStep's Step), or None when EMR doesn't know it (or its cluster) any more."""
    try:
        return hook.conn.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]
    except hook.conn.exceptions.InvalidRequestException:
        return None


def step_argument(step: dict[str, Any] | None, flag: str) -> str | None:
    """The value after `flag` in the step's command line (e.g. the job's --summary-uri), or None."""
    args = ((step or {}).get("Config") or {}).get("Args") or []
    return args[args.index(flag) + 1] if flag in args[:-1] else None


# -- transient clusters -----------------------------------------------------------------------------
RUN_TAG = "covid19-lake:run"


def run_tag(dag_id: str, run_id: str) -> str:
    """The tag value naming the DAG run that created a transient cluster (EMR caps tag values at 256)."""
    return f"{dag_id}/{run_id}"[:256]


def find_run_cluster(hook: EmrHook, name: str, tag: str) -> str | None:
    """A live cluster named `name` that this DAG run created (tagged with its run), if any: a retried
    acquire task finds the cluster its earlier try created instead of starting a second one."""
    paginator = hook.conn.get_paginator("list_clusters")
    for page in paginator.paginate(ClusterStates=CLUSTER_LOOKUP_STATES):
        for cluster in page["Clusters"]:
            if cluster["Name"] != name:
                continue
            tags = hook.conn.describe_cluster(ClusterId=cluster["Id"])["Cluster"].get("Tags") or []
            if {"Key": RUN_TAG, "Value": tag} in [{"Key": t.get("Key"), "Value": t.get("Value")} for t in tags]:
                return cluster["Id"]
    return None


def create_run_cluster(hook: EmrHook, overrides: dict[str, Any], tag: str) -> str:
    """Create a transient cluster (RunJobFlow with the overrides) tagged with the DAG run; its id."""
    tags = [t for t in overrides.get("Tags", []) if t.get("Key") != RUN_TAG] + [{"Key": RUN_TAG, "Value": tag}]
    response = hook.create_job_flow({**overrides, "Tags": tags})
    if response["ResponseMetadata"]["HTTPStatusCode"] != 200:
        raise RuntimeError(f"EMR RunJobFlow failed: {response}")
    return response["JobFlowId"]


# -- waiting on a step ------------------------------------------------------------------------------
STEP_TERMINAL_STATES = ("COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED")
STEP_STARTED_STATES = ("RUNNING", *STEP_TERMINAL_STATES)


class EmrStepStateTrigger(AwsBaseWaiterTrigger):
    """Wait in the triggerer until a step is in one of `target_states`, whichever that is.

    The provider's EmrStepSensorTrigger only waits for the end and reports a failed step as an error; the
    DAGs wait for a step's start (to record RUNNING) and for its end whatever it was, and the final
    records say how it ended. Same DescribeStep waiter, other acceptors.
    """

    def __init__(
        self,
        job_flow_id: str,
        step_id: str,
        target_states: list[str],
        waiter_delay: int = 30,
        waiter_max_attempts: int = 60,
        aws_conn_id: str | None = "aws_default",
    ):
        target_states = list(target_states)
        super().__init__(
            serialized_fields={"job_flow_id": job_flow_id, "step_id": step_id, "target_states": target_states},
            waiter_name="step_wait_for_terminal",
            waiter_args={"ClusterId": job_flow_id, "StepId": step_id},
            waiter_config_overrides={"acceptors": [
                {"matcher": "path", "argument": "Step.Status.State", "expected": state, "state": "success"}
                for state in target_states
            ]},
            failure_message=f"Error while waiting for step {step_id} to reach {target_states}",
            status_message=f"Step {step_id} is not in {target_states} yet",
            status_queries=["Step.Status.State"],
            return_value=step_id,
            return_key="step_id",
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
        )

    def hook(self) -> AwsGenericHook:
        return EmrHook(aws_conn_id=self.aws_conn_id)


class EmrStepStateSensor(EmrStepSensor):
    """EmrStepSensor that succeeds once the step reaches any of `target_states` (a failed step included:
    the final records, not this sensor, report how it ended), in poke mode or deferred to the triggerer.

    Deferred, it waits with EmrStepStateTrigger for up to `max_attempts` x `poke_interval`; poking, for up
    to `timeout`. Either way a step that never gets there fails the sensor.
    """

    def __init__(self, *, target_states: list[str], **kwargs: Any) -> None:
        super().__init__(target_states=list(target_states), **kwargs)
        self.failed_states = []

    def execute(self, context: Context) -> None:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            timeout=timedelta(seconds=self.max_attempts * self.poke_interval),
            trigger=EmrStepStateTrigger(
                job_flow_id=self.job_flow_id, step_id=self.step_id, target_states=list(self.target_states),
                waiter_delay=int(self.poke_interval), waiter_max_attempts=self.max_attempts,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name="execute_complete",
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        validated = validate_execute_complete_event(event)
        if validated["status"] != "success":
            raise AirflowException(f"EMR step {self.step_id} did not reach {list(self.target_states)}: "
                                   f"{validated.get('message', validated)}")
        self.log.info("EMR step %s reached one of %s", self.step_id, list(self.target_states))
