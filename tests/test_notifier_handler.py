"""The Lambda handler end to end: moto for Secrets Manager and the idempotency table, a local webhook stub.

Covers partial batch failures, idempotency across a retried batch (only the destination that failed posts
again), refusals that are not retried, and that no webhook URL reaches a log, a message or a response.
"""

from __future__ import annotations

import json
import logging

import boto3
import pytest
from moto import mock_aws

from lambdas.notifier import app
from tests.fixtures.notifier.events import (
    FORTY_DATES,
    RUN_ITEM_NAME,
    FakeContext,
    date_record,
    event,
    item,
    record,
    run_item,
)
from tests.fixtures.notifier.webhook_server import SECRET_MARKER, WebhookStub

SECRET_NAME = "covid19-lake/notifier/webhooks"
TABLE = "covid19-lake-notifier-idempotency"
AIRFLOW = "https://airflow.covid19-lake.example"


class LogCapture(logging.Handler):
    """Every line the notifier's logger emits, formatted exactly as Lambda would print it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(app.logger.registered_formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def stub():
    with WebhookStub() as server:
        yield server


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with mock_aws():
        app.clear_caches()
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        yield {"dynamodb": dynamodb, "secrets": boto3.client("secretsmanager", region_name="us-east-1")}
    app.clear_caches()


@pytest.fixture
def notifier(aws, stub, monkeypatch):
    """Every destination configured and pointed at the stub; tiny backoff through the environment."""
    aws["secrets"].create_secret(Name=SECRET_NAME, SecretString=json.dumps(
        {name: stub.url(name) for name in ("chime", "slack", "teams")}))
    for name, value in {
        # The stub is loopback http, which only the local target accepts (as the local stack's sink).
        "DEPLOYMENT_TARGET": "local",
        "WEBHOOKS_SECRET_NAME": SECRET_NAME, "IDEMPOTENCY_TABLE_NAME": TABLE, "AIRFLOW_BASE_URL": AIRFLOW,
        "HTTP_TIMEOUT_SECONDS": "1", "HTTP_MAX_ATTEMPTS": "3", "HTTP_BACKOFF_BASE_SECONDS": "0.01",
        "HTTP_BACKOFF_MAX_SECONDS": "0.02", "HTTP_RETRY_AFTER_MAX_SECONDS": "0.05",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DESTINATIONS", raising=False)
    capture = LogCapture()
    app.logger.addHandler(capture)
    app.logger.setLevel(logging.DEBUG)
    yield stub, capture, aws
    app.logger.removeHandler(capture)
    app.logger.setLevel(logging.INFO)


def failed_ids(response: dict) -> list[str]:
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


def counts(stub: WebhookStub) -> dict[str, int]:
    return {name: stub.count(name) for name in ("chime", "slack", "teams")}


def test_one_message_per_transition_and_none_for_metadata_or_removal(notifier):
    stub, capture, _ = notifier
    batch = event(
        record("INSERT", new=item("SUBMITTED")),
        record("MODIFY", new={**item("SUBMITTED"), "updated_at": "2020-03-23T06:00:09Z"}, old=item("SUBMITTED")),
        record("MODIFY", new=item("COMPLETED"), old=item("RUNNING")),
        record("REMOVE", old=item("COMPLETED")),
    )
    response = app.handler(batch, FakeContext())
    assert response == {"batchItemFailures": []}
    assert counts(stub) == {"chime": 2, "slack": 2, "teams": 2}
    assert [body["text"].split(":")[1].strip() for body in stub.bodies("slack")] == ["SUBMITTED (try 1)",
                                                                                       "COMPLETED (try 1, was RUNNING)"]
    assert stub.bodies("chime")[1]["Content"].startswith("/md ### ✅ COMPLETED: jhu_daily_reports for 2020-03-22")
    posted = [e for e in capture.entries() if e["message"] == "Posted"]
    assert len(posted) == 6 and {e["destination"] for e in posted} == {"chime", "slack", "teams"}
    assert all(e["function_request_id"] == FakeContext.aws_request_id for e in posted)


def test_a_bad_record_fails_alone(notifier):
    stub, capture, _ = notifier
    bad = record("MODIFY", new=item("RUNNING"), old=item("SUBMITTED"), sequence="2002")
    bad["dynamodb"]["NewImage"]["status"] = {"NOPE": "RUNNING"}
    batch = event(
        record("INSERT", new=item("SUBMITTED", job_name="tweets_process"), sequence="2001"),
        bad,
        record("MODIFY", new=item("FAILED"), old=item("RUNNING"), sequence="2003"),
    )
    response = app.handler(batch, FakeContext())
    assert failed_ids(response) == ["2002"]
    assert counts(stub) == {"chime": 2, "slack": 2, "teams": 2}
    errors = [e for e in capture.entries() if e["message"].startswith("Record not processed")]
    assert [e["error_type"] for e in errors] == ["MalformedRecordError"]
    assert "dynamodb.NewImage.status" in errors[0]["error"]


def test_retried_batch_posts_only_to_the_destination_that_failed(notifier):
    stub, capture, aws = notifier
    stub.script("slack", "500", "500", "500")  # HTTP_MAX_ATTEMPTS=3: the first invocation gives up on Slack
    batch = event(record("MODIFY", new=item("FAILED"), old=item("RUNNING"), sequence="3001"))

    first = app.handler(batch, FakeContext())
    assert failed_ids(first) == ["3001"]
    assert counts(stub) == {"chime": 1, "slack": 3, "teams": 1}

    second = app.handler(batch, FakeContext())  # the event source mapping retries the record
    assert failed_ids(second) == []
    assert counts(stub) == {"chime": 1, "slack": 4, "teams": 1}

    third = app.handler(batch, FakeContext())  # a redelivery after success posts nothing at all
    assert failed_ids(third) == []
    assert counts(stub) == {"chime": 1, "slack": 4, "teams": 1}
    replayed = [e for e in capture.entries() if e["message"] == "Already posted; not sent again"]
    assert sorted(e["destination"] for e in replayed) == ["chime", "chime", "slack", "teams", "teams"]

    items = aws["dynamodb"].scan(TableName=TABLE)["Items"]
    assert len(items) == 3 and {i["status"]["S"] for i in items} == {"COMPLETED"}
    assert all(i["id"]["S"].startswith(app.IDEMPOTENCY_KEY_PREFIX) for i in items)


def test_later_transitions_of_a_failed_job_wait_so_channels_keep_the_order(notifier):
    stub, capture, _ = notifier
    stub.script("slack", "500", "500", "500")
    batch = event(
        record("MODIFY", new=item("RUNNING"), old=item("SUBMITTED"), sequence="6001"),
        record("INSERT", new=item("SUBMITTED", job_name="tweets_process"), sequence="6002"),
        record("MODIFY", new=item("COMPLETED"), old=item("RUNNING"), sequence="6003"),
    )
    assert failed_ids(app.handler(batch, FakeContext())) == ["6001", "6003"]
    # The other job is not held back; COMPLETED of the failed job is posted nowhere yet.
    assert [b["text"].split(" for ")[0] for b in stub.bodies("slack")] == [
        "🏃 jhu_daily_reports", "🏃 jhu_daily_reports", "🏃 jhu_daily_reports", "📤 tweets_process"]
    assert counts(stub) == {"chime": 2, "slack": 4, "teams": 2}
    held = [e for e in capture.entries() if e.get("sequence_number") == "6003"]
    assert "held back: an earlier transition of jhu_daily_reports for 2020-03-22" in held[0]["error"]

    # The stream redelivers from 6001: RUNNING reaches Slack, then COMPLETED reaches everyone, in order.
    assert failed_ids(app.handler(event(batch["Records"][0], batch["Records"][2]), FakeContext())) == []
    assert [b["text"].split(":")[1].strip().split(" ")[0] for b in stub.bodies("slack")] == [
        "RUNNING", "RUNNING", "RUNNING", "SUBMITTED", "RUNNING", "COMPLETED"]
    assert [b["Content"].split(":")[0] for b in stub.bodies("chime")] == [
        "/md ### 🏃 RUNNING", "/md ### 📤 SUBMITTED", "/md ### ✅ COMPLETED"]


def test_same_transition_from_another_stream_record_is_not_posted_twice(notifier):
    stub, _, _ = notifier
    app.handler(event(record("MODIFY", new=item("COMPLETED"), old=item("RUNNING"), event_id="a")), FakeContext())
    app.handler(event(record("MODIFY", new=item("COMPLETED"), old=item("RUNNING"), event_id="b")), FakeContext())
    assert counts(stub) == {"chime": 1, "slack": 1, "teams": 1}


def test_refusal_is_logged_not_retried_and_not_reposted(notifier):
    stub, capture, _ = notifier
    stub.script("teams", "400")
    batch = event(record("MODIFY", new=item("COMPLETED"), old=item("RUNNING")))
    assert app.handler(batch, FakeContext()) == {"batchItemFailures": []}
    assert app.handler(batch, FakeContext()) == {"batchItemFailures": []}
    assert counts(stub) == {"chime": 1, "slack": 1, "teams": 1}
    refused = [e for e in capture.entries() if e["message"] == "Webhook refused the message; not retried"]
    assert len(refused) == 1 and refused[0]["level"] == "ERROR"
    assert (refused[0]["destination"], refused[0]["http_status"], refused[0]["detail"]) == (
        "teams", 400, "HTTP 400: invalid_payload")


def test_rate_limit_is_waited_out_within_one_invocation(notifier):
    stub, _, _ = notifier
    stub.script("slack", "429:1")
    batch = event(record("MODIFY", new=item("RUNNING"), old=item("SUBMITTED")))
    assert app.handler(batch, FakeContext()) == {"batchItemFailures": []}
    assert counts(stub) == {"chime": 1, "slack": 2, "teams": 1}


def test_a_hanging_webhook_fails_the_record_before_the_lambda_times_out(notifier, monkeypatch):
    stub, _, _ = notifier
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "30")
    stub.script("chime", *["hang"] * 5)
    batch = event(record("MODIFY", new=item("RUNNING"), old=item("SUBMITTED"), sequence="4001"))
    # 3.6 s left, less the 3 s margin: the hanging POST is cut after ~0.6 s, not after 30 s.
    response = app.handler(batch, FakeContext(remaining_ms=3600))
    assert failed_ids(response) == ["4001"]
    assert counts(stub)["slack"] == 1 and counts(stub)["teams"] == 1


def test_destinations_restricted_by_environment_and_secret(notifier, monkeypatch):
    stub, _, aws = notifier
    aws["secrets"].put_secret_value(SecretId=SECRET_NAME, SecretString=json.dumps(
        {"chime": "", "slack": stub.url("slack"), "teams": stub.url("teams")}))
    monkeypatch.setenv("DESTINATIONS", "chime,slack")
    app.clear_caches()
    assert app.handler(event(record("INSERT", new=item("SUBMITTED"))), FakeContext()) == {"batchItemFailures": []}
    assert counts(stub) == {"chime": 0, "slack": 1, "teams": 0}


def test_no_destination_configured_is_a_warning_not_a_failure(notifier):
    stub, capture, aws = notifier
    aws["secrets"].put_secret_value(SecretId=SECRET_NAME, SecretString='{"chime": "", "slack": null}')
    app.clear_caches()
    assert app.handler(event(record("INSERT", new=item("SUBMITTED"))), None) == {"batchItemFailures": []}
    assert counts(stub) == {"chime": 0, "slack": 0, "teams": 0}
    assert any(e["message"].startswith("No destination configured") for e in capture.entries())


def test_missing_secret_configuration_fails_only_records_that_need_it(notifier, monkeypatch):
    stub, capture, _ = notifier
    monkeypatch.delenv("WEBHOOKS_SECRET_NAME")
    batch = event(
        record("MODIFY", new={**item("RUNNING"), "version": 5}, old=item("RUNNING"), sequence="5001"),
        record("INSERT", new=item("SUBMITTED"), sequence="5002"),
    )
    assert failed_ids(app.handler(batch, FakeContext())) == ["5002"]
    assert counts(stub) == {"chime": 0, "slack": 0, "teams": 0}
    errors = [e["error"] for e in capture.entries() if e["message"].startswith("Record not processed")]
    assert errors == ["WEBHOOKS_SECRET_NAME is not set: expected the name or ARN of the secret"]


def test_an_insert_with_only_its_keys_is_posted(notifier):
    stub, _, _ = notifier
    minimal = {"job_date": "2020-03-22", "job_name": "tweets_process", "version": 1}
    assert app.handler(event(record("INSERT", new=minimal)), FakeContext()) == {"batchItemFailures": []}
    assert stub.bodies("teams")[0]["attachments"][0]["content"]["body"][0]["text"] == (
        "❔ UNKNOWN: tweets_process for 2020-03-22")


def test_webhook_urls_never_reach_logs_messages_or_responses(notifier, caplog, capsys):
    stub, capture, aws = notifier
    # INFO for everything else: botocore's DEBUG output dumps API responses, the secret's value included,
    # which is why the function must never run with botocore at DEBUG (see docs/notifier.md).
    caplog.set_level(logging.INFO)
    stub.script("slack", *["500"] * 6)
    stub.script("teams", "400")
    leaky = item("FAILED", error=f"could not post to {stub.url('slack')} (token={SECRET_MARKER})")
    batch = event(record("MODIFY", new=leaky, old=item("RUNNING")),
                  record("INSERT", new=item("SUBMITTED", job_name="tweets_process")))
    response = app.handler(batch, FakeContext())
    assert len(response["batchItemFailures"]) == 2  # Slack kept failing for both records

    messages = json.dumps([r.body for r in stub.received], ensure_ascii=False)
    assert "could not post to *** (token=***" in messages
    outputs = {
        "notifier log": "\n".join(capture.lines),
        "other loggers": caplog.text,
        "stdout/stderr": "".join(capsys.readouterr()),
        "webhook bodies": messages,
        "response": json.dumps(response),
        "idempotency table": json.dumps(aws["dynamodb"].scan(TableName=TABLE)["Items"]),
    }
    assert capture.lines and any("Delivery failed" in line for line in capture.lines)
    for where, text in outputs.items():
        assert SECRET_MARKER not in text, f"webhook token leaked into {where}"
        assert f"127.0.0.1:{stub.port}/hooks" not in text, f"webhook URL leaked into {where}"


def test_idempotency_table_is_required_unless_explicitly_disabled(notifier, monkeypatch):
    stub, _, _ = notifier
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    with pytest.raises(app.ConfigurationError, match="IDEMPOTENCY_TABLE_NAME is not set"):
        app.handler(event(record("INSERT", new=item("SUBMITTED"))), FakeContext())
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "true")
    batch = event(record("INSERT", new=item("SUBMITTED")))
    app.handler(batch, FakeContext())
    app.handler(batch, FakeContext())
    assert counts(stub) == {"chime": 2, "slack": 2, "teams": 2}  # without the store, nothing stops a repost


def run_transitions(dates: list[str], final: dict) -> list[dict]:
    """A multi-date run as the stream carries it: each date's three transitions and the run item's three."""
    records = [record("INSERT", new=run_item("SUBMITTED", dates))]
    records += [record("INSERT", new=date_record("SUBMITTED", day)) for day in dates]
    records += [record("MODIFY", new=run_item("RUNNING", dates), old=run_item("SUBMITTED", dates))]
    records += [record("MODIFY", new=date_record("RUNNING", day), old=date_record("SUBMITTED", day))
                for day in dates]
    records += [record("MODIFY", new=date_record("FAILED" if day in final["failures"] else "COMPLETED", day,
                                                 error=final["failures"].get(day)),
                       old=date_record("RUNNING", day)) for day in dates]
    records += [record("MODIFY", new=final, old=run_item("RUNNING", dates))]
    return records


def batches(records: list[dict], size: int = 10) -> list[dict]:
    return [event(*records[i:i + size]) for i in range(0, len(records), size)]


def test_a_partly_failed_40_date_run_posts_one_message_per_transition_naming_each_failure(notifier):
    stub, capture, _ = notifier
    failures = {"2020-03-04": "quarantine: every row failed the country check",
                "2020-03-22": "java.io.FileNotFoundException: No such file 03-22-2020.csv",
                "2020-04-07": "ValueError: Last_Update '4/7/20 25:61' is not a timestamp"}
    final = run_item("FAILED", FORTY_DATES, dates_completed=37, dates_failed=3, failures=failures)
    records = run_transitions(FORTY_DATES, final)
    assert len(records) == 123
    for batch in batches(records):  # BatchSize 10, as the event source mapping delivers them
        assert app.handler(batch, FakeContext()) == {"batchItemFailures": []}
    assert counts(stub) == {"chime": 3, "slack": 3, "teams": 3}
    assert [b["text"].split(": ")[1] for b in stub.bodies("slack")] == [
        "SUBMITTED (try 1)", "RUNNING (try 1, was SUBMITTED)", "PARTLY FAILED (try 1, was RUNNING)"]
    last = {name: json.dumps(stub.bodies(name)[-1], ensure_ascii=False) for name in ("chime", "slack", "teams")}
    for name, body in last.items():
        assert "2020-03-01..2020-04-09 (40 dates)" in body and "37 of 40 dates completed, 3 failed" in body
        for day, reason in failures.items():
            assert day in body and reason in body, (name, day)
    skipped = [e for e in capture.entries() if e["message"] == "Date of a multi-date run; its run item reports it"]
    assert len(skipped) == 120 and {e["run_item"] for e in skipped} == {RUN_ITEM_NAME}


def test_a_batch_mixing_run_items_and_their_dates_posts_only_the_run_messages(notifier):
    stub, _, _ = notifier
    days = FORTY_DATES[:5]
    batch = event(
        record("INSERT", new=date_record("SUBMITTED", days[0])),
        record("INSERT", new=run_item("SUBMITTED", days)),
        *[record("INSERT", new=date_record("SUBMITTED", day)) for day in days[1:]],
        record("MODIFY", new=date_record("FAILED", days[2], error="boom"), old=date_record("RUNNING", days[2])),
        record("INSERT", new=item("SUBMITTED", job_name="tweets_process")),  # a single-date run: posted as today
    )
    assert app.handler(batch, FakeContext()) == {"batchItemFailures": []}
    assert counts(stub) == {"chime": 2, "slack": 2, "teams": 2}
    assert [b["text"] for b in stub.bodies("slack")] == [
        "📤 jhu_daily_reports for 2020-03-01..2020-03-05 (5 dates): SUBMITTED (try 1)",
        "📤 tweets_process for 2020-03-22: SUBMITTED (try 1)"]


def test_a_redelivered_run_batch_posts_nothing_twice(notifier):
    stub, capture, _ = notifier
    stub.script("teams", "500", "500", "500")  # the first invocation gives up on Teams
    days = FORTY_DATES[:3]
    final = run_item("COMPLETED", days)
    batch = event(*run_transitions(days, {**final, "failures": {}})[:4],
                  record("MODIFY", new=final, old=run_item("RUNNING", days), sequence="7001"))
    first = app.handler(batch, FakeContext())
    # SUBMITTED reached Chime and Slack; the COMPLETED run message waits behind it (channels keep the order).
    assert failed_ids(first) == [batch["Records"][0]["dynamodb"]["SequenceNumber"], "7001"]
    assert counts(stub) == {"chime": 1, "slack": 1, "teams": 3}
    second = app.handler(batch, FakeContext())  # the stream retries the batch from the first failure
    assert failed_ids(second) == []
    assert counts(stub) == {"chime": 2, "slack": 2, "teams": 5}
    third = app.handler(batch, FakeContext())  # a redelivery after success posts nothing at all
    assert failed_ids(third) == []
    assert counts(stub) == {"chime": 2, "slack": 2, "teams": 5}
    assert [b["text"].split(": ")[1] for b in stub.bodies("slack")] == ["SUBMITTED (try 1)",
                                                                        "COMPLETED (try 1, was RUNNING)"]
    replayed = [e for e in capture.entries() if e["message"] == "Already posted; not sent again"]
    assert sorted(e["destination"] for e in replayed) == ["chime"] * 3 + ["slack"] * 3 + ["teams"] * 2


def test_a_plain_http_webhook_fails_the_record_with_a_clear_error_outside_the_local_target(notifier, monkeypatch):
    stub, capture, _ = notifier
    monkeypatch.setenv("DEPLOYMENT_TARGET", "aws")
    batch = event(record("INSERT", new=item("SUBMITTED"), sequence="8001"))
    assert failed_ids(app.handler(batch, FakeContext())) == ["8001"]
    assert counts(stub) == {"chime": 0, "slack": 0, "teams": 0}
    errors = [e["error"] for e in capture.entries() if e["message"].startswith("Record not processed")]
    assert errors == [f"secret {SECRET_NAME!r}: the chime webhook (key 'chime') is a plain http URL; http is "
                      "accepted only for a loopback webhook on the local stack (DEPLOYMENT_TARGET=local)"]
    assert SECRET_MARKER not in "\n".join(capture.lines)
