"""EMR step execution for moto: runs ``command-runner.jar`` ``spark-submit`` steps with the local Spark.

moto accepts AddJobFlowSteps but never runs a step. This runner lives in the moto server's process and
drives moto's own EMR models (``moto.emr.models.emr_backends[account][region]``) the way EMR does:
PENDING -> RUNNING -> COMPLETED | FAILED (with FailureDetails) | CANCELLED, one step at a time per
cluster (or StepConcurrencyLevel), ActionOnFailure applied, CancelSteps answered, clusters WAITING when
idle and terminated when they should be. Only the moto classes are patched, in this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TERMINAL_STEP_STATES = {"COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"}
TERMINATED_CLUSTER_STATES = {"TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"}
# spark-submit options that take no value; every other --option takes one.
_SPARK_FLAGS = {"--verbose", "-v", "--supervise", "--help", "-h", "--version", "--usage-error"}
_FILE_LIST_OPTIONS = {"--py-files", "--files", "--jars", "--archives"}
_S3_SCHEMES = ("s3://", "s3a://", "s3n://")
_LOG4J_LINE = re.compile(r"^\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (INFO|WARN|DEBUG|TRACE) ")
_ERROR_LINE = re.compile(r"(Error|Exception)\b")
_MAX_MESSAGE = 2000
_TRACEBACK = "Traceback (most recent call last):"


class StepRejected(Exception):
    """A step the local stack cannot run; becomes FAILED with this reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _utcnow() -> datetime:
    from moto.core.utils import utcnow

    return utcnow()


def spark_submit_path() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def _local_path(value: str, base: Path, what: str) -> str:
    if value.startswith(_S3_SCHEMES):
        raise StepRejected(
            "Unsupported location.",
            f"{what} {value!r} is an S3 URI; the local stack runs Spark on local files: point the Spark jobs "
            "location (spark_jobs_uri) at the repository's spark_jobs/ directory and the lake at a local path",
        )
    if value.startswith("file://"):
        value = value[len("file://"):]
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())


def _stage_spark_jobs(spark_jobs_dir: Path, target: Path) -> Path:
    from infra.package import stage_spark_jobs

    try:
        return stage_spark_jobs(spark_jobs_dir, target)
    except SystemExit as exc:  # no job scripts in the folder
        raise StepRejected("File not found.", str(exc)) from None


