"""What the template becomes in the local stack: tables, catalog, secrets, Firehose, webhook sink."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from local.cfn import load_template
from local.webhook_sink import read_sink_log

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def template(local_stack):
    return load_template(Path(local_stack.record["template"]))


def test_job_table_has_its_keys_and_a_new_and_old_images_stream(local_stack):
    table = local_stack.client("dynamodb").describe_table(TableName=local_stack.outputs["JobTableName"])["Table"]
    assert table["TableName"] == "covid19-lake-jobs"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {("job_date", "HASH"),
                                                                               ("job_name", "RANGE")}
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["LatestStreamArn"] == local_stack.outputs["JobTableStreamArn"]


def test_idempotency_table_has_the_templates_ttl(local_stack):
    dynamodb = local_stack.client("dynamodb")
    ttl = dynamodb.describe_time_to_live(TableName=local_stack.outputs["IdempotencyTableName"])
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}


def test_glue_database_and_every_template_table_exist_on_the_local_lake(local_stack, template):
    glue = local_stack.client("glue")
    database = local_stack.outputs["GlueDatabaseName"]
    assert glue.get_database(Name=database)["Database"]["Name"] == database
    expected = {r["Properties"]["TableInput"]["Name"] for r in template["Resources"].values()
                if r["Type"] == "AWS::Glue::Table"}
    assert len(expected) >= 3
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=database)["TableList"]}
    assert expected <= set(tables)
    lake_uri = Path(local_stack.record["lake_dir"]).as_uri()
    for name in expected:
        assert tables[name]["StorageDescriptor"]["Location"].startswith(lake_uri), name


def test_unemulated_resources_are_reported_not_silently_missing(local_stack, template):
    created_by = local_stack.record["resources"]
    assert set(created_by) == set(template["Resources"])
    assert created_by["JobTable"] == "cloudformation"
    assert created_by["GlueDatabase"] == "api"
    # The notifier runs on the job table's stream, as the template's event source mapping says.
    assert created_by["NotifierFunction"] == created_by["NotifierEventSourceMapping"] == "stream-bridge"
    # What AWS deploys and the stack skips says why; what AWS skips too (by default) is condition-false.
    assert created_by["MwaaEnvironment"] == "not-emulated"
    assert created_by["QuickSightEmbedFunction"] == "condition-false"
    not_emulated = local_stack.record["not_emulated"]
    assert set(not_emulated) == {lid for lid, how in created_by.items() if how == "not-emulated"}
    assert all(isinstance(why, str) and why for why in not_emulated.values())


def test_the_session_stack_wires_the_templates_notifier_and_the_tests_recorder(local_stack):
    wired = local_stack.record["stream_handlers"]
    assert wired["JobTable"]["handler"] == "lambdas.notifier.app.handler"
    assert wired["JobTable"]["from"] == "template"
    assert wired["JobTable"]["function_name"] == "covid19-lake-notifier"
    assert wired["local-stack-test-events"]["from"] == "--stream-handler"


def test_webhooks_secret_points_at_the_sink_and_the_sink_records_posts(local_stack):
    secret = local_stack.client("secretsmanager").get_secret_value(SecretId=local_stack.outputs["WebhooksSecretName"])
    urls = json.loads(secret["SecretString"])
    assert set(urls) == {"chime", "slack", "teams"}
    before = len(read_sink_log(local_stack.sink_log))
    for channel, url in urls.items():
        assert url.startswith(local_stack.sink_url)
        request = urllib.request.Request(url, data=json.dumps({"text": channel}).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    recorded = read_sink_log(local_stack.sink_log)[before:]
    assert [(r["path"], r["body"]) for r in recorded] == [(f"/{c}", {"text": c}) for c in urls]
    assert all("authorization" not in {h.lower() for h in r["headers"]} for r in recorded)
    assert all(r["received_at"] for r in recorded)


def test_firehose_deliveries_land_in_the_lake_directory_with_firehoses_layout(local_stack):
    stream = local_stack.outputs["TweetsDeliveryStreamName"]
    marker = "mirror-test-tweet"
    local_stack.client("firehose").put_record_batch(
        DeliveryStreamName=stream,
        Records=[{"Data": (json.dumps({"id": str(i), "text": marker}) + "\n").encode()} for i in range(3)],
    )
    lake = Path(local_stack.record["lake_dir"])

    def delivered():
        return [p for p in lake.rglob(f"{stream}-*") if marker in p.read_text()]

    files = local_stack.wait_for(delivered, timeout=15, message="the delivery in the lake directory")
    assert len(files) == 1
    key = files[0].relative_to(lake).as_posix()
    assert re.fullmatch(
        rf"raw/tweets/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/{stream}-\d+-\d{{4}}(-\d{{2}}){{5}}-[0-9a-f-]{{36}}", key
    ), key
    assert [json.loads(line)["id"] for line in files[0].read_text().splitlines()] == ["0", "1", "2"]
