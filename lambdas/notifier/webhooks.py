"""Webhook URLs from Secrets Manager: ``{"chime": url, "slack": url, "teams": url}``, cached per container."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.parameters import GetParameterError, get_secret

from .config import DESTINATION_NAMES, ConfigurationError, Settings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def webhook_url_problem(url: str, *, allow_loopback_http: bool = False) -> str | None:
    """Why ``url`` may not receive a message, or None. Only https, with a host; plain http only to a
    loopback host and only when ``allow_loopback_http`` (the local stack's webhook sink). Never quotes it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host:
        if allow_loopback_http and host in LOOPBACK_HOSTS:
            return None
        if host in LOOPBACK_HOSTS:
            return ("is a plain http URL; http is accepted only for a loopback webhook on the local stack "
                    "(DEPLOYMENT_TARGET=local)")
        return "is a plain http URL; webhooks must use https://"
    return "is not an https:// URL"


def parse_webhooks(secret_string: Any, *, secret_name: str,
                   allow_loopback_http: bool = False) -> tuple[dict[str, str], list[str]]:
    """SecretString -> ({destination: url}, ignored key names). Missing or empty keys disable a destination.

    Every URL must be https:// (``allow_loopback_http``: also http to 127.0.0.1, ::1 or localhost, for the
    local stack's sink). Errors name the secret and the key, never a value: the values are the credentials.
    """
    if isinstance(secret_string, bytes):
        secret_string = secret_string.decode("utf-8", "replace")
    try:
        data = json.loads(secret_string) if isinstance(secret_string, str) else secret_string
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"secret {secret_name!r}: SecretString is not JSON (line {exc.lineno}, column {exc.colno}); "
            f'expected {{"chime": url, "slack": url, "teams": url}}'
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"secret {secret_name!r}: SecretString is a JSON {type(data).__name__}, expected an object "
            f"with keys {list(DESTINATION_NAMES)}"
        )
    webhooks: dict[str, str] = {}
    for name in DESTINATION_NAMES:
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise ConfigurationError(
                f"secret {secret_name!r}: key {name!r} is a {type(value).__name__}, expected a URL string"
            )
        problem = webhook_url_problem(value.strip(), allow_loopback_http=allow_loopback_http)
        if problem:
            raise ConfigurationError(f"secret {secret_name!r}: the {name} webhook (key {name!r}) {problem}")
        webhooks[name] = value.strip()
    ignored = sorted(str(key) for key in data if key not in DESTINATION_NAMES)
    return webhooks, ignored


def select_destinations(webhooks: Mapping[str, str], restrict: tuple[str, ...] | None) -> dict[str, str]:
    """Destinations to post to, in a stable order: configured in the secret and allowed by DESTINATIONS."""
    allowed = DESTINATION_NAMES if restrict is None else restrict
    return {name: webhooks[name] for name in DESTINATION_NAMES if name in allowed and name in webhooks}


def fetch_secret_string(settings: Settings) -> str:
    """Powertools caches the value for WEBHOOKS_SECRET_MAX_AGE_SECONDS, so a warm container asks rarely."""
    if not settings.webhooks_secret_name:
        raise ConfigurationError("WEBHOOKS_SECRET_NAME is not set: expected the name or ARN of the secret")

    try:
        return get_secret(settings.webhooks_secret_name, max_age=settings.secret_max_age_seconds)
    except GetParameterError as exc:
        # The SDK's message names the secret and the error code; it never carries the secret's value.
        raise ConfigurationError(
            f"secret {settings.webhooks_secret_name!r} could not be read: {exc}"
        ) from None
