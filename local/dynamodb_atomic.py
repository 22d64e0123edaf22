"""DynamoDB's per-item atomicity for moto's in-memory backend, as the local stack serves it.

DynamoDB checks a write's condition and applies the write atomically, and numbers stream records without
gaps or repeats. moto's backend does neither under concurrent requests: two conditional puts can both pass
`attribute_not_exists`, and two stream records can get the same sequence number (it is computed from the
shard's length before the append), which makes a stream reader skip or repeat a record. The local stack's
server answers requests on many threads (and the JHU backfill writes its per-date records in parallel), so
every write goes through one lock here. Reads stay unlocked.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

WRITE_METHODS = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
WRITE_LOCK = threading.RLock()
_PATCHED_MARK = "_covid19_lake_serialized"


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with WRITE_LOCK:
            return method(*args, **kwargs)

    setattr(locked, _PATCHED_MARK, True)
    return locked


def serialize_dynamodb_writes() -> None:
    """Wrap moto's DynamoDB write methods in one lock. Idempotent."""
    from moto.dynamodb.models import DynamoDBBackend

    with WRITE_LOCK:
        for name in WRITE_METHODS:
            method = getattr(DynamoDBBackend, name, None)
            if method is not None and not getattr(method, _PATCHED_MARK, False):
                setattr(DynamoDBBackend, name, _serialized(method))
