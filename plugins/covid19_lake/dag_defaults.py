"""What every covid19-lake DAG sets the same way."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_ARGS = {
    "owner": "covid19-lake",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}
