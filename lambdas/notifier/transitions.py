"""Which stream records are real job-status transitions (and so deserve exactly one message)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

_DESERIALIZER = TypeDeserializer()


class MalformedRecordError(ValueError):
    """A stream record cannot be read; the message names the event id and the field."""


@dataclass(frozen=True)
class Transition:
    event_id: str
    event_name: str  # INSERT or MODIFY
    previous_status: str | None  # None for an INSERT
    status: str | None  # None when the item carries no status
    image: dict[str, Any]  # the deserialized NewImage

    @property
    def idempotency_key(self) -> str:
        """Names this transition across redeliveries of the same stream record.

        The job key, status and ``version`` name the transition itself (a writer bumps ``version`` on every
        write); without a version the stream's eventID, which a retried batch repeats, is the next best.
        """
        version = self.image.get("version")
        if version is not None:
            return f"{self.image.get('job_date')}|{self.image.get('job_name')}|{self.status}|v{version}"
        return f"event|{self.event_id}"


def deserialize_image(image: Mapping[str, Any] | None, *, event_id: str, field: str) -> dict[str, Any] | None:
    """DynamoDB JSON (``{"status": {"S": "RUNNING"}}``) -> plain Python values; numbers become Decimal."""
    if image is None:
        return None
    if not isinstance(image, Mapping):
        raise MalformedRecordError(
            f"record {event_id}: dynamodb.{field} is {type(image).__name__}, expected a map"
        )
    out: dict[str, Any] = {}
    for name, value in image.items():
        try:
            out[name] = _DESERIALIZER.deserialize(value)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise MalformedRecordError(
                f"record {event_id}: dynamodb.{field}.{name} is not DynamoDB JSON ({exc})"
            ) from None
    return out


def normalize_status(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    return text or None


def _required_image(dynamodb: Mapping[str, Any], field: str, event_id: str, event_name: str) -> dict[str, Any]:
    image = deserialize_image(dynamodb.get(field), event_id=event_id, field=field)
    if image is None:
        raise MalformedRecordError(
            f"record {event_id}: {event_name} without dynamodb.{field}; the stream view type must be "
            "NEW_AND_OLD_IMAGES"
        )
    return image


def detect_transition(record: Mapping[str, Any]) -> Transition | None:
    """The transition a stream record carries, or None when nothing worth a message happened.

    INSERT always counts; MODIFY counts only when ``status`` changed (attempt history, timings, version and
    the like are metadata); REMOVE never counts. A record whose images are missing cannot be judged: that
    is a stream configured without NEW_AND_OLD_IMAGES, reported as an error rather than silently dropped.
    """
    event_id = str(record.get("eventID") or "?")
    event_name = str(record.get("eventName") or "")
    if event_name == "REMOVE":
        return None
    if event_name not in {"INSERT", "MODIFY"}:
        raise MalformedRecordError(
            f"record {event_id}: eventName={event_name!r}, expected INSERT, MODIFY or REMOVE"
        )
    dynamodb = record.get("dynamodb")
    if not isinstance(dynamodb, Mapping):
        raise MalformedRecordError(f"record {event_id}: no 'dynamodb' section")
    new_image = _required_image(dynamodb, "NewImage", event_id, event_name)
    status = normalize_status(new_image.get("status"))
    if event_name == "INSERT":
        return Transition(event_id, event_name, None, status, new_image)
    old_image = _required_image(dynamodb, "OldImage", event_id, event_name)
    previous = normalize_status(old_image.get("status"))
    if previous == status:
        return None
    return Transition(event_id, event_name, previous, status, new_image)
