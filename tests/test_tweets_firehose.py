"""put_record_batch against moto's Firehose -> S3, with partial failures injected into real responses."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from covid19_lake.tweets.firehose import (
    MAX_BATCH_BYTES,
    FirehoseBatchWriter,
    FirehoseDeliveryError,
    LocalLakeSink,
    batches,
)

STREAM = "covid19-lake-tweets"
BUCKET = "lake"


@pytest.fixture
def firehose():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        client = boto3.client("firehose", region_name="us-east-1")
        client.create_delivery_stream(
            DeliveryStreamName=STREAM, DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose", "BucketARN": f"arn:aws:s3:::{BUCKET}",
                "Prefix": "raw/tweets/"})
        yield client, s3


def inject_failures(client, plan: list[set[int]]):
    """Before each call, drop the planned record positions from the request; after it, report them failed.

    Moto then stores only the accepted records and the response looks like Firehose's partial failure.
    """
    calls: list[int] = []

    def before(params, **_):
        failing = plan[len(calls)] if len(calls) < len(plan) else set()
        calls.append(len(params["Records"]))
        params["_failing"] = failing
        params["_positions"] = len(params["Records"])
        kept = [r for i, r in enumerate(params["Records"]) if i not in failing]
        # An all-failed call must not reach moto (nor pass validation with zero records): answer it here.
        params["Records"] = kept or params["Records"]
        state["short_circuit"] = not kept

    state: dict = {}

    class Http:
        status_code = 200
        headers = None

    def short_circuit(**_):
        if state["short_circuit"]:
            return Http(), {"FailedPutCount": 0, "RequestResponses": [], "Encrypted": False}
        return None

    def strip(params, context, **_):
        state["failing"] = params.pop("_failing")
        state["total"] = params.pop("_positions")

    def after(parsed, **_):
        accepted = iter(parsed["RequestResponses"])
        parsed["RequestResponses"] = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
            if i in state["failing"] else next(accepted) for i in range(state["total"])]
        parsed["FailedPutCount"] = len(state["failing"])

    client.meta.events.register("provide-client-params.firehose.PutRecordBatch", before)
    client.meta.events.register("before-parameter-build.firehose.PutRecordBatch", strip)
    client.meta.events.register("before-call.firehose.PutRecordBatch", short_circuit)
    client.meta.events.register("after-call.firehose.PutRecordBatch", after)
    return calls


def stored_lines(s3) -> list[dict]:
    lines = []
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="raw/tweets/").get("Contents", []):
        assert obj["Key"].count("/") == 6, obj["Key"]  # raw/tweets/YYYY/MM/DD/HH/name
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        lines += [json.loads(line) for line in body.splitlines()]
    return lines


def record(i: int, size: int = 0) -> bytes:
    return (json.dumps({"data": {"id": str(i), "text": "x" * size}}) + "\n").encode()


def test_only_failed_records_are_retried_and_each_lands_exactly_once(firehose):
    client, s3 = firehose
    calls = inject_failures(client, [{1, 3, 4}, {0}])
    sleeps: list[float] = []
    writer = FirehoseBatchWriter(client, STREAM, sleep=sleeps.append)

    assert writer.put([record(i) for i in range(6)]) == 6

    assert calls == [6, 3, 1]  # all, then the 3 rejected, then the 1 rejected again
    assert sleeps == [0.2, 0.4]
    assert sorted(int(line["data"]["id"]) for line in stored_lines(s3)) == list(range(6))


def test_batches_respect_500_records_and_4_mib(firehose):
    client, s3 = firehose
    calls = inject_failures(client, [])
    writer = FirehoseBatchWriter(client, STREAM)
    writer.put([record(i) for i in range(1203)])
    assert calls == [500, 500, 203]
    big = [record(i, size=300_000) for i in range(30)]
    assert all(sum(map(len, b)) <= MAX_BATCH_BYTES for b in batches(big))
    assert [len(b) for b in batches(big)] == [13, 13, 4]
    assert len(stored_lines(s3)) == 1203


def test_records_still_failing_after_all_attempts_raise(firehose):
    client, _ = firehose
    inject_failures(client, [{0}] * 3)
    writer = FirehoseBatchWriter(client, STREAM, max_attempts=3, sleep=lambda _: None)
    with pytest.raises(FirehoseDeliveryError, match="still rejected 1 records after 3 attempts"):
        writer.put([record(1), record(2)])


def test_an_oversized_record_is_refused_before_any_call():
    with pytest.raises(ValueError, match="record 1 is 1100"):
        list(batches([record(0), record(1, size=1_100_000)]))


def test_local_sink_writes_the_firehose_layout(tmp_path):
    from datetime import UTC, datetime

    sink = LocalLakeSink(tmp_path, clock=lambda: datetime(2021, 3, 2, 18, 5, tzinfo=UTC))
    sink.put([record(1), record(2)])
    files = list((tmp_path / "raw/tweets/2021/03/02/18").iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".")
    assert files[0].read_bytes().count(b"\n") == 2
