"""The local stack's tweets pieces: the X API stand-in it starts, the X connection and tweets settings in
its environment, and the local-only Firehose clock that follows the stand-in's virtual clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from local.stack import TWEETS_CHECKPOINT_VARIABLE, set_firehose_clock

pytestmark = pytest.mark.stack


def test_firehose_clock_hook_names_objects_by_the_given_time_and_restores_moto_clock():
    import moto.firehose.models as firehose_models
    from moto.core.utils import utcnow

    moment = datetime(2020, 3, 5, 7, 30, tzinfo=UTC)
    set_firehose_clock(lambda: moment)
    try:
        key = firehose_models.FirehoseBackend._format_s3_object_path("s", "1", "raw/tweets/")
        assert key.startswith("raw/tweets/2020/03/05/07/s-1-2020-03-05-07-30-00-")
    finally:
        set_firehose_clock(None)
    assert firehose_models.utcnow is utcnow


def test_the_stack_serves_the_x_api_and_firehose_lands_under_its_virtual_hour(local_stack):
    stack = local_stack
    base_url, token = stack.x_api["base_url"], stack.x_api["token"]
    env = stack.env()
    connection = json.loads(env["AIRFLOW_CONN_X_API"])
    variable = json.loads(env["AIRFLOW_VAR_COVID19_LAKE"])
    settings = variable["tweets"]
    assert connection == {"conn_type": "http", "host": base_url, "password": token}
    assert env["COVID19_LAKE_TWEETS_INGEST_SCHEDULE"] == "none"
    # The secret the template wrote is the Variable Airflow gets (the stack added the stand-in's URL).
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.outputs["AirflowLakeVariableSecretName"])
    assert json.loads(secret["SecretString"]) == variable == stack.airflow_variable
    assert settings["x_api_base_url"] == base_url and settings["sink"] == "firehose"
    assert settings["delivery_stream"] == stack.outputs["TweetsDeliveryStreamName"]
    assert settings["checkpoint_variable"] == TWEETS_CHECKPOINT_VARIABLE
    assert base_url.startswith("http://127.0.0.1:") and stack.record["x_api"]["base_url"] == base_url
    assert token not in json.dumps(stack.record["x_api"])

    query = {"query": "covid", "max_results": "10", "start_time": "2020-03-10T00:00:00Z",
             "end_time": "2020-03-10T12:00:00Z"}
    assert httpx.get(f"{base_url}/2/tweets/search/recent", params=query,
                     headers={"Authorization": "Bearer wrong"}).status_code == 401
    page = httpx.get(f"{base_url}/2/tweets/search/recent", params=query,
                     headers={"Authorization": f"Bearer {token}"}).json()
    assert page["meta"]["result_count"] == 10 and page["data"][0]["id"]

    lake = Path(stack.lake_dir)
    stream = stack.outputs["TweetsDeliveryStreamName"]
    httpx.post(f"{base_url}/_stand_in/clock", json={"now": "2020-03-03T04:05:06Z"}).raise_for_status()
    try:
        stack.client("firehose").put_record(DeliveryStreamName=stream, Record={"Data": b'{"probe": 1}\n'})
    finally:
        httpx.post(f"{base_url}/_stand_in/clock", json={"now": None}).raise_for_status()
    hour = lake / "raw" / "tweets" / "2020" / "03" / "03" / "04"
    files = stack.wait_for(lambda: [p for p in hour.glob(f"{stream}-*-2020-03-03-04-05-06-*")
                                    if b'"probe"' in p.read_bytes()],
                           timeout=30, message="the probe record mirrored under 2020/03/03/04")
    for path in files:  # the demo's dates stay the demo's
        stack.client("s3").delete_object(Bucket=stack.outputs["LakeBucketName"], Key=path.relative_to(lake).as_posix())
        path.unlink()
    assert httpx.get(f"{base_url}/_stand_in/state").json()["now"][:4] == f"{datetime.now(UTC):%Y}"


def test_firehose_faults_reject_the_chosen_records_of_the_next_batch_only(local_stack):
    stack = local_stack
    base_url = stack.x_api["base_url"]
    stream = stack.outputs["TweetsDeliveryStreamName"]
    firehose = stack.client("firehose")
    path = f"{base_url}/_stand_in/firehose-faults"
    httpx.post(path, json={"fail": [[0, 2]], "clear_log": True}).raise_for_status()
    try:
        records = [{"Data": f'{{"fault_probe": {i}}}\n'.encode()} for i in range(3)]
        response = firehose.put_record_batch(DeliveryStreamName=stream, Records=records)
        assert response["FailedPutCount"] == 2
        assert [bool(r.get("ErrorCode")) for r in response["RequestResponses"]] == [True, False, True]
        assert firehose.put_record_batch(DeliveryStreamName=stream, Records=records[:1])["FailedPutCount"] == 0
        log = httpx.get(path).json()["batches"]
        assert [(b["records"], b["failed"]) for b in log] == [(3, [0, 2]), (1, [])]
    finally:
        httpx.post(path, json={"fail": []}).raise_for_status()
    bucket = stack.outputs["LakeBucketName"]
    lake = Path(stack.lake_dir)

    def probes():
        return [p for p in (lake / "raw" / "tweets").glob("*/*/*/*/*") if b"fault_probe" in p.read_bytes()]

    found = stack.wait_for(lambda: len(probes()) == 2 and probes(), timeout=30, message="both probe objects")
    assert sorted(p.read_bytes() for p in found) == [b'{"fault_probe": 0}\n', b'{"fault_probe": 1}\n']
    for p in found:
        stack.client("s3").delete_object(Bucket=bucket, Key=p.relative_to(lake).as_posix())
        p.unlink()
