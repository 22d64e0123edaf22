"""DynamoDB stream -> Lambda, emulated: an event source mapping that polls a table's stream through
the dynamodbstreams API (as AWS Lambda's poller does) and invokes a Python handler in this process.

Semantics kept from AWS: batches in stream order, one invocation at a time per shard, AWS's event
shape, ReportBatchItemFailures (retry from the lowest reported sequence number), a handler exception
retries the whole batch, bounded retries with backoff, then the batch goes to an on-failure
destination (a JSON-lines file here, like an SQS DLQ): records are never dropped silently.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class EventSourceConfig:
    """One event source mapping (values from the template's AWS::Lambda::EventSourceMapping when it has one)."""

    table_name: str
    handler: str | Handler
    function_name: str
    batch_size: int = 100
    report_batch_item_failures: bool = False
    maximum_retry_attempts: int = 3  # AWS's default is -1 (until the record expires); bounded locally
    starting_position: str = "TRIM_HORIZON"
    timeout_seconds: float = 60.0
    memory_mb: int = 128
    environment: dict[str, str] = field(default_factory=dict)
    on_failure_destination: str | None = None
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 5.0
    poll_seconds: float = 0.25


@dataclass
class BridgeStats:
    invocations: int = 0
    delivered: int = 0
    retries: int = 0
    sent_to_on_failure: int = 0


class LambdaContext:
    """The attributes and method of AWS Lambda's Python context object."""

    def __init__(self, config: EventSourceConfig, region: str, account_id: str) -> None:
        self.function_name = config.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{config.function_name}"
        self.memory_limit_in_mb = config.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{config.function_name}"
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + config.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def import_handler(dotted: str | Handler) -> Handler:
    """"package.module.function" -> the function, with an error naming what is missing."""
    if callable(dotted):
        return dotted
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name:
        raise ValueError(f"stream handler {dotted!r}: expected a dotted path like 'lambdas.notifier.app.handler'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"stream handler {dotted!r}: cannot import module {module_name!r}: {exc}") from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise ValueError(f"stream handler {dotted!r}: module {module_name!r} has no callable {attribute!r}")
    return handler


def _lambda_attribute_value(value: Any) -> Any:
    """boto3 decodes B/BS to bytes; the Lambda event carries them base64-encoded, like the wire format."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _lambda_attribute_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lambda_attribute_value(v) for v in value]
    return value


def to_lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as AWS Lambda passes it to a function."""
    ddb = dict(record["dynamodb"])
    created = ddb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        ddb["ApproximateCreationDateTime"] = int(created.timestamp())
    dynamodb = {k: _lambda_attribute_value(v) for k, v in ddb.items()}
    lambda_record = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion"),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:
        lambda_record["userIdentity"] = record["userIdentity"]
    return lambda_record


def first_failed_index(result: Any, records: list[dict[str, Any]]) -> tuple[int | None, str | None]:
    """Index of the record to retry from, per ReportBatchItemFailures, and why (None: all succeeded)."""
    if result is None:
        return None, None
    if not isinstance(result, dict):
        return 0, f"invalid response {type(result).__name__}: treated as a failure of the whole batch"
    failures = result.get("batchItemFailures")
    if not failures:
        return None, None
    positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(records)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in positions:
            return 0, f"itemIdentifier {identifier!r} is not in the batch: the whole batch failed"
        indexes.append(positions[identifier])
    return min(indexes), f"{len(failures)} item(s) reported as failed"


class StreamBridge:
    """Polls one table's stream and delivers batches to one handler."""

    def __init__(
        self,
        config: EventSourceConfig,
        clients: Callable[[str], Any],
        on_failure_file: Path,
        *,
        region: str,
        account_id: str,
    ) -> None:
        self.config = config
        self.clients = clients
        self.on_failure_file = Path(on_failure_file)
        self.region = region
        self.account_id = account_id
        self.stats = BridgeStats()
        self.stream_arn: str | None = None
        self.handler = import_handler(config.handler)
        self._iterators: dict[str, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-{config.table_name}", daemon=True)

    def start(self) -> None:
        # Open the shard iterators now when the table exists, so StartingPosition=LATEST means "after
        # the stack started", not "after the polling thread got scheduled".
        self._iterators = self._open_iterators() if self._find_stream_arn() else None
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll_stream()
            except Exception:  # keep polling through a moto hiccup; the checkpoint is not advanced
                log.exception("stream bridge for %s failed; restarting in 1 s", self.config.table_name)
                self._stop.wait(1.0)

    def _find_stream_arn(self) -> str | None:
        if self.stream_arn is None:
            dynamodb = self.clients("dynamodb")
            try:
                table = dynamodb.describe_table(TableName=self.config.table_name)["Table"]
            except dynamodb.exceptions.ResourceNotFoundException:
                return None
            self.stream_arn = table.get("LatestStreamArn")
        return self.stream_arn

    def _open_iterators(self) -> dict[str, str]:
        streams = self.clients("dynamodbstreams")
        shards = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        return {
            shard["ShardId"]: streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType=self.config.starting_position,
            )["ShardIterator"]
            for shard in shards
        }

    def _poll_stream(self) -> None:
        while not self._stop.is_set() and self._find_stream_arn() is None:
            self._stop.wait(self.config.poll_seconds)  # the table may be created after the stack starts
        if self._stop.is_set():
            return
        iterators, self._iterators = self._iterators or self._open_iterators(), None
        streams = self.clients("dynamodbstreams")
        while not self._stop.is_set():
            idle = True
            for shard_id, iterator in list(iterators.items()):
                response = streams.get_records(ShardIterator=iterator, Limit=self.config.batch_size)
                iterators[shard_id] = response["NextShardIterator"]
                if response["Records"]:
                    idle = False
                    self._deliver(shard_id, response["Records"])
            if idle:
                self._stop.wait(self.config.poll_seconds)

    def _deliver(self, shard_id: str, raw_records: list[dict[str, Any]]) -> None:
        pending = [to_lambda_record(r, self.stream_arn or "") for r in raw_records]
        attempt = 0
        while pending:
            self.stats.invocations += 1
            context = LambdaContext(self.config, self.region, self.account_id)
            error: str | None = None
            try:
                result = self.handler({"Records": pending}, context)
                index, error = (first_failed_index(result, pending) if self.config.report_batch_item_failures
                                else (None, None))
            except Exception as exc:
                log.exception("handler %s raised on a batch of %d record(s)", self.config.handler, len(pending))
                index, error = 0, f"{type(exc).__name__}: {exc}"
            if index is None:
                self.stats.delivered += len(pending)
                return
            self.stats.delivered += index
            pending = pending[index:]
            attempt += 1
            if attempt > self.config.maximum_retry_attempts:
                self._send_to_on_failure(shard_id, pending, attempt, error or "failed")
                return
            self.stats.retries += 1
            delay = min(self.config.backoff_base_seconds * 2 ** (attempt - 1), self.config.backoff_max_seconds)
            log.warning("retrying %d record(s) from sequence number %s in %.1f s (%s)",
                        len(pending), pending[0]["dynamodb"]["SequenceNumber"], delay, error)
            if self._stop.wait(delay):
                # Stopping: nothing was checkpointed, so the batch is not lost, only not delivered yet.
                return

    def _send_to_on_failure(self, shard_id: str, records: list[dict[str, Any]], attempts: int, error: str) -> None:
        """AWS's on-failure record for stream sources, plus the records themselves (AWS sends only the
        sequence-number range; locally the stream does not outlive the stack, so keep the data)."""
        created = [r["dynamodb"].get("ApproximateCreationDateTime") for r in records]
        document = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.config.function_name}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": created[0],
                "approximateArrivalOfLastRecord": created[-1],
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
            "destination": self.config.on_failure_destination,
            "error": error,
            "records": records,
        }
        self.on_failure_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.on_failure_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(document, default=str) + "\n")
        self.stats.sent_to_on_failure += len(records)
        destination = self.config.on_failure_destination or ""
        if destination.startswith("arn:aws:sqs:"):
            # The template's real destination also exists locally: send it AWS's (metadata-only) message.
            sqs = self.clients("sqs")
            queue_url = sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[-1])["QueueUrl"]
            aws_message = {k: v for k, v in document.items() if k not in ("records", "destination", "error")}
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(aws_message, default=str))
        log.error("%d record(s) of %s sent to the on-failure destination %s after %d attempts: %s",
                  len(records), self.config.table_name, self.on_failure_file, attempts, error)
