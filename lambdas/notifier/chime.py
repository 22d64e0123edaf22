"""Amazon Chime incoming webhook: ``{"Content": "/md ..."}``, a markdown table, at most 4,096 characters.

Amazon Chime ended on 2026-02-20; the format is kept so existing bridges that still speak it keep working.
"""

from __future__ import annotations

from typing import Any

from .message import Notification, truncate_middle

CHIME_MAX_CONTENT = 4096


def _cell(value: str) -> str:
    # A pipe ends a table cell and a newline ends the row.
    return " ".join(value.replace("|", "\\|").split())


def _code(value: str) -> str:
    return f"`{value.replace('`', chr(39))}`"


_CODE_FIELDS = {"Job", "Cluster", "Step"}  # identifiers with underscores: keep them out of italics


def render_chime(notification: Notification, *, max_chars: int = CHIME_MAX_CONTENT) -> dict[str, Any]:
    lines = [f"/md ### {_cell(notification.title)}", "| Field | Value |", "|---|---|"]
    for label, value in notification.facts():
        shown = _code(value) if label in _CODE_FIELDS else value
        lines.append(f"| {label} | {_cell(shown)} |")
    if notification.links:
        links = " · ".join(f"[{link.label}]({link.url})" for link in notification.links)
        lines.append(f"| Links | {links} |")
    content = "\n".join(lines)
    if notification.error:
        opening, closing = "\n\n**Error**\n```\n", "\n```"
        room = max_chars - len(content) - len(opening) - len(closing)
        if room > 0:
            error = truncate_middle(notification.error.replace("```", "'''"), room)
            content = f"{content}{opening}{error}{closing}"
    return {"Content": content[:max_chars]}
