"""Microsoft Teams through a Workflows webhook: a message with one Adaptive Card attachment."""

from __future__ import annotations

from typing import Any

from .message import Notification, truncate_middle

ADAPTIVE_CARD_VERSION = "1.4"  # rendered by Teams desktop, web and mobile alike
ERROR_MAX = 4000  # keeps the card far below Teams' ~28 KB message limit

_COLOR = {"COMPLETED": "Good", "FAILED": "Attention", "SKIPPED": "Warning", "RUNNING": "Accent"}


def render_teams(notification: Notification) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": notification.title, "size": "Large", "weight": "Bolder", "wrap": True,
         "color": _COLOR.get(notification.status, "Default")},
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
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                         "content": card}],
    }
