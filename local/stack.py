"""The embedded local AWS stack: moto's server plus what moto does not do by itself.

    python -m local.stack up|down|status [--state-dir .local]

or, in Python::

    with LocalStack(state_dir, lake_dir, spark_jobs_dir) as stack:
        stack.client("emr").list_clusters()

Everything listens on 127.0.0.1 on ports chosen at start and recorded in ``{state_dir}/stack.json``.
The Lambdas the template attaches to DynamoDB streams (the notifier on the job table) run by default;
``--stream-handler`` adds or replaces one, ``--no-stream-handlers`` turns the template's off.
See docs/local-stack.md for how each piece maps to AWS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local import config, processes
from local.cfn import TemplateError, load_template
from local.deploy import Deployment, deploy
from local.emr_runner import EmrStepRunner
from local.firehose_mirror import FirehoseMirror, delivery_prefixes
from local.processes import pid_alive
from local.stream_bridge import EventSourceConfig, StreamBridge
from local.template_lambdas import (
    deployed_on_aws,
    handler_path,
    mapping_from_template,
    stream_mappings,
    why_not_emulated,
)
from local.webhook_sink import WebhookSink
from local.x_api import XApiStandIn

log = logging.getLogger("local.stack")

StreamHandlerSpec = str | dict[str, Any]
_CLIENT_LOCK = threading.Lock()

# The X API stand-in's synthetic corpus: the demo's dates (local/tweets_synth.py), the same every start.
X_API_SEED = 19
X_API_CONN_ID = "x_api"
TWEETS_CHECKPOINT_VARIABLE = "tweets_ingest_checkpoint"
# The Airflow Variable covid19_lake: the template's secret (its name is this output), given to Airflow as
# AIRFLOW_VAR_COVID19_LAKE.
VARIABLE_SECRET_OUTPUT = "AirflowLakeVariableSecretName"
AIRFLOW_VARIABLE_ENV = "AIRFLOW_VAR_COVID19_LAKE"


def _config_module() -> Any:
    """covid19_lake.config (the DAGs' loader), from the repository's plugins/."""
    plugins = str(config.REPO_ROOT / "plugins")
    if plugins not in sys.path:
        sys.path.insert(0, plugins)
    import covid19_lake.config

    return covid19_lake.config


def merge_variable(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied section by section (a section's other keys stay)."""
    merged = {section: dict(values) if isinstance(values, dict) else values for section, values in base.items()}
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    return merged


def set_firehose_clock(clock: Callable[[], datetime] | None) -> None:
    """LOCAL ONLY: the time moto's Firehose names its S3 objects by (``{prefix}YYYY/MM/DD/HH/``).

    On AWS that is the hour Firehose received the records. The local stack serves synthetic tweets for
    2020 through the X API stand-in, whose virtual clock says when they were "posted" and fetched; with
    this hook the objects land under the hour the data represents instead of the wall clock, so the demo's
    partitions are the demo's dates. ``None`` restores moto's own clock. Production code never calls this
    (on AWS, Firehose's arrival time is Firehose's)."""
    import moto.firehose.models as firehose_models
    from moto.core.utils import utcnow

    if clock is None:
        firehose_models.utcnow = utcnow  # type: ignore[attr-defined]
        return

    def virtual_utcnow() -> datetime:
        return clock().astimezone(UTC).replace(tzinfo=None)  # moto's utcnow() is naive UTC

    firehose_models.utcnow = virtual_utcnow  # type: ignore[attr-defined]


class FirehoseFaults:
    """LOCAL ONLY, for tests: Firehose's partial failure on demand. The next batches of PutRecordBatch
    reject the records at the given indexes (``ServiceUnavailableException``, nothing written for them),
    as Firehose does when it throttles; every batch's size is logged, so a test sees what was retried.

    Controlled through the stand-in's loopback control port: ``POST /_stand_in/firehose-faults``
    ``{"fail": [[1, 3, 4]]}`` (one list of indexes per coming batch) and ``GET`` for the log."""

    PATH = "/_stand_in/firehose-faults"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.plan: list[set[int]] = []
        self.batches: list[dict[str, Any]] = []
        self._original: Any = None

    def install(self) -> None:
        from moto.firehose.models import FirehoseBackend

        if self._original is not None:
            return
        original = self._original = FirehoseBackend.put_record_batch
        faults = self

        def put_record_batch(backend: Any, delivery_stream_name: str, records: list[dict[str, bytes]]
                             ) -> dict[str, Any]:
            with faults._lock:
                failing = {i for i in (faults.plan.pop(0) if faults.plan else set()) if 0 <= i < len(records)}
                faults.batches.append({"stream": delivery_stream_name, "records": len(records),
                                       "failed": sorted(failing)})
            kept = [r for i, r in enumerate(records) if i not in failing]
            response = original(backend, delivery_stream_name, kept) if kept else {
                "FailedPutCount": 0, "Encrypted": False, "RequestResponses": []}
            delivered = iter(response["RequestResponses"])
            merged = [{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down. (local stack fault)"}
                      if i in failing else next(delivered) for i in range(len(records))]
            return {**response, "FailedPutCount": len(failing), "RequestResponses": merged}

        FirehoseBackend.put_record_batch = put_record_batch  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            from moto.firehose.models import FirehoseBackend

            FirehoseBackend.put_record_batch = self._original  # type: ignore[method-assign]
            self._original = None

    def control(self, method: str, body: Any) -> dict[str, Any]:
        with self._lock:
            if method == "POST":
                if not isinstance(body, dict) or not isinstance(body.get("fail"), list):
                    raise ValueError('send {"fail": [[indexes of the next batch], ...]} (or {"fail": []} to clear)')
                self.plan = [{int(i) for i in batch} for batch in body["fail"]]
                if body.get("clear_log"):
                    self.batches.clear()
            return {"pending": [sorted(b) for b in self.plan], "batches": list(self.batches)}


def start_x_api(token: str, faults: FirehoseFaults | None = None) -> XApiStandIn:
    """The stack's X API v2 stand-in on 127.0.0.1: the synthetic corpus for the demo's dates, on the wall
    clock until someone sets its virtual clock (``POST /_stand_in/clock``, as the demo does); the filtered
    stream starts at the demo's last day, so streamed tweets arrive within that day's window."""
    from local.tweets_synth import DEMO_END, generate

    corpus = generate(seed=X_API_SEED)
    last_day = datetime(DEMO_END.year, DEMO_END.month, DEMO_END.day, tzinfo=UTC)
    controls = {FirehoseFaults.PATH: faults.control} if faults else None
    return XApiStandIn(corpus, bearer_token=token, history=None, stream_from=last_day,
                       stream_keepalive_seconds=1.0, stream_max_seconds=60.0, host=config.HOST,
                       extra_controls=controls).start()


class _StackClient:
    """What every user of a running stack needs: clients, the environment, polling."""

    endpoint_url: str
    region: str = config.REGION

    def client(self, service: str) -> Any:
        """A boto3 client against the stack (cached: clients are thread-safe and slow to build)."""
        import boto3
        from botocore.config import Config

        cache = self.__dict__.setdefault("_clients", {})
        key = (service, self.endpoint_url)
        with _CLIENT_LOCK:
            if key not in cache:
                session = self.__dict__.setdefault("_session", boto3.session.Session())
                cache[key] = session.client(
                    service, endpoint_url=self.endpoint_url, region_name=self.region,
                    aws_access_key_id=config.FAKE_ACCESS_KEY_ID,
                    aws_secret_access_key=config.FAKE_SECRET_ACCESS_KEY,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
            return cache[key]

    def aws_env(self) -> dict[str, str]:
        """What any boto3 client (Spark jobs, Lambda handlers, scripts) needs to reach the stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": config.FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": config.FAKE_SECRET_ACCESS_KEY,
        }

    def env(self) -> dict[str, str]:
        """The environment Airflow (and other clients) need to use the local stack."""
        connection = {
            "conn_type": "aws",
            "login": config.FAKE_ACCESS_KEY_ID,
            "password": config.FAKE_SECRET_ACCESS_KEY,
            "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }
        env = {**self.aws_env(), "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection), **self.tweets_env()}
        env.pop("AWS_REGION")
        variable = getattr(self, "airflow_variable", None)
        if variable:
            # The one Airflow Variable, as the template wrote it (plus the local values): on MWAA the
            # Secrets Manager backend serves the same secret.
            env[AIRFLOW_VARIABLE_ENV] = json.dumps(variable, sort_keys=True)
        return env

    x_api: dict[str, str]

    def tweets_env(self) -> dict[str, str]:
        """The X connection (the stand-in's token, its base URL as host); the tweets settings are the
        Variable's tweets section (``airflow_variable``). The since_id checkpoint is not here: the task
        writes it, so it lives in the metadata DB."""
        x_api = getattr(self, "x_api", None) or {}
        if not x_api.get("base_url"):
            return {}
        connection = {"conn_type": "http", "host": x_api["base_url"], "password": x_api["token"]}
        return {f"AIRFLOW_CONN_{X_API_CONN_ID.upper()}": json.dumps(connection),
                # The stand-in's clock is virtual: tweets_ingest runs when triggered (the demo, the UI).
                "COVID19_LAKE_TWEETS_INGEST_SCHEDULE": "none",
                # ...and so do the DAGs that process its hours and weeks: unpausing one to run it must not
                # start a run for the real clock's current hour or week.
                "COVID19_LAKE_TWEETS_PROCESS_SCHEDULE": "none", "COVID19_LAKE_WEEKLY_SCHEDULE": "none"}

    wait_for = staticmethod(processes.wait_for)


class LocalStack(_StackClient):
    """The whole local stack in this process (threads), plus spark-submit child processes."""

    def __init__(
        self,
        state_dir: Path,
        lake_dir: Path,
        spark_jobs_dir: Path,
        stream_handlers: dict[str, StreamHandlerSpec] | None = None,
        template_stream_handlers: bool = True,
        emr_cluster_name: str = "covid19-lake",
        spark_master: str = "local[2]",
        airflow_base_url: str = "http://127.0.0.1:8080",
        template_path: Path | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.lake_dir = Path(lake_dir).resolve()
        self.spark_jobs_dir = Path(spark_jobs_dir).resolve()
        self.stream_handlers = dict(stream_handlers or {})
        self.template_stream_handlers = template_stream_handlers
        self.wiring: dict[str, dict[str, Any]] = {}  # table logical ID or name -> what runs on its stream
        self.not_emulated: dict[str, str] = {}  # logical ID -> why the stack skips what AWS deploys
        self.emr_cluster_name = emr_cluster_name
        self.spark_master = spark_master
        self.airflow_base_url = airflow_base_url
        self.template_path = Path(template_path) if template_path else config.TEMPLATE
        self.sink_log = self.state_dir / config.SINK_LOG
        self.outputs: dict[str, str] = {}
        self.deployment: Deployment | None = None
        self.bridges: dict[str, StreamBridge] = {}
        self._moto: Any = None
        self._sink: WebhookSink | None = None
        self._runner: EmrStepRunner | None = None
        self._mirror: FirehoseMirror | None = None
        self._x_api: XApiStandIn | None = None
        self.firehose_faults = FirehoseFaults()
        self.x_api: dict[str, str] = {}
        self.airflow_variable: dict[str, Any] = {}
        self._saved_env: dict[str, str | None] = {}
        self._started = False
        self._record_lock = threading.Lock()
        self.endpoint_url = ""
        self.sink_url = ""

    # -- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        if self._started:
            return self
        for directory in (self.state_dir, self.lake_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.spark_jobs_dir.is_dir():
            raise ValueError(f"spark_jobs_dir {self.spark_jobs_dir} is not a directory")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            self._start_pieces()
        except BaseException:
            self.stop()
            raise
        self._started = True
        self._write_record("running")
        log.info("local stack up: AWS endpoint %s, webhook sink %s", self.endpoint_url, self.sink_url)
        return self

    def _start_pieces(self) -> None:
        from moto.server import ThreadedMotoServer

        from local.dynamodb_atomic import serialize_dynamodb_writes

        serialize_dynamodb_writes()
        self._moto = ThreadedMotoServer(ip_address=config.HOST, port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

        self._sink = WebhookSink(self.sink_log, host=config.HOST).start()
        self.sink_url = self._sink.url

        # The runner patches moto's EMR models, so it starts before any cluster or step exists.
        self._runner = EmrStepRunner(
            account_id=config.ACCOUNT_ID, region=self.region, log_dir=self.state_dir / "emr",
            spark_jobs_dir=self.spark_jobs_dir, spark_master=self.spark_master, env=self.aws_env(),
            on_process_change=lambda _pids: self._write_record("running") if self._started else None,
        )
        self._runner.start()

        self.deployment = self._deploy_template()
        self.outputs = dict(self.deployment.outputs)
        self._seed_webhooks_secret()
        self.outputs["EmrClusterId"] = self._ensure_cluster()

        bucket = self.outputs.get("LakeBucketName")
        if bucket:
            prefixes = delivery_prefixes(self.client("firehose"), bucket)
            self._mirror = FirehoseMirror(lambda: self.client("s3"), prefixes, self.lake_dir)
            self._mirror.start()

        import secrets

        token = f"local-{secrets.token_urlsafe(24)}"  # a new one per stack, in stack.json's env only
        self.firehose_faults.install()
        self._x_api = start_x_api(token, self.firehose_faults)
        set_firehose_clock(self._x_api.now)
        self.x_api = {"base_url": self._x_api.base_url, "token": token}
        self.airflow_variable = self._write_airflow_variable()

        if config.REPO_ROOT.as_posix() not in sys.path:
            sys.path.insert(0, config.REPO_ROOT.as_posix())  # handlers are dotted paths of this repo
        for key, (spec, origin) in self._stream_handlers_to_wire().items():
            self.add_stream_handler(key, spec)
            self.wiring[key].update(origin)

    def stop(self) -> None:
        """Stop every thread and process this stack started (spark-submit steps included)."""
        for bridge in self.bridges.values():
            bridge.stop()
        self.bridges.clear()
        if self._mirror:
            try:
                self._mirror.stop()
            except Exception:
                log.exception("final firehose mirror sync failed")
            self._mirror = None
        self.firehose_faults.uninstall()
        if self._x_api:
            set_firehose_clock(None)
            self._x_api.stop()
            self._x_api = None
        if self._runner:
            self._runner.stop()
            self._runner = None
        if self._sink:
            self._sink.stop()
            self._sink = None
        if self._moto:
            self._moto.stop()
            self._moto = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self._started:
            self._started = False
            self._write_record("stopped")

    # -- pieces --------------------------------------------------------------------------------------------
    def _deploy_template(self) -> Deployment:
        template = load_template(self.template_path)
        parameters = {
            "DeploymentTarget": "local",
            "ProjectName": config.PROJECT_NAME,
            "LakeUri": self.lake_dir.as_uri(),
            "SparkJobsUri": str(self.spark_jobs_dir),
            "AirflowBaseUrl": self.airflow_base_url,
        }
        declared = template.get("Parameters") or {}
        missing = [name for name in ("DeploymentTarget", "ProjectName", "LakeUri") if name not in declared]
        if missing:
            raise TemplateError(f"{self.template_path}: Parameters {missing} are part of the contract and missing")
        parameters = {k: v for k, v in parameters.items() if k in declared}
        self._parameters = parameters
        deployment = deploy(template, parameters, self.client, stack_name=config.STACK_NAME,
                            account_id=config.ACCOUNT_ID, region=self.region)
        self._template = template
        return deployment

    def _seed_webhooks_secret(self) -> None:
        name = self.outputs.get("WebhooksSecretName")
        if not name:
            log.warning("the template has no WebhooksSecretName output; webhook URLs not seeded")
            return
        urls = {channel: f"{self.sink_url}{path}" for channel, path in config.WEBHOOK_PATHS.items()}
        self.client("secretsmanager").put_secret_value(SecretId=name, SecretString=json.dumps(urls))

    def _write_airflow_variable(self) -> dict[str, Any]:
        """The Airflow Variable ``covid19_lake``: the secret the template wrote (as on AWS, where MWAA reads
        it through its Secrets Manager backend), plus what only this stack knows (``local_values``),
        validated with the DAGs' own loader and written back, so the secret and Airflow agree."""
        name = self.outputs.get(VARIABLE_SECRET_OUTPUT)
        if not name:
            raise TemplateError(f"{self.template_path}: the output {VARIABLE_SECRET_OUTPUT} (the secret of the "
                                "Airflow Variable covid19_lake) is part of the contract and missing")
        secrets = self.client("secretsmanager")
        written = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
        variable = merge_variable(written, self.local_values())
        _config_module().Config.from_mapping(variable)  # the DAGs would refuse it: fail the start instead
        secrets.put_secret_value(SecretId=name, SecretString=json.dumps(variable, sort_keys=True))
        return variable

    def local_values(self) -> dict[str, dict[str, Any]]:
        """What the template cannot know: the JHU mirror, the X API stand-in, the cluster's name, the
        dashboard folder next to the lake."""
        from local.airflow_local import jhu_source_url

        values: dict[str, dict[str, Any]] = {
            "emr": {"cluster_name": self.emr_cluster_name},
            "analytics": {"local_site": str(self.lake_dir.parent / "site")},
        }
        if self.x_api.get("base_url"):
            values["tweets"] = {"x_api_base_url": self.x_api["base_url"], "x_conn_id": X_API_CONN_ID,
                                "checkpoint_variable": TWEETS_CHECKPOINT_VARIABLE,
                                "max_rate_limit_wait_seconds": 30}
        source = jhu_source_url()
        if source:
            values["jhu"] = {"source_url": source}
        return values

    def _ensure_cluster(self) -> str:
        emr = self.client("emr")
        existing = [c for c in emr.list_clusters(ClusterStates=["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"])
                    ["Clusters"] if c["Name"] == self.emr_cluster_name]
        if existing:
            return existing[0]["Id"]
        return emr.run_job_flow(
            Name=self.emr_cluster_name,
            ReleaseLabel=config.EMR_RELEASE_LABEL,
            Applications=[{"Name": "Spark"}],
            Instances={
                "InstanceGroups": [{"Name": "Primary", "Market": "ON_DEMAND", "InstanceRole": "MASTER",
                                    "InstanceType": "m6g.xlarge", "InstanceCount": 1}],
                "KeepJobFlowAliveWhenNoSteps": True,
                "TerminationProtected": False,
            },
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
            VisibleToAllUsers=True,
            # No LogUri: the provider's EMR links parse it as s3:// (step logs are under {state_dir}/emr).
        )["JobFlowId"]

    def _stream_handlers_to_wire(self) -> dict[str, tuple[StreamHandlerSpec, dict[str, str]]]:
        """The template's DynamoDB stream Lambdas (unless turned off), then the explicit handlers, which
        add a table or replace the template's handler of one (named by logical ID or table name)."""
        assert self.deployment is not None and self.deployment.resolver is not None
        resources = self._template["Resources"]
        created = self.deployment.created_by
        aws_only = deployed_on_aws(self._template, self._parameters)
        mappings, others = stream_mappings(self._template)
        self.not_emulated = {lid: why_not_emulated(resources[lid]["Type"]) for lid, how in created.items()
                             if how == "not-emulated" or (how == "condition-false" and lid in aws_only)}
        self.not_emulated.update({lid: why for lid, why in others.items() if lid in self.not_emulated})
        names = {str(self.deployment.refs[lid]): lid for lid, r in resources.items()
                 if r["Type"] == "AWS::DynamoDB::Table" and lid in self.deployment.refs}
        explicit = {names.get(key, key): spec for key, spec in self.stream_handlers.items()}
        wire: dict[str, tuple[StreamHandlerSpec, dict[str, str]]] = {}
        for mapping in mappings:
            origin = {"from": "template", "event_source_mapping": mapping.mapping_id, "function": mapping.function_id}
            if mapping.table_id not in self.deployment.refs:
                why = f"its stream's table {mapping.table_id} is not deployed locally"
            elif mapping.table_id in wire:
                why = (f"the local stack runs one handler per stream, and {mapping.table_id}'s already runs "
                       f"{_handler_name(wire[mapping.table_id][0])}")
            elif mapping.table_id in explicit:
                spec = explicit.pop(mapping.table_id)
                replaced = {"from": "--stream-handler", "event_source_mapping": mapping.mapping_id}
                wire[mapping.table_id] = (spec, replaced)
                self.not_emulated.pop(mapping.mapping_id, None)  # its settings apply to the replacement
                self.not_emulated[mapping.function_id] = (
                    f"replaced by --stream-handler {mapping.table_id}={_handler_name(spec)}")
                continue
            elif not self.template_stream_handlers:
                why = "the template's stream handlers are turned off (--no-stream-handlers)"
            else:
                handler = handler_path(self._template, mapping.function_id, self.deployment.resolver)
                wire[mapping.table_id] = ({"handler": handler}, origin)
                self.not_emulated.pop(mapping.mapping_id, None)
                self.not_emulated.pop(mapping.function_id, None)
                continue
            self.not_emulated[mapping.mapping_id] = self.not_emulated[mapping.function_id] = why
        for table, spec in explicit.items():
            wire[table] = (spec, {"from": "--stream-handler"})
        return wire

    def add_stream_handler(self, table: str, spec: StreamHandlerSpec) -> StreamBridge:
        """Start an event source mapping from ``table`` (logical ID or name) to a handler."""
        source = self._event_source_config(table, spec)
        for name, value in source.environment.items():
            # A Lambda gets its environment before its module is imported (Powertools reads it then).
            self._saved_env.setdefault(name, os.environ.get(name))
            if os.environ.get(name, value) != value and name not in self.aws_env():
                log.warning("handler env %s differs between functions; the last one wins", name)
            os.environ[name] = value
        on_failure = self.state_dir / "lambda" / f"{source.function_name}-on-failure.jsonl"
        bridge = StreamBridge(source, self.client, on_failure, region=self.region, account_id=config.ACCOUNT_ID)
        bridge.start()
        self.bridges[table] = bridge
        self.wiring[table] = {
            "table_name": source.table_name, "handler": _handler_name(source.handler),
            "function_name": source.function_name, "from": "add_stream_handler",
            **{name: getattr(source, name) for name in ("batch_size", "report_batch_item_failures",
                                                        "maximum_retry_attempts", "starting_position",
                                                        "on_failure_destination")},
        }
        return bridge

    def _event_source_config(self, table: str, spec: StreamHandlerSpec) -> EventSourceConfig:
        assert self.deployment is not None and self.deployment.resolver is not None
        options = {"handler": spec} if isinstance(spec, str) else dict(spec)
        if "handler" not in options:
            raise ValueError(f"stream_handlers[{table!r}]: expected a dotted path or a dict with 'handler'")
        resources = self._template["Resources"]
        is_logical = table in resources and resources[table]["Type"] == "AWS::DynamoDB::Table"
        table_name = str(self.deployment.refs[table]) if is_logical else table
        from_template = mapping_from_template(self._template, table, self.deployment.resolver) if is_logical else {}
        environment = {
            **self.aws_env(),
            "WEBHOOKS_SECRET_NAME": self.outputs.get("WebhooksSecretName", ""),
            "IDEMPOTENCY_TABLE_NAME": self.outputs.get("IdempotencyTableName", ""),
            "AIRFLOW_BASE_URL": self.airflow_base_url,
            **from_template.pop("environment", {}),
            **options.pop("environment", {}),
        }
        function_name = options.pop("function_name", None) or from_template.pop("function_name", None) or (
            f"{config.PROJECT_NAME}-{table_name}-handler")
        from_template.pop("function_name", None)
        memory = int(options.get("memory_mb", from_template.get("memory_mb", 128)))
        environment.update({
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        })
        return EventSourceConfig(table_name=table_name, function_name=function_name,
                                 environment={k: v for k, v in environment.items() if v is not None},
                                 **{**from_template, **options})

    # -- records -------------------------------------------------------------------------------------------
    def step_pids(self) -> list[int]:
        return self._runner.pids() if self._runner else []

    def record(self, status: str) -> dict[str, Any]:
        return {
            "status": status,
            "pid": os.getpid(),
            "updated_at": datetime.now(UTC).isoformat(),
            "endpoint_url": self.endpoint_url,
            "sink_url": self.sink_url,
            "sink_log": str(self.sink_log),
            "state_dir": str(self.state_dir),
            "lake_dir": str(self.lake_dir),
            "spark_jobs_dir": str(self.spark_jobs_dir),
            "template": str(self.template_path),
            "region": self.region,
            "outputs": self.outputs,
            "resources": self.resources(),
            "not_emulated": self.not_emulated,
            "notes": self.deployment.notes if self.deployment else [],
            "stream_handlers": self.wiring,
            "template_stream_handlers": self.template_stream_handlers,
            "emr_step_pids": self.step_pids(),
            "x_api": {"base_url": self.x_api.get("base_url"), "corpus_seed": X_API_SEED} if self.x_api else {},
            "airflow_variable": self.airflow_variable,
            "env": self.env() if self.endpoint_url else {},
        }

    def resources(self) -> dict[str, str]:
        """Logical ID -> how the stack made it: cloudformation, api, stream-bridge (a template Lambda and its
        mapping, run by the stream bridge), not-emulated (AWS deploys it, the stack does not; see
        ``not_emulated`` for why) or condition-false (not deployed on AWS either, with these parameters)."""
        if not self.deployment:
            return {}
        wired = {info.get(key) for info in self.wiring.values() for key in ("event_source_mapping", "function")}
        return {lid: "stream-bridge" if lid in wired else "not-emulated" if lid in self.not_emulated else how
                for lid, how in self.deployment.created_by.items()}

    def _write_record(self, status: str) -> None:
        with self._record_lock:
            config.write_stack_file(self.state_dir, self.record(status))


class RunningStack(_StackClient):
    """A stack started by ``python -m local.stack up`` (another process), seen through its stack.json."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir).resolve()
        record = config.read_stack_file(self.state_dir)
        if not record or record.get("status") != "running":
            raise RuntimeError(f"no running local stack in {self.state_dir} (run: python -m local.stack up)")
        self.record = record
        self.endpoint_url = record["endpoint_url"]
        self.sink_url = record["sink_url"]
        self.sink_log = Path(record["sink_log"])
        self.lake_dir = Path(record["lake_dir"])
        self.outputs: dict[str, str] = record["outputs"]
        self.pid: int = record["pid"]
        self.airflow_variable: dict[str, Any] = record.get("airflow_variable") or {}
        conn = json.loads(record.get("env", {}).get(f"AIRFLOW_CONN_{X_API_CONN_ID.upper()}") or "{}")
        self.x_api = {"base_url": conn["host"], "token": conn["password"]} if conn else {}

    def refresh(self) -> dict[str, Any]:
        self.record = config.read_stack_file(self.state_dir) or {}
        return self.record


# -- daemon ------------------------------------------------------------------------------------------------
def _handler_name(spec: Any) -> str:
    handler = spec.get("handler") if isinstance(spec, dict) else spec
    return handler if isinstance(handler, str) else getattr(handler, "__qualname__", repr(handler))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_our_daemon(pid: int) -> bool:
    """Guards against pid reuse: only a process running this module's ``serve`` is ours."""
    if not pid_alive(pid):
        return False
    cmdline = _cmdline(pid)
    return "local.stack" in cmdline and " serve" in cmdline if cmdline else True


def daemon_pid(state_dir: Path) -> int | None:
    path = Path(state_dir) / config.PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_our_daemon(pid) else None


def _serve_args(args: argparse.Namespace) -> list[str]:
    command = ["--state-dir", str(args.state_dir), "--spark-master", args.spark_master,
               "--emr-cluster-name", args.emr_cluster_name, "--airflow-base-url", args.airflow_base_url]
    if args.lake_dir:
        command += ["--lake-dir", str(args.lake_dir)]
    if args.spark_jobs_dir:
        command += ["--spark-jobs-dir", str(args.spark_jobs_dir)]
    if args.template:
        command += ["--template", str(args.template)]
    for handler in args.stream_handler:
        command += ["--stream-handler", handler]
    if args.no_stream_handlers:
        command.append("--no-stream-handlers")
    return command


def start_daemon(args: argparse.Namespace, timeout: float = 180.0) -> dict[str, Any]:
    """Start ``serve`` in the background and wait until its stack.json says running."""
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = daemon_pid(state_dir)
    if pid:
        record = config.read_stack_file(state_dir)
        if record and record.get("status") == "running" and record.get("pid") == pid:
            return record
    with open(state_dir / config.LOG_FILE, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.stack", "serve", *_serve_args(args)],
            cwd=config.REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = config.read_stack_file(state_dir)
        if record and record.get("status") == "running" and record.get("pid") == process.pid:
            return record
        if process.poll() is not None:
            tail = (state_dir / config.LOG_FILE).read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"the local stack exited with code {process.returncode} while starting:\n"
                               + "\n".join(tail))
        time.sleep(0.1)
    process.terminate()
    raise TimeoutError(f"the local stack did not become ready in {timeout:.0f} s; see {state_dir / config.LOG_FILE}")


def stop_daemon(state_dir: Path, timeout: float = 60.0) -> bool:
    """Stop the daemon of ``state_dir`` (and the spark-submit steps it runs); False if none was running."""
    state_dir = Path(state_dir).resolve()
    pid = daemon_pid(state_dir)
    if pid is None:
        (state_dir / config.PID_FILE).unlink(missing_ok=True)
        return False
    record = config.read_stack_file(state_dir) or {}
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        log.error("the local stack (pid %s) ignored SIGTERM; killing it and its steps", pid)
        os.kill(pid, signal.SIGKILL)
        for step_pid in record.get("emr_step_pids", []):
            if "spark" in _cmdline(step_pid):
                with suppress(ProcessLookupError):
                    os.killpg(step_pid, signal.SIGKILL)
    (state_dir / config.PID_FILE).unlink(missing_ok=True)
    return True


def parse_stream_handlers(items: list[str]) -> dict[str, StreamHandlerSpec]:
    """``TABLE=module.function`` or ``TABLE={"handler": ..., "batch_size": ...}`` (JSON) per item."""
    handlers: dict[str, StreamHandlerSpec] = {}
    for item in items:
        table, sep, value = item.partition("=")
        if not sep or not table or not value:
            raise ValueError(f"--stream-handler {item!r}: expected TABLE=module.function or TABLE={{json}}")
        handlers[table] = json.loads(value) if value.lstrip().startswith("{") else value
    return handlers


def _serve(args: argparse.Namespace) -> int:
    """Foreground: run the stack until SIGTERM/SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    state_dir = Path(args.state_dir).resolve()
    handlers = parse_stream_handlers(args.stream_handler)
    stack = LocalStack(
        state_dir=state_dir,
        lake_dir=Path(args.lake_dir) if args.lake_dir else state_dir / "lake",
        spark_jobs_dir=Path(args.spark_jobs_dir) if args.spark_jobs_dir else config.REPO_ROOT / "spark_jobs",
        stream_handlers=handlers,
        template_stream_handlers=not args.no_stream_handlers,
        emr_cluster_name=args.emr_cluster_name,
        spark_master=args.spark_master,
        airflow_base_url=args.airflow_base_url,
        template_path=Path(args.template) if args.template else None,
    )
    (state_dir / config.PID_FILE).write_text(f"{os.getpid()}\n")
    try:
        stack.start()
        stop.wait()
    finally:
        stack.stop()
        (state_dir / config.PID_FILE).unlink(missing_ok=True)
    return 0


def _print_env(env: dict[str, str]) -> None:
    for name, value in sorted(env.items()):
        print(f"export {name}={shlex.quote(value)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "serve", "env"])
    parser.add_argument("--state-dir", type=Path, default=config.DEFAULT_STATE_DIR)
    parser.add_argument("--lake-dir", type=Path, default=None, help="default: {state_dir}/lake")
    parser.add_argument("--spark-jobs-dir", type=Path, default=None, help="default: the repository's spark_jobs/")
    parser.add_argument("--template", type=Path, default=None, help="default: infra/covid19-lake.yaml")
    parser.add_argument("--stream-handler", action="append", default=[], metavar="TABLE=module.function",
                        help="deliver TABLE's stream (logical ID or name) to a handler, in addition to or instead "
                             "of the template's; repeatable")
    parser.add_argument("--no-stream-handlers", action="store_true",
                        help="do not wire the Lambdas the template attaches to DynamoDB streams (by default "
                             "every one runs on its stream, e.g. the notifier on JobTable)")
    parser.add_argument("--emr-cluster-name", default="covid19-lake")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--airflow-base-url", default="http://127.0.0.1:8080")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if args.command == "serve":
        return _serve(args)
    if args.command == "up":
        record = start_daemon(args)
        print(f"local stack running (pid {record['pid']}): AWS {record['endpoint_url']}, "
              f"webhook sink {record['sink_url']}, state in {args.state_dir}", file=sys.stderr)
        wired = record.get("stream_handlers") or {}
        print("stream handlers: " + (", ".join(f"{table} -> {info['handler']}" for table, info in wired.items())
                                     or "none"), file=sys.stderr)
        _print_env(record["env"])
        return 0
    if args.command == "down":
        stopped = stop_daemon(args.state_dir)
        print("local stack stopped" if stopped else "no local stack was running", file=sys.stderr)
        return 0
    pid = daemon_pid(args.state_dir)
    record = config.read_stack_file(args.state_dir)
    if args.command == "env":
        if not pid or not record:
            print("no local stack is running", file=sys.stderr)
            return 3
        _print_env(record["env"])
        return 0
    if not pid or not record or record.get("status") != "running":
        print(f"local stack: not running (state dir {args.state_dir})")
        return 3
    print(json.dumps({k: record.get(k) for k in ("pid", "endpoint_url", "sink_url", "lake_dir", "outputs",
                                                 "stream_handlers", "emr_step_pids", "updated_at")}, indent=2))
    return 0


@contextmanager
def running_daemon(state_dir: Path, *extra: str) -> Iterator[RunningStack]:
    """``up`` for the duration of a ``with`` block (tests, scripts), then ``down``."""
    args = _parser().parse_args(["up", "--state-dir", str(state_dir), *extra])
    start_daemon(args)
    try:
        yield RunningStack(state_dir)
    finally:
        stop_daemon(state_dir)


if __name__ == "__main__":
    sys.exit(main())
