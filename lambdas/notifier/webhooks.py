"""Webhook URLs from Secrets Manager: ``{"chime": url, "slack": url, "teams": url}``, cached per container."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.parameters import GetParameterError, get_secret

from .config import DESTINATION_NAMES, ConfigurationError, Settings


def parse_webhooks(secret_string: Any, *, secret_name: str) -> tuple[dict[str, str], list[str]]:
    """SecretString -> ({destination: url}, ignored key names). Missing or empty keys disable a destination.

    Errors name the secret and the key, never a value: the values are the credentials.
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
        parts = urlsplit(value.strip())
        if parts.scheme not in {"https", "http"} or not parts.netloc:
            raise ConfigurationError(f"secret {secret_name!r}: key {name!r} is not an http(s) URL")
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
