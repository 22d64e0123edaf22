"""What tests read back from a local stack: job records, EMR steps, Glue partitions, lake rows, webhook posts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

STATUSES = ("SUBMITTED", "RUNNING", "COMPLETED", "FAILED")


def job_record(stack: Any, day: str, job: str = "jhu_daily_reports") -> dict[str, Any]:
    item = stack.client("dynamodb").get_item(
        TableName=stack.outputs["JobTableName"], Key={"job_date": {"S": day}, "job_name": {"S": job}},
        ConsistentRead=True).get("Item")
    return {k: next(iter(v.values())) for k, v in (item or {}).items()}


def steps(stack: Any) -> list[dict[str, Any]]:
    """The session cluster's steps, newest first."""
    pages = stack.client("emr").get_paginator("list_steps").paginate(ClusterId=stack.outputs["EmrClusterId"])
    return [step for page in pages for step in page["Steps"]]


def glue_partitions(stack: Any, table: str = "jhu_daily_reports") -> set[str]:
    pages = stack.client("glue").get_paginator("get_partitions").paginate(
        DatabaseName=stack.outputs.get("GlueDatabaseName", "covid19"), TableName=table)
    return {p["Values"][0] for page in pages for p in page["Partitions"]}


def processed_rows(stack: Any, day: str, table: str = "jhu_daily_reports") -> int:
    folder = Path(stack.lake_dir) / "processed" / table / f"report_date={day}"
    return sum(pq.read_metadata(f).num_rows for f in folder.glob("*.parquet"))


def notifications(stack: Any, day: str) -> list[tuple[str, str]]:
    """(destination path, status) of every webhook POST about `day`, in arrival order."""
    found = []
    if not stack.sink_log.exists():
        return found
    for line in stack.sink_log.read_text(encoding="utf-8").splitlines():
        post = json.loads(line)
        text = json.dumps(post.get("body"), ensure_ascii=False)
        if f"for {day}" in text:
            status = next(s for s in STATUSES if f"{s}: " in text or f": {s}" in text)
            found.append((post["path"], status))
    return found


def wait_for_notifications(stack: Any, day: str, count: int, timeout: float = 60) -> list[tuple[str, str]]:
    return stack.wait_for(lambda: (n := notifications(stack, day)) and len(n) >= count and n,
                          timeout=timeout, message=f"{count} notifications about {day}")