def build_spark_submit(args: list[str], *, spark_jobs_dir: Path, master: str, spark_submit: Path,
                       stage: Callable[[], Path] | None = None) -> list[str]:
    """The local command for an EMR ``spark-submit`` step: YARN master and cluster deploy mode dropped,
    relative and file:// paths made local, S3 paths rejected with a clear message. The local defaults
    below are added unless the step sets them itself (its own --conf wins).

    ``stage`` returns a copy of the tree infra/package.py uploads from ``spark_jobs_dir`` (scripts, lib.zip,
    reference/); a script or file option inside ``spark_jobs_dir`` then runs from that copy, as an EMR step
    runs the uploaded files: the jobs' packages come from lib.zip, never from the source folder."""
    source_root, staged = Path(spark_jobs_dir).resolve(), []

    def local(value: str, what: str) -> str:
        path = _local_path(value, spark_jobs_dir, what)
        if stage is None or not Path(path).resolve().is_relative_to(source_root):
            return path
        if not staged:
            staged.append(stage())
        return str(staged[0] / Path(path).resolve().relative_to(source_root))

    if not args or Path(args[0]).name != "spark-submit":
        raise StepRejected(
            "Unsupported step.",
            f"the local stack runs command-runner.jar steps whose Args start with 'spark-submit'; got {args[:3]!r}",
        )
    options: list[str] = []
    user_confs: set[str] = set()
    i = 1
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg in _SPARK_FLAGS:
            options.append(arg)
            i += 1
            continue
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise StepRejected("Invalid step.", f"spark-submit option {arg} has no value")
            name, value = arg, args[i + 1]
            i += 2
        if name in ("--deploy-mode", "--master"):
            continue  # local mode: the driver runs here, on the configured master
        if name in _FILE_LIST_OPTIONS:
            value = ",".join(local(v, name) for v in value.split(",") if v)
        if name == "--conf":
            user_confs.add(value.split("=", 1)[0])
        options += [name, value]
    if i >= len(args):
        raise StepRejected("Invalid step.", f"spark-submit has no application script in {args!r}")
    script = local(args[i], "the application script")
    if not Path(script).is_file():
        raise StepRejected("File not found.", f"application script {script} does not exist")
    # Keep Spark on loopback and without a UI port unless the step asks otherwise. In local mode the driver
    # is also the executor: EMR sizes its driver from the instance type, here it gets 2 GB, not Spark's 1 GB
    # (the JHU backfill keeps ~0.5 GB of checkpointed rows in memory).
    defaults = {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1", "spark.driver.memory": "2g"}
    default_confs = [x for key, value in defaults.items() if key not in user_confs
                     for x in ("--conf", f"{key}={value}")]
    return [str(spark_submit), "--master", master, *default_confs, *options, script, *args[i + 1:]]


def summarize_failure(stdout: str, stderr: str) -> tuple[str, str, str]:
    """(Reason, Message, "stdout" | "stderr") for a failed step. spark-submit merges a Python driver's
    stderr into its stdout, so a Python traceback is looked for there first; otherwise the message is
    the end of stderr. Spark's INFO/WARN log lines are skipped; the reason is the last error line."""
    source, text = "stderr", stderr
    if _TRACEBACK in stdout:
        source, text = "stdout", stdout[stdout.rindex(_TRACEBACK):]
    lines = [line for line in text.splitlines() if line.strip() and not _LOG4J_LINE.match(line)]
    tail = lines[-15:]
    reason = next((line.strip() for line in reversed(tail) if _ERROR_LINE.search(line)), "Unknown Error.")
    message = "\n".join(tail)[-_MAX_MESSAGE:] or "the step's process failed without output"
    return reason[:_MAX_MESSAGE], message, source


@dataclass
class _Run:
    cluster_id: str
    step: Any
    process: subprocess.Popen[bytes]
    log_dir: Path
    cancel_requested: bool = False
    files: list[Any] = field(default_factory=list)


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def terminate_process_group(process: subprocess.Popen[bytes], grace_seconds: float = 5.0) -> None:
    """SIGTERM the step's process group (spark-submit, its JVM and Python workers), SIGKILL if needed."""
    if process.poll() is None:
        _kill_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_seconds)
    _kill_group(process, signal.SIGKILL)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        log.error("spark-submit pid %s did not exit after SIGKILL", process.pid)


