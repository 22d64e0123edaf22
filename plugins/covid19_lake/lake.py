"""The lake is a URI: ``s3://bucket[/prefix]`` on AWS, a local directory in the local stack.

Everything that reads or writes lake objects from Airflow goes through here, so DAG code is the same
in both places. S3 access uses the amazon provider's S3Hook.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from airflow.providers.amazon.aws.hooks.s3 import S3Hook


def join(base: str, *parts: str) -> str:
    """Join lake path segments with '/' whatever the scheme."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def is_s3(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def local_path(uri: str) -> Path:
    """A local lake URI (``file:///x`` or a plain path) as a Path."""
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    return Path(uri)


class Lake:
    def __init__(self, aws_conn_id: str = "aws_default") -> None:
        self.aws_conn_id = aws_conn_id

    def _s3(self) -> S3Hook:
        return S3Hook(aws_conn_id=self.aws_conn_id)

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            bucket, key = S3Hook.parse_s3_url(uri)
            return self._s3().check_for_key(key, bucket)
        return local_path(uri).is_file()

    def read_bytes(self, uri: str) -> bytes:
        if is_s3(uri):
            bucket, key = S3Hook.parse_s3_url(uri)
            return self._s3().get_key(key, bucket).get()["Body"].read()
        return local_path(uri).read_bytes()

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write whole-object, replacing what is there: rewriting the same bytes is harmless."""
        if is_s3(uri):
            bucket, key = S3Hook.parse_s3_url(uri)
            self._s3().load_bytes(data, key=key, bucket_name=bucket, replace=True)
            return
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader (Spark) never sees a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def has_prefix(self, uri: str) -> bool:
        """True when at least one object lives under ``uri`` (a folder-like prefix)."""
        if is_s3(uri):
            bucket, key = S3Hook.parse_s3_url(uri)
            return bool(self._s3().list_keys(bucket_name=bucket, prefix=key.rstrip("/") + "/", max_items=1))
        path = local_path(uri)
        return path.is_dir() and any(p.is_file() for p in path.rglob("*"))
