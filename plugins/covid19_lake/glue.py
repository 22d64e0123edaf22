"""Glue Data Catalog partitions, added in batches and idempotently."""

from __future__ import annotations

import copy
from typing import Any

from airflow.providers.amazon.aws.hooks.glue_catalog import GlueCatalogHook

from covid19_lake import lake as lake_paths

BATCH_SIZE = 100  # BatchCreatePartition's limit


def partition_inputs(table: dict[str, Any], location_root: str, values: list[str]) -> list[dict[str, Any]]:
    """PartitionInput for each single-key partition value, using the table's storage descriptor."""
    keys = table.get("PartitionKeys") or []
    if len(keys) != 1:
        raise ValueError(f"Glue table {table.get('Name')} must have one partition key, has {len(keys)}")
    key = keys[0]["Name"]
    inputs = []
    for value in values:
        descriptor = copy.deepcopy(table["StorageDescriptor"])
        descriptor["Location"] = lake_paths.join(location_root, f"{key}={value}") + "/"
        inputs.append({"Values": [value], "StorageDescriptor": descriptor})
    return inputs


def add_partitions(
    database: str, table_name: str, values: list[str], aws_conn_id: str = "aws_default"
) -> dict[str, int]:
    """Create the partitions that don't exist yet; existing ones are left alone (rerun-safe)."""
    hook = GlueCatalogHook(aws_conn_id=aws_conn_id)
    table = hook.get_table(database, table_name)
    root = table["StorageDescriptor"]["Location"]
    created = existing = 0
    inputs = partition_inputs(table, root, sorted(set(values)))
    for start in range(0, len(inputs), BATCH_SIZE):
        batch = inputs[start:start + BATCH_SIZE]
        response = hook.conn.batch_create_partition(
            DatabaseName=database, TableName=table_name, PartitionInputList=batch
        )
        errors = response.get("Errors", [])
        unexpected = [e for e in errors if e["ErrorDetail"]["ErrorCode"] != "AlreadyExistsException"]
        if unexpected:
            raise RuntimeError(f"Glue refused partitions of {database}.{table_name}: {unexpected}")
        existing += len(errors)
        created += len(batch) - len(errors)
    return {"created": created, "existing": existing}