class EmrStepRunner:
    """Runs the steps of every cluster in one moto EMR backend."""

    def __init__(
        self,
        *,
        account_id: str,
        region: str,
        log_dir: Path,
        spark_jobs_dir: Path,
        spark_master: str,
        env: Mapping[str, str],
        poll_seconds: float = 0.2,
        on_process_change: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.log_dir = Path(log_dir)
        self.spark_jobs_dir = Path(spark_jobs_dir)
        self.spark_master = spark_master
        self.env = dict(env)
        self.poll_seconds = poll_seconds
        self._on_process_change = on_process_change
        self._runs: dict[str, _Run] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        install_moto_patches()
        _RUNNERS[(self.account_id, self.region)] = self
        self._thread = threading.Thread(target=self._loop, name="emr-step-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(10)
        _RUNNERS.pop((self.account_id, self.region), None)
        with self._lock:
            for run in list(self._runs.values()):
                run.cancel_requested = True
                terminate_process_group(run.process)
                self._finish(run, run.process.returncode, reason="the local stack stopped")

    def wake(self) -> None:
        self._wake.set()

    def pids(self) -> list[int]:
        with self._lock:
            return [run.process.pid for run in self._runs.values()]

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            try:
                self.tick()
            except Exception:  # the runner must outlive one bad step or a moto quirk
                log.exception("EMR step runner tick failed")

    @property
    def backend(self) -> Any:
        from moto.emr.models import emr_backends

        return emr_backends[self.account_id][self.region]

    # -- scheduling ----------------------------------------------------------------------------------------
    def tick(self) -> None:
        with self._lock:
            for cluster in list(self.backend.clusters.values()):
                self._tick_cluster(cluster)

    def _tick_cluster(self, cluster: Any) -> None:
        runs = [run for run in self._runs.values() if run.cluster_id == cluster.id]
        for run in runs:
            if run.process.poll() is not None:
                self._finish(run, run.process.returncode)
        managed = [s for s in cluster.steps if isinstance(s, LocalStep)]
        if cluster.state in TERMINATED_CLUSTER_STATES:
            for run in [r for r in self._runs.values() if r.cluster_id == cluster.id]:
                run.cancel_requested = True
                terminate_process_group(run.process)
                self._finish(run, run.process.returncode, reason="the cluster was terminated")
            for step in managed:
                if step.state == "PENDING":
                    _end(step, "CANCELLED", "Cancelled because the cluster was terminated.")
            return
        slots = max(1, int(cluster.step_concurrency_level or 1))
        for step in managed:
            running = sum(1 for r in self._runs.values() if r.cluster_id == cluster.id)
            if running >= slots:
                break
            if step.state == "PENDING":
                self._start(cluster, step)
        busy = any(r.cluster_id == cluster.id for r in self._runs.values()) or any(
            s.state == "PENDING" for s in managed
        )
        if busy:
            cluster.state = "RUNNING"
        elif cluster.state in ("RUNNING", "STARTING", "BOOTSTRAPPING", "WAITING"):
            if cluster.keep_job_flow_alive_when_no_steps or not managed:
                cluster.state = "WAITING"
            else:  # EMR ends a cluster that only lived for its steps
                _terminate_cluster(cluster, "TERMINATED", "ALL_STEPS_COMPLETED", "Steps completed")

    def _start(self, cluster: Any, step: Any) -> None:
        log_dir = self.log_dir / cluster.id / "steps" / step.id
        log_dir.mkdir(parents=True, exist_ok=True)
        step.log_dir = str(log_dir)
        step.start_date_time = _utcnow()
        try:
            if step.jar != "command-runner.jar":
                raise StepRejected(
                    "Unsupported step.",
                    f"the local stack runs only command-runner.jar spark-submit steps; got Jar={step.jar!r}",
                )
            command = build_spark_submit(
                list(step.args), spark_jobs_dir=self.spark_jobs_dir, master=self.spark_master,
                spark_submit=spark_submit_path(),
                stage=lambda: _stage_spark_jobs(self.spark_jobs_dir, log_dir / "spark_jobs"),
            )
        except StepRejected as rejected:
            (log_dir / "stderr").write_text(rejected.message + "\n", encoding="utf-8")
            self._fail(cluster, step, rejected.reason, rejected.message, log_dir / "stderr")
            return
        (log_dir / "controller").write_text(
            f"{_utcnow().isoformat()}Z INFO startExec {command!r}\n", encoding="utf-8"
        )
        env = {**os.environ, **self.env, "PYSPARK_PYTHON": sys.executable,
               "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
        stdout = open(log_dir / "stdout", "wb")  # noqa: SIM115 - closed when the step ends
        stderr = open(log_dir / "stderr", "wb")  # noqa: SIM115
        work_dir = log_dir / "work"  # Spark's spark-warehouse/ and metastore_db/ stay out of the repo
        work_dir.mkdir(exist_ok=True)
        process = subprocess.Popen(
            command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=work_dir, env=env,
            start_new_session=True,
        )
        step.state = "RUNNING"
        self._runs[step.id] = _Run(cluster.id, step, process, log_dir, files=[stdout, stderr])
        log.info("step %s (%s) of %s started: pid %s", step.id, step.name, cluster.id, process.pid)
        self._processes_changed()

    def _finish(self, run: _Run, returncode: int | None, reason: str | None = None) -> None:
        self._runs.pop(run.step.id, None)
        for handle in run.files:
            handle.close()
        step = run.step
        with open(run.log_dir / "controller", "a", encoding="utf-8") as controller:
            controller.write(f"{_utcnow().isoformat()}Z INFO Step exited with code {returncode}\n")
        cluster = self.backend.clusters.get(run.cluster_id)
        if run.cancel_requested:
            _end(step, "CANCELLED", f"Cancelled: {reason or 'CancelSteps was called'}.")
        elif returncode == 0:
            _end(step, "COMPLETED", None)
        else:
            texts = {name: (run.log_dir / name).read_text(encoding="utf-8", errors="replace")
                     for name in ("stdout", "stderr")}
            why, message, source = summarize_failure(texts["stdout"], texts["stderr"])
            self._fail(cluster, step, why, f"{message}\n(exit code {returncode})", run.log_dir / source)
        log.info("step %s ended %s (exit code %s)", step.id, step.state, returncode)
        self._processes_changed()

    def _fail(self, cluster: Any, step: Any, reason: str, message: str, log_file: Path) -> None:
        step.failure_details = {"Reason": reason, "Message": message, "LogFile": str(log_file)}
        _end(step, "FAILED", reason)
        if cluster is None:
            return
        action = step.action_on_failure
        if action in ("CANCEL_AND_WAIT", "TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"):
            for other in cluster.steps:
                if isinstance(other, LocalStep) and other.state == "PENDING":
                    _end(other, "CANCELLED", f"Cancelled because step {step.id} failed ({action}).")
        if action in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"):
            _terminate_cluster(cluster, "TERMINATED_WITH_ERRORS", "STEP_FAILURE", "Shut down as step failed")

    # -- CancelSteps ----------------------------------------------------------------------------------------
    def cancel(self, cluster_id: str, step_ids: list[str], option: str | None) -> list[dict[str, str]]:
        infos = []
        with self._lock:
            cluster = self.backend.clusters.get(cluster_id)
            steps = {s.id: s for s in cluster.steps} if cluster else {}
            for step_id in step_ids:
                step = steps.get(step_id)
                if step is None:
                    infos.append({"StepId": step_id, "Status": "FAILED", "Reason": "Step not found."})
                elif step.state == "PENDING":
                    _end(step, "CANCELLED", "Cancelled by CancelSteps.")
                    infos.append({"StepId": step_id, "Status": "SUBMITTED", "Reason": ""})
                elif step.state == "RUNNING" and step_id in self._runs:
                    run = self._runs[step_id]
                    run.cancel_requested = True
                    step.state = "CANCEL_PENDING"
                    _kill_group(run.process, signal.SIGKILL if option == "TERMINATE_PROCESS" else signal.SIGTERM)
                    infos.append({"StepId": step_id, "Status": "SUBMITTED", "Reason": ""})
                else:
                    infos.append({"StepId": step_id, "Status": "FAILED",
                                  "Reason": f"Step is in state {step.state} and cannot be cancelled."})
        self.wake()
        return infos

    def _processes_changed(self) -> None:
        if self._on_process_change:
            self._on_process_change([run.process.pid for run in self._runs.values()])


def _end(step: Any, state: str, reason: str | None) -> None:
    step.state = state
    step.end_date_time = _utcnow()
    step.last_state_change_reason = reason


def _terminate_cluster(cluster: Any, state: str, code: str, message: str) -> None:
    cluster.state = state
    cluster.end_datetime = _utcnow()
    cluster.last_state_change_reason = message
    cluster.state_change_code = code


# -- moto patches (this process only) ----------------------------------------------------------------------
_RUNNERS: dict[tuple[str, str], EmrStepRunner] = {}
_PATCH_LOCK = threading.Lock()
_PATCHED = False


def _local_step_class() -> type:
    from moto.emr.models import Step

    class _LocalStep(Step):
        """A moto Step whose Status also carries EMR's FailureDetails."""

        failure_details: dict[str, str] | None = None
        log_dir: str | None = None

        @property
        def status(self) -> dict[str, Any]:
            status = dict(Step.status.fget(self))  # type: ignore[attr-defined]
            if self.failure_details:
                status["FailureDetails"] = self.failure_details
            return status

    return _LocalStep


LocalStep: type = type("LocalStepPlaceholder", (), {})


def install_moto_patches() -> None:
    """New steps start PENDING and are handed to the runner; CancelSteps is answered. Idempotent."""
    global _PATCHED, LocalStep
    with _PATCH_LOCK:
        if _PATCHED:
            return
        from moto.core.responses import ActionResult
        from moto.emr.models import Cluster
        from moto.emr.responses import ElasticMapReduceResponse

        LocalStep = _local_step_class()
        original_add_steps = Cluster.add_steps

        def add_steps(self: Any, steps: list[dict[str, Any]]) -> list[Any]:
            added = original_add_steps(self, steps)
            for step in added:
                step.__class__ = LocalStep
                step.state = "PENDING"
                step.start_date_time = None
            runner = _RUNNERS.get((self.emr_backend.account_id, self.emr_backend.region_name))
            if runner:
                runner.wake()
            return added

        def cancel_steps(self: Any) -> Any:
            cluster_id = self._get_param("ClusterId")
            step_ids = list(self._get_param("StepIds", []))
            option = self._get_param("StepCancellationOption")
            runner = _RUNNERS.get((self.current_account, self.region))
            if runner is None:
                infos = [{"StepId": s, "Status": "FAILED", "Reason": "no step runner"} for s in step_ids]
            else:
                infos = runner.cancel(cluster_id, step_ids, option)
            return ActionResult({"CancelStepsInfoList": infos})

        Cluster.add_steps = add_steps
        ElasticMapReduceResponse.cancel_steps = cancel_steps
        _PATCHED = True
