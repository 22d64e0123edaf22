"""Deliver records to Kinesis Data Firehose with put_record_batch, losing none.

A call takes at most 500 records and 4 MiB; Firehose may accept a call yet reject some of its records
(FailedPutCount > 0, an ErrorCode per failed entry of RequestResponses). Only those records are sent
again, with exponential backoff, until every record is accepted or the attempts run out, which raises
so that the caller never advances its checkpoint past undelivered tweets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import uuid4

log = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
# Whole-call errors worth retrying; anything else (a missing stream, bad credentials) is a config error.
RETRYABLE_CALL_ERRORS = {"ServiceUnavailableException", "ThrottlingException", "LimitExceededException"}


class Sink(Protocol):
    def put(self, records: Sequence[bytes]) -> int: ...


class FirehoseDeliveryError(RuntimeError):
    """Some records were still rejected after every retry; nothing past them may be checkpointed."""


def batches(records: Iterable[bytes], max_records: int = MAX_BATCH_RECORDS,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[bytes]]:
    """Split records into put_record_batch calls within both the count and the size limit."""
    batch: list[bytes] = []
    size = 0
    for index, record in enumerate(records):
        if len(record) > MAX_RECORD_BYTES:
            raise ValueError(
                f"record {index} is {len(record)} bytes; Firehose accepts at most {MAX_RECORD_BYTES} per record")
        if batch and (len(batch) >= max_records or size + len(record) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record)
    if batch:
        yield batch


def failed_indexes(response: dict[str, Any]) -> list[int]:
    """Positions of the records a put_record_batch response rejected."""
    if not response.get("FailedPutCount"):
        return []
    return [i for i, entry in enumerate(response.get("RequestResponses", [])) if entry.get("ErrorCode")]


@dataclass
class FirehoseBatchWriter:
    """Writes records to one delivery stream; `client` is a boto3 Firehose client (FirehoseHook.conn)."""

    client: Any
    delivery_stream: str
    max_attempts: int = 8
    base_delay: float = 0.2
    max_delay: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    calls: int = field(default=0, init=False)

    def _backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))

    def _call(self, batch: list[bytes]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        try:
            return self.client.put_record_batch(
                DeliveryStreamName=self.delivery_stream, Records=[{"Data": r} for r in batch])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in RETRYABLE_CALL_ERRORS:
                # A whole-call failure is a partial failure of every record.
                return {"FailedPutCount": len(batch),
                        "RequestResponses": [{"ErrorCode": code, "ErrorMessage": str(exc)}] * len(batch)}
            raise

    def _put_batch(self, batch: list[bytes]) -> None:
        pending = batch
        for attempt in range(1, self.max_attempts + 1):
            response = self._call(pending)
            failed = failed_indexes(response)
            if not failed:
                return
            codes = sorted({response["RequestResponses"][i].get("ErrorCode", "?") for i in failed})
            pending = [pending[i] for i in failed]
            if attempt == self.max_attempts:
                break
            delay = self._backoff(attempt)
            log.warning("Firehose %s rejected %d of the records (%s); retrying them in %.1fs",
                        self.delivery_stream, len(failed), ", ".join(codes), delay)
            self.sleep(delay)
        raise FirehoseDeliveryError(
            f"Firehose {self.delivery_stream} still rejected {len(pending)} records after "
            f"{self.max_attempts} attempts ({', '.join(codes)})")

    def put(self, records: Sequence[bytes]) -> int:
        """Deliver every record or raise FirehoseDeliveryError; returns the number delivered."""
        count = 0
        for batch in batches(records):
            self._put_batch(batch)
            count += len(batch)
        return count


@dataclass
class LocalLakeSink:
    """The local stack's stand-in for Firehose: same objects, same `raw/tweets/YYYY/MM/DD/HH/` layout."""

    lake_dir: Path
    prefix: str = "raw/tweets"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def put(self, records: Sequence[bytes]) -> int:
        if not records:
            return 0
        now = self.clock()
        folder = Path(self.lake_dir) / self.prefix / now.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"local-tweets-1-{now.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid4()}"
        # Write then rename so the Spark job never reads half an object.
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(b"".join(records))
        tmp.rename(folder / name)
        return len(records)
