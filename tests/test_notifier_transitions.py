"""Which stream records are status transitions; settings and the webhooks secret are read strictly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lambdas.notifier.config import ConfigurationError, load_settings, parse_destinations
from lambdas.notifier.transitions import MalformedRecordError, detect_transition
from lambdas.notifier.webhooks import parse_webhooks, select_destinations
from tests.fixtures.notifier.events import item, record


def test_insert_counts_as_a_transition_from_nothing():
    transition = detect_transition(record("INSERT", new=item("SUBMITTED")))
    assert transition is not None
    assert (transition.previous_status, transition.status) == (None, "SUBMITTED")
    assert transition.image["try_number"] == Decimal(1)
    assert transition.image["attempts"][0]["status"] == "SUBMITTED"


def test_status_change_counts_and_remembers_the_previous_status():
    transition = detect_transition(record("MODIFY", new=item("FAILED"), old=item("RUNNING")))
    assert transition is not None
    assert (transition.previous_status, transition.status) == ("RUNNING", "FAILED")
    assert transition.image["error"].startswith("Step s-1YXXXXXXHJ7DO failed")


@pytest.mark.parametrize("changes", [
    {"attempts": [{"run_id": "r", "try_number": 2, "status": "RUNNING"}]},
    {"started_at": "2020-03-23T06:02:00Z", "updated_at": "2020-03-23T06:02:00Z"},
    {"version": 7, "duration_seconds": 12.5},
    {"step_id": "s-OTHER", "cluster_id": "j-OTHER"},
])
def test_metadata_only_updates_are_not_transitions(changes):
    old = item("RUNNING")
    assert detect_transition(record("MODIFY", new={**old, **changes}, old=old)) is None


def test_status_compared_without_case_or_spaces():
    assert detect_transition(record("MODIFY", new=item("running "), old=item("RUNNING"))) is None


def test_remove_is_ignored_even_without_images():
    assert detect_transition(record("REMOVE", old=item("COMPLETED"))) is None
    assert detect_transition({"eventID": "x", "eventName": "REMOVE"}) is None


def test_insert_without_status_still_counts_with_an_unknown_status():
    transition = detect_transition(record("INSERT", new={"job_date": "2020-03-22", "job_name": "tweets_process"}))
    assert transition is not None and transition.status is None


def test_modify_without_images_names_the_stream_view_type():
    raw = record("MODIFY", new=item("RUNNING"), old=item("SUBMITTED"), event_id="evt-7")
    del raw["dynamodb"]["OldImage"]
    with pytest.raises(MalformedRecordError, match=r"evt-7.*OldImage.*NEW_AND_OLD_IMAGES"):
        detect_transition(raw)
    del raw["dynamodb"]["NewImage"]
    with pytest.raises(MalformedRecordError, match=r"evt-7.*NewImage.*NEW_AND_OLD_IMAGES"):
        detect_transition(raw)


def test_malformed_dynamodb_json_names_the_field():
    raw = record("INSERT", new=item("SUBMITTED"), event_id="evt-9")
    raw["dynamodb"]["NewImage"]["rows_written"] = {"Q": "12"}
    with pytest.raises(MalformedRecordError, match=r"evt-9: dynamodb\.NewImage\.rows_written"):
        detect_transition(raw)
    with pytest.raises(MalformedRecordError, match="eventName='UPSERT'"):
        detect_transition({**raw, "eventName": "UPSERT"})


def test_idempotency_key_names_the_transition_not_the_delivery():
    first = detect_transition(record("MODIFY", new=item("COMPLETED"), old=item("RUNNING"), event_id="a"))
    again = detect_transition(record("MODIFY", new=item("COMPLETED"), old=item("RUNNING"), event_id="b"))
    later = detect_transition(record("MODIFY", new=item("COMPLETED", version=9), old=item("FAILED")))
    assert first is not None and again is not None and later is not None
    assert first.idempotency_key == again.idempotency_key == "2020-03-22|jhu_daily_reports|COMPLETED|v3"
    assert later.idempotency_key != first.idempotency_key
    unversioned = detect_transition(record("INSERT", new=item("SUBMITTED", version=None), event_id="e-1"))
    assert unversioned is not None and unversioned.idempotency_key == "event|e-1"


def test_settings_defaults_and_errors_name_the_variable():
    settings = load_settings({"AWS_REGION": "eu-west-1", "AIRFLOW_BASE_URL": "https://airflow.example/"})
    assert settings.airflow_base_url == "https://airflow.example"
    assert settings.console_region == "eu-west-1"
    assert settings.destinations is None
    assert settings.retry.max_attempts == 4
    assert load_settings({"EMR_CONSOLE_REGION": "us-west-2", "AWS_REGION": "eu-west-1"}).console_region == "us-west-2"
    with pytest.raises(ConfigurationError, match="HTTP_TIMEOUT_SECONDS='soon'"):
        load_settings({"HTTP_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(ConfigurationError, match="HTTP_MAX_ATTEMPTS='0'"):
        load_settings({"HTTP_MAX_ATTEMPTS": "0"})
    with pytest.raises(ConfigurationError, match="AIRFLOW_BASE_URL"):
        load_settings({"AIRFLOW_BASE_URL": "airflow.example"})


def test_destinations_restriction():
    assert parse_destinations(" Slack, teams ,slack") == ("slack", "teams")
    assert parse_destinations("") is None
    with pytest.raises(ConfigurationError, match=r"unknown destination\(s\) \['discord'\]"):
        parse_destinations("slack,discord")
    webhooks = {"chime": "https://c", "slack": "https://s", "teams": "https://t"}
    assert list(select_destinations(webhooks, ("teams", "chime"))) == ["chime", "teams"]
    assert select_destinations({"slack": "https://s"}, ("teams",)) == {}


def test_webhooks_secret_missing_or_empty_keys_disable_a_destination():
    webhooks, ignored = parse_webhooks(
        '{"chime": "", "slack": "https://hooks.slack.com/services/T/B/x", "teams": null, "discord": "y"}',
        secret_name="s",
    )
    assert webhooks == {"slack": "https://hooks.slack.com/services/T/B/x"}
    assert ignored == ["discord"]


@pytest.mark.parametrize(("secret", "message"), [
    ("not json: ftp://user:hunter2@x", r"secret 'hooks': SecretString is not JSON \(line 1, column 1\)"),
    ('["https://hunter2"]', "SecretString is a JSON list"),
    ('{"slack": "ftp://hunter2/x"}', r"the slack webhook \(key 'slack'\) is not an https:// URL"),
    ('{"teams": "http://hunter2.example/x"}', "the teams webhook .* is a plain http URL; webhooks must use https://"),
    ('{"chime": "http://127.0.0.1:9/hunter2"}', "the chime webhook .* only for a loopback .*DEPLOYMENT_TARGET=local"),
    ('{"slack": "https:///hunter2"}', "the slack webhook .* is not an https:// URL"),
    ('{"slack": "http://[::1/hunter2"}', "the slack webhook .* is not a URL"),
    ('{"teams": 42}', "key 'teams' is a int"),
])
def test_webhooks_secret_errors_never_quote_the_value(secret, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_webhooks(secret, secret_name="hooks")
    assert "hunter2" not in str(caught.value)


def test_loopback_http_is_accepted_only_for_the_local_target():
    local = '{"slack": "http://127.0.0.1:8765/slack", "teams": "http://localhost/t", "chime": "http://[::1]:9/c"}'
    webhooks, _ = parse_webhooks(local, secret_name="s", allow_loopback_http=True)
    assert set(webhooks) == {"chime", "slack", "teams"}
    with pytest.raises(ConfigurationError, match="the chime webhook"):
        parse_webhooks(local, secret_name="s")
    with pytest.raises(ConfigurationError, match=r"the slack webhook .* must use https://") as caught:
        parse_webhooks('{"slack": "http://hooks.example/hunter2"}', secret_name="s", allow_loopback_http=True)
    assert "hunter2" not in str(caught.value)
    assert load_settings({}).allow_loopback_http is False
    assert load_settings({"DEPLOYMENT_TARGET": " Local "}).allow_loopback_http is True
    with pytest.raises(ConfigurationError, match="DEPLOYMENT_TARGET='prod'"):
        load_settings({"DEPLOYMENT_TARGET": "prod"})
