"""Microsoft Teams through a Workflows webhook: a message with one Adaptive Card attachment."""

from __future__ import annotations

import json
from typing import Any

from .message import (
    FailedDates,
    Notification,
    failures_heading,
    fit_failures,
    more_failed,
    reason_limit,
    truncate_middle,
)

ADAPTIVE_CARD_VERSION = "1.4"  # rendered by Teams desktop, web and mobile alike
ERROR_MAX = 4000  # keeps the card far below Teams' ~28 KB message limit
MESSAGE_MAX_BYTES = 24_000  # the whole body, UTF-8: Teams refuses messages over about 28 KB
FAILURES_MAX_BYTES = 12_000  # a run's failed dates, within that
REASON_MIN, REASON_MAX = 200, 2000  # one failed date's reason (see reason_limit)

_COLOR = {"COMPLETED": "Good", "FAILED": "Attention", "SKIPPED": "Warning", "RUNNING": "Accent"}


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _fact(group: FailedDates, limit: int) -> dict[str, str]:
    return {"title": group.label, "value": truncate_middle(group.reason, limit, inline=True)}


def _failure_blocks(notification: Notification, room: int) -> list[dict[str, Any]]:
    url = notification.more_url

    def more(count: int) -> dict[str, str]:
        return {"title": more_failed(count), "value": f"[Airflow run]({url})" if url else "not shown"}

    heading = {"type": "TextBlock", "text": failures_heading(notification), "weight": "Bolder",
               "spacing": "Medium", "wrap": True}
    empty = {"type": "FactSet", "facts": []}
    budget = min(FAILURES_MAX_BYTES, room) - _size(heading) - _size(empty) - 2
    # A share in characters of a budget in bytes: generous for ASCII, and _size keeps the budget exact.
    limit = reason_limit(notification, budget, minimum=REASON_MIN, maximum=REASON_MAX)
    parts = fit_failures(notification, lambda group: _fact(group, limit), more, budget, measure=_size, separator=1)
    return [heading, {"type": "FactSet", "facts": parts[0]}] if parts else []


def render_teams(notification: Notification) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": notification.title, "size": "Large", "weight": "Bolder", "wrap": True,
         "color": "Warning" if notification.display_status else _COLOR.get(notification.status, "Default")},
        {"type": "FactSet",
         "facts": [{"title": label, "value": value} for label, value in notification.facts()]},
    ]
    if notification.error:
        body.append({"type": "TextBlock", "text": "Error", "weight": "Bolder", "spacing": "Medium"})
        body.append({"type": "TextBlock", "text": truncate_middle(notification.error, ERROR_MAX),
                     "wrap": True, "fontType": "Monospace", "color": "Attention"})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if notification.links:
        card["actions"] = [{"type": "Action.OpenUrl", "title": link.label, "url": link.url}
                           for link in notification.links]
    message = {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                         "content": card}],
    }
    if notification.failures:
        # Placed after the facts (before the error); sized against what the card already weighs.
        blocks = _failure_blocks(notification, MESSAGE_MAX_BYTES - _size(message) - 2)
        body[2:2] = blocks
    return message
