"""The local stack's DynamoDB keeps DynamoDB's per-item atomicity under concurrent writes (local/dynamodb_atomic)."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard, Table

from local.dynamodb_atomic import WRITE_METHODS, serialize_dynamodb_writes


@pytest.fixture
def dynamodb():
    serialize_dynamodb_writes()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="jobs", KeySchema=[{"AttributeName": "job_date", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_date", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


def _all_at_once(count: int, work) -> list:
    barrier, results = threading.Barrier(count), [None] * count

    def contend(index: int) -> None:
        barrier.wait()
        results[index] = work(index)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_patching_is_idempotent():
    serialize_dynamodb_writes()
    wrapped = {name: getattr(DynamoDBBackend, name) for name in WRITE_METHODS}
    serialize_dynamodb_writes()
    assert {name: getattr(DynamoDBBackend, name) for name in WRITE_METHODS} == wrapped


def test_a_conditional_put_checks_and_writes_atomically(dynamodb, monkeypatch):
    # Widen moto's window between reading the current item and writing the new one.
    get_item = Table.get_item

    def slow_get_item(self, *args, **kwargs):
        current = get_item(self, *args, **kwargs)
        time.sleep(0.02)
        return current

    monkeypatch.setattr(Table, "get_item", slow_get_item)

    def put(index: int) -> str:
        try:
            dynamodb.put_item(TableName="jobs", Item={"job_date": {"S": "2020-03-01"}, "run": {"N": str(index)}},
                              ConditionExpression="attribute_not_exists(job_date)")
        except ClientError as error:
            return error.response["Error"]["Code"]
        return "written"

    outcomes = _all_at_once(6, put)
    assert sorted(outcomes) == ["ConditionalCheckFailedException"] * 5 + ["written"]


def test_stream_records_are_numbered_without_repeats(dynamodb, monkeypatch):
    # moto numbers a record by the shard's length before appending it; widen that window.
    class SlowLength(list):
        def __len__(self) -> int:
            length = super().__len__()
            time.sleep(0.005)
            return length

    add = StreamShard.add

    def slow_add(self, *args, **kwargs):
        if not isinstance(self.items, SlowLength):
            self.items = SlowLength(self.items)
        return add(self, *args, **kwargs)

    monkeypatch.setattr(StreamShard, "add", slow_add)
    _all_at_once(6, lambda i: [dynamodb.put_item(TableName="jobs", Item={"job_date": {"S": f"2020-03-{i}{n}"}})
                                for n in range(3)])

    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = dynamodb.describe_table(TableName="jobs")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    numbers = [int(record["dynamodb"]["SequenceNumber"]) for record in records]
    assert len(numbers) == 18 and len(set(numbers)) == 18
    assert numbers == list(range(numbers[0], numbers[0] + 18))
