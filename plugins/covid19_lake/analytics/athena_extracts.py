"""The dashboard extracts on AWS: extract queries run by Athena, JSON written to the site bucket.

Uses the amazon provider's AthenaHook (query, poll, paginated results) and S3Hook (objects), so the
same code runs against AWS and against the local stack's moto endpoint (connection `aws_default`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from covid19_lake.analytics import extracts

INTEGER_TYPES = {"tinyint", "smallint", "integer", "int", "bigint"}
FLOAT_TYPES = {"double", "float", "real", "decimal"}


def convert(value: str | None, athena_type: str) -> Any:
    """An Athena result cell (always text) as the Python value of its column type."""
    if value is None:
        return None
    kind = athena_type.lower().split("(")[0]
    if kind in INTEGER_TYPES:
        return int(value)
    if kind in FLOAT_TYPES:
        return float(value)
    if kind == "boolean":
        if value not in ("true", "false"):
            raise ValueError(f"expected an Athena boolean 'true' or 'false', got {value!r}")
        return value == "true"
    return value  # date, timestamp and varchar stay ISO text, as the extracts write them


def rows_from_pages(pages: Iterable[dict[str, Any]], query_execution_id: str) -> list[dict[str, Any]]:
    """Rows of GetQueryResults pages; a SELECT's first row is its header, which is checked and skipped."""
    names: list[str] = []
    types: list[str] = []
    rows: list[dict[str, Any]] = []
    header_pending = True
    for page in pages:
        result = page["ResultSet"]
        if not names:
            columns = result["ResultSetMetadata"]["ColumnInfo"]
            names = [c["Name"] for c in columns]
            types = [c["Type"] for c in columns]
        for raw in result["Rows"]:
            cells = [cell.get("VarCharValue") for cell in raw["Data"]]
            if header_pending:
                header_pending = False
                if cells != names:
                    raise ValueError(f"Athena query {query_execution_id}: expected the header row {names}, "
                                     f"got {cells}")
                continue
            if len(cells) != len(names):
                raise ValueError(f"Athena query {query_execution_id}: row of {len(cells)} cells, expected "
                                 f"{len(names)} ({names})")
            rows.append({n: convert(v, t) for n, v, t in zip(names, cells, types, strict=True)})
    return rows


def athena_fetch(hook: Any, database: str, workgroup: str, output_location: str,
                 sleep_time: int = 2) -> extracts.Fetch:
    """A Fetch that runs each extract query on Athena and reads all its result pages."""

    def fetch(sql: str) -> list[dict[str, Any]]:
        result_configuration = {"OutputLocation": output_location} if output_location else {}
        query_id = hook.run_query(sql, query_context={"Database": database},
                                  result_configuration=result_configuration, workgroup=workgroup)
        state = hook.poll_query_status(query_id, sleep_time=sleep_time)
        if state != "SUCCEEDED":
            reason = hook.get_state_change_reason(query_id)
            raise RuntimeError(f"Athena extract query {query_id} ended {state}: {reason}\n{sql}")
        return rows_from_pages(hook.get_query_results_paginator(query_id), query_id)

    return fetch


def site_key(prefix: str, relative: str) -> str:
    return f"{prefix}/{relative}" if prefix else relative


def upload(s3_hook: Any, bucket: str, prefix: str, files: dict[str, Any]) -> list[str]:
    """Put every extract (JSON, short cache) and delete stale extracts; returns the deleted keys."""
    keys = set()
    for relative, document in files.items():
        key = site_key(prefix, relative)
        keys.add(key)
        s3_hook.get_conn().put_object(
            Bucket=bucket, Key=key, Body=extracts.encode(document),
            ContentType="application/json", CacheControl="max-age=300",
        )
    data_prefix = site_key(prefix, f"{extracts.DATA_DIR}/")
    stale = [key for key in s3_hook.list_keys(bucket_name=bucket, prefix=data_prefix) if key not in keys]
    if stale:
        s3_hook.delete_objects(bucket=bucket, keys=stale)
    return stale


def summary(files: dict[str, Any]) -> str:
    return json.dumps(files[f"{extracts.DATA_DIR}/meta.json"], sort_keys=True)
