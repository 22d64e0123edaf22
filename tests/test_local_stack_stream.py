"""DynamoDB stream -> Lambda handler bridge of the local stack (handler: fixtures_local_stack.recording_handler)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.fixtures_local_stack import RECORDING_TABLE, read_invocations

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def table(local_stack):
    dynamodb = local_stack.client("dynamodb")
    if RECORDING_TABLE not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName=RECORDING_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    return RECORDING_TABLE


def put(stack, key: str, behaviour: str = "", **extra: str) -> None:
    item = {"pk": {"S": key}, "behaviour": {"S": behaviour}, **{k: {"S": v} for k, v in extra.items()}}
    stack.client("dynamodb").put_item(TableName=RECORDING_TABLE, Item=item)


def key_of(record: dict) -> str:
    return record["dynamodb"]["Keys"]["pk"]["S"]


def invocations_with(records_file: Path, prefix: str) -> list[dict]:
    """Invocations holding records of this test's keys, with only those records kept."""
    found = []
    for invocation in read_invocations(records_file):
        mine = [r for r in invocation["event"]["Records"] if key_of(r).startswith(prefix)]
        if mine:
            found.append({**invocation, "records": mine})
    return found


def delivered(invocations: list[dict]) -> list[tuple[str, str]]:
    """(key, eventName) of records the handler accepted, in delivery order."""
    accepted = []
    for invocation in invocations:
        if invocation["outcome"] == "ok":
            accepted += [(key_of(r), r["eventName"]) for r in invocation["records"]]
    return accepted


def test_insert_modify_remove_are_delivered_once_in_order_with_aws_event_shape(
    local_stack, table, local_stack_records
):
    prefix = f"order-{uuid.uuid4().hex[:8]}-"
    put(local_stack, prefix + "a", status="RUNNING")
    put(local_stack, prefix + "a", status="SUCCEEDED")
    put(local_stack, prefix + "b")
    local_stack.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": prefix + "a"}})
    expected = [(prefix + "a", "INSERT"), (prefix + "a", "MODIFY"), (prefix + "b", "INSERT"),
                (prefix + "a", "REMOVE")]
    local_stack.wait_for(lambda: len(delivered(invocations_with(local_stack_records, prefix))) >= 4,
                         timeout=30, message="four stream records")
    invocations = invocations_with(local_stack_records, prefix)
    assert delivered(invocations) == expected

    records = [r for invocation in invocations for r in invocation["records"]]
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence_numbers == sorted(sequence_numbers)
    stream_arn = local_stack.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    insert, modify, _, remove = records
    assert set(insert) == {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
                           "eventSourceARN"}
    assert insert["eventSource"] == "aws:dynamodb" and insert["eventSourceARN"] == stream_arn
    assert insert["awsRegion"] == "us-east-1"
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert isinstance(insert["dynamodb"]["ApproximateCreationDateTime"], int)
    assert isinstance(insert["dynamodb"]["SizeBytes"], int)
    assert "OldImage" not in insert["dynamodb"] and insert["dynamodb"]["NewImage"]["status"] == {"S": "RUNNING"}
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "RUNNING"}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": "SUCCEEDED"}
    assert remove["eventName"] == "REMOVE" and "NewImage" not in remove["dynamodb"]
    assert remove["dynamodb"]["OldImage"]["status"] == {"S": "SUCCEEDED"}

    first = invocations[0]
    assert first["function_name"] == "local-stack-test-recorder"
    assert 0 < first["remaining_ms"] <= 60_000
    assert first["env"]["AWS_ENDPOINT_URL"] == local_stack.endpoint_url
    assert first["env"]["WEBHOOKS_SECRET_NAME"] == local_stack.outputs["WebhooksSecretName"]
    assert first["env"]["IDEMPOTENCY_TABLE_NAME"] == local_stack.outputs["IdempotencyTableName"]


def test_reported_item_failure_is_retried_from_the_lowest_failed_record(local_stack, table, local_stack_records):
    prefix = f"partial-{uuid.uuid4().hex[:8]}-"
    batch = [{"PutRequest": {"Item": {"pk": {"S": prefix + name}, "behaviour": {"S": behaviour}}}}
             for name, behaviour in (("1", ""), ("2", "fail_item_once"), ("3", ""))]
    local_stack.client("dynamodb").batch_write_item(RequestItems={table: batch})
    local_stack.wait_for(lambda: {k for k, _ in delivered(invocations_with(local_stack_records, prefix))}
                         >= {prefix + "2", prefix + "3"}, timeout=30, message="the retried records")
    invocations = invocations_with(local_stack_records, prefix)
    partial = [i for i in invocations if i["outcome"] == "partial"]
    assert len(partial) == 1
    failed_seq = next(r["dynamodb"]["SequenceNumber"] for r in partial[0]["records"] if key_of(r) == prefix + "2")
    retry = invocations[invocations.index(partial[0]) + 1]
    assert retry["records"][0]["dynamodb"]["SequenceNumber"] == failed_seq  # AWS: retry from the failed record
    assert retry["outcome"] == "ok"
    seen_1 = [i for i in invocations if any(key_of(r) == prefix + "1" for r in i["records"])]
    assert len(seen_1) == 1  # records before the failure are checkpointed, not re-sent


def test_handler_exception_retries_the_batch_then_keeps_the_records(local_stack, table, local_stack_records):
    prefix = f"raise-{uuid.uuid4().hex[:8]}-"
    put(local_stack, prefix + "once", "raise_once")
    local_stack.wait_for(lambda: (prefix + "once", "INSERT") in delivered(invocations_with(local_stack_records,
                                                                                             prefix)),
                         timeout=30, message="the record after a failed invocation")
    outcomes = [i["outcome"] for i in invocations_with(local_stack_records, prefix)]
    assert outcomes == ["raised", "ok"]

    put(local_stack, prefix + "poison", "raise_always")
    on_failure = Path(local_stack.record["state_dir"]) / "lambda" / "local-stack-test-recorder-on-failure.jsonl"
    local_stack.wait_for(lambda: on_failure.exists() and prefix + "poison" in on_failure.read_text(),
                         timeout=30, message="the poison record in the on-failure destination")
    put(local_stack, prefix + "next")
    local_stack.wait_for(lambda: (prefix + "next", "INSERT") in delivered(invocations_with(local_stack_records,
                                                                                             prefix)),
                         timeout=30, message="the stream to move on past the poison record")
    poison = [i for i in invocations_with(local_stack_records, prefix)
              if any(key_of(r) == prefix + "poison" for r in i["records"])]
    assert len(poison) == 3  # the first attempt and maximum_retry_attempts=2 retries
    parked = [json.loads(line) for line in on_failure.read_text().splitlines()]
    mine = [p for p in parked if any(key_of(r) == prefix + "poison" for r in p["records"])]
    assert len(mine) == 1
    assert mine[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert mine[0]["DDBStreamBatchInfo"]["startSequenceNumber"] == mine[0]["records"][0]["dynamodb"]["SequenceNumber"]
    assert "handler raised" in mine[0]["error"]
