"""The QuickSight embed Lambda: the exact GenerateEmbedUrlForAnonymousUser request, via botocore's Stubber."""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.quicksight_embed import app

ACCOUNT = "123456789012"
ENV = {
    "AWS_REGION": "eu-west-1",
    "QUICKSIGHT_DASHBOARD_IDS": "covid-overview, covid-tweets",
    "ALLOWED_DOMAINS": "https://d111111abcdef8.cloudfront.net,https://covid.example.org",
    "SESSION_LIFETIME_MINUTES": "120",
}
EXPECTED_REQUEST = {
    "AwsAccountId": ACCOUNT,
    "Namespace": "default",
    "SessionLifetimeInMinutes": 120,
    "AuthorizedResourceArns": [
        f"arn:aws:quicksight:eu-west-1:{ACCOUNT}:dashboard/covid-overview",
        f"arn:aws:quicksight:eu-west-1:{ACCOUNT}:dashboard/covid-tweets",
    ],
    "ExperienceConfiguration": {"Dashboard": {"InitialDashboardId": "covid-overview"}},
    "AllowedDomains": ["https://d111111abcdef8.cloudfront.net", "https://covid.example.org"],
}


@dataclass
class FakeContext:
    function_name: str = "quicksight-embed"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:quicksight-embed"
    aws_request_id: str = "req-1"


def api_event(path: str = "/embed-url") -> dict:
    """What an HTTP API (payload format 2.0) passes for GET <path>."""
    return {"version": "2.0", "routeKey": f"GET {path}", "rawPath": path, "rawQueryString": "",
            "headers": {"origin": "https://covid.example.org", "host": "abc123.execute-api.eu-west-1.amazonaws.com"},
            "requestContext": {"accountId": ACCOUNT, "apiId": "abc123", "domainName": "abc123.execute-api.eu-west-1"
                               ".amazonaws.com", "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                                                          "sourceIp": "203.0.113.7", "userAgent": "test"},
                               "requestId": "r-1", "routeKey": f"GET {path}", "stage": "$default",
                               "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000},
            "isBase64Encoded": False}


def test_request_is_built_from_the_environment() -> None:
    assert app.build_request(ENV, ACCOUNT) == EXPECTED_REQUEST


def test_stubbed_quicksight_receives_exactly_that_request() -> None:
    client = boto3.client("quicksight", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_response("generate_embed_url_for_anonymous_user",
                          {"EmbedUrl": "https://eu-west-1.quicksight.aws.amazon.com/embed/abc", "Status": 200,
                           "RequestId": "q-1", "AnonymousUserArn": f"arn:aws:quicksight:eu-west-1:{ACCOUNT}:user/x"},
                          expected_params=EXPECTED_REQUEST)
        result = app.embed_url(client, app.build_request(ENV, ACCOUNT))
        stub.assert_no_pending_responses()
    assert result == {"embedUrl": "https://eu-west-1.quicksight.aws.amazon.com/embed/abc", "requestId": "q-1",
                      "expiresInMinutes": 120}


def test_handler_behind_api_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("quicksight", region_name="eu-west-1")
    monkeypatch.setattr(app, "quicksight_client", lambda region: client)
    with Stubber(client) as stub:
        stub.add_response("generate_embed_url_for_anonymous_user",
                          {"EmbedUrl": "https://embed.example/1", "Status": 200, "RequestId": "q-2",
                           "AnonymousUserArn": "arn:aws:quicksight:eu-west-1:123456789012:user/x"},
                          expected_params=EXPECTED_REQUEST)
        response = app.lambda_handler(api_event(), FakeContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["embedUrl"] == "https://embed.example/1"
    assert app.lambda_handler(api_event("/other"), FakeContext())["statusCode"] == 404


def test_misconfiguration_is_a_500_without_calling_quicksight(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUICKSIGHT_DASHBOARD_IDS", "")
    monkeypatch.setattr(app, "quicksight_client", lambda region: pytest.fail("QuickSight must not be called"))
    response = app.lambda_handler(api_event(), FakeContext())
    assert response["statusCode"] == 500
    assert "not configured" in response["body"]


@pytest.mark.parametrize(("change", "message"), [
    ({"QUICKSIGHT_DASHBOARD_IDS": " , "}, "QUICKSIGHT_DASHBOARD_IDS"),
    ({"ALLOWED_DOMAINS": "http://insecure.example"}, "ALLOWED_DOMAINS"),
    ({"SESSION_LIFETIME_MINUTES": "5"}, "15..600"),
    ({"SESSION_LIFETIME_MINUTES": "soon"}, "integer"),
    ({"QUICKSIGHT_ACCOUNT_ID": "12345"}, "12-digit"),
])
def test_bad_configuration_names_the_variable(change: dict, message: str) -> None:
    with pytest.raises(app.ConfigError, match=message):
        app.build_request({**ENV, **change}, ACCOUNT)


def test_explicit_account_namespace_and_partition() -> None:
    request = app.build_request({**ENV, "QUICKSIGHT_ACCOUNT_ID": "210987654321", "QUICKSIGHT_NAMESPACE": "public",
                                 "QUICKSIGHT_REGION": "us-gov-west-1"}, ACCOUNT, partition="aws-us-gov")
    assert request["AwsAccountId"] == "210987654321" and request["Namespace"] == "public"
    assert request["AuthorizedResourceArns"][0] == \
        "arn:aws-us-gov:quicksight:us-gov-west-1:210987654321:dashboard/covid-overview"

