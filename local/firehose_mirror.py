"""Firehose deliveries into the local lake directory.

moto's Firehose writes each PutRecord(Batch) as an object of the lake bucket in moto's S3, with
Firehose's key layout ``{prefix}YYYY/MM/DD/HH/{stream}-{version}-YYYY-MM-DD-HH-MM-SS-{uuid}``. The
local lake is a directory, so this mirror copies new objects under each delivery stream's prefixes
to ``{lake_dir}/{key}`` on a short poll (and once more when the stack stops). Files appear atomically
(written under a dot-name, then renamed), so Spark never reads half a delivery.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirroredPrefix:
    stream: str
    bucket: str
    prefix: str


def delivery_prefixes(firehose: Any, bucket: str) -> list[MirroredPrefix]:
    """The (error) prefixes of every delivery stream that writes to ``bucket``."""
    found = []
    for name in firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]:
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        for destination in description["Destinations"]:
            s3 = destination.get("ExtendedS3DestinationDescription") or destination.get("S3DestinationDescription")
            if not s3 or s3["BucketARN"].split(":")[-1] != bucket:
                continue
            for key in ("Prefix", "ErrorOutputPrefix"):
                if s3.get(key):
                    found.append(MirroredPrefix(name, bucket, s3[key]))
            break
    return found


class FirehoseMirror:
    def __init__(
        self, s3_client: Callable[[], Any], prefixes: list[MirroredPrefix], lake_dir: Path,
        poll_seconds: float = 0.5,
    ) -> None:
        self._s3 = s3_client
        self.prefixes = prefixes
        self.lake_dir = Path(lake_dir)
        self.poll_seconds = poll_seconds
        self.copied = 0
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="firehose-mirror", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sync()  # deliveries made just before stopping still land

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.sync()
            except Exception:
                log.exception("firehose mirror sync failed; retrying")

    def sync(self) -> int:
        """Copy objects not mirrored yet; returns how many were copied."""
        copied = 0
        with self._lock:
            s3 = self._s3()
            for mirrored in self.prefixes:
                paginator = s3.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=mirrored.bucket, Prefix=mirrored.prefix):
                    for item in page.get("Contents", []):
                        if (mirrored.bucket, item["Key"]) in self._seen:
                            continue
                        self._copy(s3, mirrored.bucket, item["Key"])
                        self._seen.add((mirrored.bucket, item["Key"]))
                        copied += 1
        self.copied += copied
        return copied

    def _copy(self, s3: Any, bucket: str, key: str) -> None:
        target = (self.lake_dir / key).resolve()
        if self.lake_dir.resolve() not in target.parents:
            raise ValueError(f"object key {key!r} of bucket {bucket} escapes the lake directory")
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        os.replace(partial, target)
