"""Settings of the notifier, read from the Lambda environment (never from code)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DESTINATION_NAMES: tuple[str, ...] = ("chime", "slack", "teams")
DEPLOYMENT_TARGETS: tuple[str, ...] = ("aws", "local")


class ConfigurationError(ValueError):
    """A setting is missing or malformed; the message names the variable and what was expected."""


@dataclass(frozen=True)
class RetryPolicy:
    """How one destination is retried: exponential backoff with full jitter, bounded in count and time."""

    timeout_seconds: float = 5.0
    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 4.0
    retry_after_max_seconds: float = 10.0
    max_total_seconds: float = 20.0


@dataclass(frozen=True)
class Settings:
    webhooks_secret_name: str | None
    destinations: tuple[str, ...] | None  # None: every destination the secret configures
    airflow_base_url: str | None
    console_region: str | None
    idempotency_table_name: str | None
    idempotency_disabled: bool
    idempotency_ttl_seconds: int
    secret_max_age_seconds: int
    retry: RetryPolicy
    deployment_target: str = "aws"  # "local": the embedded local stack, whose webhook sink is loopback http

    @property
    def allow_loopback_http(self) -> bool:
        return self.deployment_target == "local"


def _number(environ: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r}: expected a number (seconds or a count)") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={raw!r}: expected a number >= {minimum}")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in {"1", "true", "yes", "on", "y", "t"}


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def parse_destinations(raw: str | None) -> tuple[str, ...] | None:
    """``"slack, teams"`` -> ("slack", "teams"); empty -> None (no restriction)."""
    if raw is None or not raw.strip():
        return None
    names = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    unknown = [name for name in names if name not in DESTINATION_NAMES]
    if unknown:
        raise ConfigurationError(
            f"DESTINATIONS={raw!r}: unknown destination(s) {unknown}; expected a comma-separated subset of "
            f"{list(DESTINATION_NAMES)}"
        )
    return names


def parse_deployment_target(raw: str | None) -> str:
    """DEPLOYMENT_TARGET: ``aws`` (the default) or ``local``, as the template's DeploymentTarget says."""
    value = (raw or "").strip().lower() or "aws"
    if value not in DEPLOYMENT_TARGETS:
        raise ConfigurationError(f"DEPLOYMENT_TARGET={raw!r}: expected one of {list(DEPLOYMENT_TARGETS)}")
    return value


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read every setting once; bad values raise ConfigurationError naming the variable."""
    base_url = environ.get("AIRFLOW_BASE_URL", "").strip().rstrip("/") or None
    if base_url and not base_url.startswith(("https://", "http://")):
        raise ConfigurationError(f"AIRFLOW_BASE_URL={base_url!r}: expected an http(s):// URL")
    retry = RetryPolicy(
        timeout_seconds=_number(environ, "HTTP_TIMEOUT_SECONDS", RetryPolicy.timeout_seconds, minimum=0.001),
        max_attempts=int(_number(environ, "HTTP_MAX_ATTEMPTS", RetryPolicy.max_attempts, minimum=1)),
        backoff_base_seconds=_number(
            environ, "HTTP_BACKOFF_BASE_SECONDS", RetryPolicy.backoff_base_seconds, minimum=0
        ),
        backoff_max_seconds=_number(
            environ, "HTTP_BACKOFF_MAX_SECONDS", RetryPolicy.backoff_max_seconds, minimum=0
        ),
        retry_after_max_seconds=_number(
            environ, "HTTP_RETRY_AFTER_MAX_SECONDS", RetryPolicy.retry_after_max_seconds, minimum=0
        ),
        max_total_seconds=_number(
            environ, "HTTP_MAX_TOTAL_SECONDS", RetryPolicy.max_total_seconds, minimum=0.001
        ),
    )
    return Settings(
        webhooks_secret_name=environ.get("WEBHOOKS_SECRET_NAME", "").strip() or None,
        destinations=parse_destinations(environ.get("DESTINATIONS")),
        airflow_base_url=base_url,
        # Lambda sets AWS_REGION; EMR_CONSOLE_REGION is for clusters that live in another region.
        console_region=_first(environ, "EMR_CONSOLE_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
        idempotency_table_name=environ.get("IDEMPOTENCY_TABLE_NAME", "").strip() or None,
        idempotency_disabled=_flag(environ, "POWERTOOLS_IDEMPOTENCY_DISABLED"),
        # A stream keeps records 24 h, so a retried batch can come back that late.
        idempotency_ttl_seconds=int(_number(environ, "IDEMPOTENCY_TTL_SECONDS", 86400, minimum=60)),
        secret_max_age_seconds=int(_number(environ, "WEBHOOKS_SECRET_MAX_AGE_SECONDS", 300, minimum=0)),
        retry=retry,
        deployment_target=parse_deployment_target(environ.get("DEPLOYMENT_TARGET")),
    )
