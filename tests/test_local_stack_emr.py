"""EMR step execution of the local stack, seen through the amazon provider's hook and sensor."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from unittest import mock

import pytest

pytestmark = pytest.mark.stack

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"}


@pytest.fixture
def stack_env(local_stack, monkeypatch):
    for name, value in local_stack.env().items():
        monkeypatch.setenv(name, value)
    return local_stack


def spark_step(name: str, script: Path, *args: str, action: str = "CONTINUE") -> dict:
    """A step as the DAGs submit it to EMR (cluster deploy mode on YARN)."""
    return {
        "Name": name,
        "ActionOnFailure": action,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["spark-submit", "--deploy-mode", "cluster", "--master", "yarn", str(script), *args],
        },
    }


def write_script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def step_status(stack, cluster_id: str, step_id: str) -> dict:
    return stack.client("emr").describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]


def wait_state(stack, cluster_id: str, step_id: str, states: set[str], timeout: float = 120) -> dict:
    return stack.wait_for(
        lambda: (status := step_status(stack, cluster_id, step_id))["State"] in states and status,
        timeout=timeout, interval=0.2, message=f"step {step_id} in {states}",
    )


def test_steps_run_in_order_and_the_sensor_sees_completed_and_failed(stack_env, tmp_path):
    from airflow.exceptions import AirflowException
    from airflow.providers.amazon.aws.hooks.emr import EmrHook
    from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor

    stack = stack_env
    marker = tmp_path / "ran.txt"
    ok = write_script(tmp_path / "ok.py", f"""
        import sys
        with open({str(marker)!r}, "a") as out:
            out.write(" ".join(sys.argv[1:]) + "\\n")
    """)
    bad = write_script(tmp_path / "bad.py", """
        raise ValueError("bad row in x.csv: expected 5 columns")
    """)
    hook = EmrHook(aws_conn_id="aws_default")
    cluster_id = hook.get_cluster_id_by_name("covid19-lake", ["STARTING", "RUNNING", "WAITING"])
    assert cluster_id == stack.outputs["EmrClusterId"]

    step_ids = hook.add_job_flow_steps(job_flow_id=cluster_id, steps=[
        spark_step("ok", ok, "--date", "2020-03-01"),
        spark_step("bad", bad, action="CANCEL_AND_WAIT"),
        spark_step("after-bad", ok, "--never"),
    ])
    assert step_status(stack, cluster_id, step_ids[0])["State"] in {"PENDING", "RUNNING"}
    context = {"ti": mock.MagicMock()}
    ok_sensor = EmrStepSensor(task_id="watch_ok", job_flow_id=cluster_id, step_id=step_ids[0])
    stack.wait_for(lambda: ok_sensor.poke(context), timeout=120, interval=0.2, message="the ok step")

    failed = wait_state(stack, cluster_id, step_ids[1], TERMINAL)
    bad_sensor = EmrStepSensor(task_id="watch_bad", job_flow_id=cluster_id, step_id=step_ids[1])
    with pytest.raises(AirflowException, match=r"ValueError: bad row in x\.csv: expected 5 columns"):
        bad_sensor.poke(context)

    done = step_status(stack, cluster_id, step_ids[0])
    skipped = wait_state(stack, cluster_id, step_ids[2], TERMINAL)
    assert (done["State"], failed["State"], skipped["State"]) == ("COMPLETED", "FAILED", "CANCELLED")
    # One step at a time: the second started only after the first ended.
    assert done["Timeline"]["StartDateTime"] <= done["Timeline"]["EndDateTime"]
    assert failed["Timeline"]["StartDateTime"] >= done["Timeline"]["EndDateTime"]
    assert "StartDateTime" not in skipped["Timeline"]
    details = failed["FailureDetails"]
    assert details["Reason"].startswith("ValueError")
    assert "Traceback" in details["Message"]
    assert "expected 5 columns" in Path(details["LogFile"]).read_text()
    # The ok step really ran, with its arguments; the cancelled one never did.
    assert marker.read_text().splitlines() == ["--date 2020-03-01"]
    stack.wait_for(
        lambda: stack.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"] == "WAITING",
        timeout=10, message="the cluster back to WAITING",
    )


def test_cancel_steps_cancels_pending_and_running_steps(stack_env, tmp_path):
    stack = stack_env
    emr = stack.client("emr")
    cluster_id = stack.outputs["EmrClusterId"]
    started = tmp_path / "started"
    slow = write_script(tmp_path / "slow.py", f"""
        import pathlib, time
        pathlib.Path({str(started)!r}).touch()
        time.sleep(300)
    """)
    never = write_script(tmp_path / "never.py", f"""
        import pathlib
        pathlib.Path({str(tmp_path / "never-ran")!r}).touch()
    """)
    slow_id, pending_id = emr.add_job_flow_steps(
        JobFlowId=cluster_id, Steps=[spark_step("slow", slow), spark_step("pending", never)]
    )["StepIds"]
    wait_state(stack, cluster_id, slow_id, {"RUNNING"})
    stack.wait_for(started.exists, timeout=120, message="the slow step's driver to start")
    pids = stack.refresh()["emr_step_pids"]
    assert len(pids) == 1

    answer = emr.cancel_steps(ClusterId=cluster_id, StepIds=[pending_id])["CancelStepsInfoList"]
    assert answer == [{"StepId": pending_id, "Status": "SUBMITTED", "Reason": ""}]
    assert wait_state(stack, cluster_id, pending_id, TERMINAL)["State"] == "CANCELLED"

    emr.cancel_steps(ClusterId=cluster_id, StepIds=[slow_id], StepCancellationOption="SEND_INTERRUPT")
    assert wait_state(stack, cluster_id, slow_id, TERMINAL, timeout=30)["State"] == "CANCELLED"
    stack.wait_for(lambda: not _alive(pids[0]), timeout=15, message="the spark-submit process to exit")
    assert stack.refresh()["emr_step_pids"] == []
    assert not (tmp_path / "never-ran").exists()

    again = emr.cancel_steps(ClusterId=cluster_id, StepIds=[slow_id])["CancelStepsInfoList"]
    assert again[0]["Status"] == "FAILED" and "CANCELLED" in again[0]["Reason"]


def test_rejected_steps_fail_clearly_and_clusters_terminate_like_emr(stack_env, tmp_path):
    """No spark-submit here: an s3:// script is refused before anything starts."""
    stack = stack_env
    emr = stack.client("emr")
    transient = emr.run_job_flow(
        Name="transient-test", ReleaseLabel="emr-7.9.0", JobFlowRole="r", ServiceRole="s",
        Instances={"MasterInstanceType": "m6g.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": False},
    )["JobFlowId"]
    step_id = emr.add_job_flow_steps(JobFlowId=transient, Steps=[
        spark_step("from-s3", "s3://bucket/spark_jobs/job.py", action="TERMINATE_CLUSTER")
    ])["StepIds"][0]
    failed = wait_state(stack, transient, step_id, TERMINAL, timeout=30)
    assert failed["State"] == "FAILED"
    assert "S3 URI" in failed["FailureDetails"]["Message"]
    assert "spark_jobs" in failed["FailureDetails"]["Message"]
    stack.wait_for(
        lambda: emr.describe_cluster(ClusterId=transient)["Cluster"]["Status"]["State"] == "TERMINATED_WITH_ERRORS",
        timeout=10, message="TERMINATE_CLUSTER to end the cluster",
    )

    kept = emr.run_job_flow(
        Name="kept-test", ReleaseLabel="emr-7.9.0", JobFlowRole="r", ServiceRole="s",
        Instances={"MasterInstanceType": "m6g.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
    )["JobFlowId"]
    assert emr.describe_cluster(ClusterId=kept)["Cluster"]["Status"]["State"] == "WAITING"
    emr.terminate_job_flows(JobFlowIds=[kept])
    assert emr.describe_cluster(ClusterId=kept)["Cluster"]["Status"]["State"] == "TERMINATED"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
