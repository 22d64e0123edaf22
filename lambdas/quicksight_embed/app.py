"""QuickSight embed Lambda (optional part of the stack): an anonymous embed URL for the lake's dashboard.

Behind an API Gateway HTTP API (payload format 2.0, route GET /embed-url; infra/covid19-lake.yaml), packaged by
infra/package.py. Handler: ``lambdas.quicksight_embed.app.lambda_handler``. Configuration comes from the
environment:

    QUICKSIGHT_ACCOUNT_ID       account that owns the QuickSight dashboards (default: the function's)
    QUICKSIGHT_REGION           QuickSight identity region of the dashboards (default: AWS_REGION)
    QUICKSIGHT_DASHBOARD_IDS    comma-separated dashboard ids; the first is shown first
    QUICKSIGHT_NAMESPACE        QuickSight namespace (default: "default")
    SESSION_LIFETIME_MINUTES    15..600 (default: 60)
    ALLOWED_DOMAINS             comma-separated https:// origins allowed to embed (and to call this API)

The request is built by a pure function (`build_request`) so its exact shape is unit-tested.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

MIN_LIFETIME, MAX_LIFETIME = 15, 600

logger = Logger(service="quicksight-embed")


class ConfigError(ValueError):
    """The function's environment is incomplete or invalid."""


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def build_request(env: Mapping[str, str], account_id: str, partition: str = "aws") -> dict[str, Any]:
    """The GenerateEmbedUrlForAnonymousUser request for the configured dashboards."""
    account = env.get("QUICKSIGHT_ACCOUNT_ID") or account_id
    region = env.get("QUICKSIGHT_REGION") or env.get("AWS_REGION")
    dashboards = _split(env.get("QUICKSIGHT_DASHBOARD_IDS"))
    domains = _split(env.get("ALLOWED_DOMAINS"))
    if not dashboards:
        raise ConfigError("QUICKSIGHT_DASHBOARD_IDS is empty: expected comma-separated QuickSight dashboard ids")
    if not region:
        raise ConfigError("QUICKSIGHT_REGION (or AWS_REGION) is not set")
    if not (account.isdigit() and len(account) == 12):
        raise ConfigError(f"QUICKSIGHT_ACCOUNT_ID must be a 12-digit AWS account id, got {account!r}")
    bad = [d for d in domains if not d.startswith("https://")]
    if not domains or bad:
        raise ConfigError(f"ALLOWED_DOMAINS must list https:// origins, got {domains!r}")
    raw_lifetime = env.get("SESSION_LIFETIME_MINUTES", "60")
    try:
        lifetime = int(raw_lifetime)
    except ValueError:
        raise ConfigError(f"SESSION_LIFETIME_MINUTES must be an integer, got {raw_lifetime!r}") from None
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise ConfigError(f"SESSION_LIFETIME_MINUTES must be within {MIN_LIFETIME}..{MAX_LIFETIME}, got {lifetime}")
    return {
        "AwsAccountId": account,
        "Namespace": env.get("QUICKSIGHT_NAMESPACE") or "default",
        "SessionLifetimeInMinutes": lifetime,
        "AuthorizedResourceArns": [
            f"arn:{partition}:quicksight:{region}:{account}:dashboard/{dashboard}" for dashboard in dashboards
        ],
        "ExperienceConfiguration": {"Dashboard": {"InitialDashboardId": dashboards[0]}},
        "AllowedDomains": domains,
    }


def embed_url(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    response = client.generate_embed_url_for_anonymous_user(**request)
    return {"embedUrl": response["EmbedUrl"], "requestId": response.get("RequestId"),
            "expiresInMinutes": request["SessionLifetimeInMinutes"]}


@cache
def quicksight_client(region: str) -> Any:
    return boto3.client("quicksight", region_name=region)


def _account_and_partition(context: LambdaContext) -> tuple[str, str]:
    # arn:<partition>:lambda:<region>:<account>:function:<name>
    parts = context.invoked_function_arn.split(":")
    return parts[4], parts[1]


app = APIGatewayHttpResolver(
    cors=CORSConfig(allow_origin=(_split(os.environ.get("ALLOWED_DOMAINS")) or ["https://invalid"])[0],
                    extra_origins=_split(os.environ.get("ALLOWED_DOMAINS"))[1:], max_age=300),
)


@app.get("/embed-url")
def get_embed_url() -> Response | dict[str, Any]:
    account, partition = _account_and_partition(app.lambda_context)
    try:
        request = build_request(os.environ, account, partition)
    except ConfigError as error:
        logger.error("invalid configuration", extra={"error": str(error)})
        return Response(status_code=500, content_type="application/json",
                        body='{"message": "embedding is not configured"}')
    region = request["AuthorizedResourceArns"][0].split(":")[3]
    result = embed_url(quicksight_client(region), request)
    logger.info("embed URL generated", extra={"request_id": result["requestId"],
                                              "dashboards": len(request["AuthorizedResourceArns"])})
    return result


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
