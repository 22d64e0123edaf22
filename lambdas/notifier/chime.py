"""Amazon Chime incoming webhook: ``{"Content": "/md ..."}``, a markdown table, at most 4,096 characters.

Amazon Chime ended on 2026-02-20; the format is kept so existing bridges that still speak it keep working.
"""

from __future__ import annotations

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

CHIME_MAX_CONTENT = 4096
REASON_MIN, REASON_MAX = 160, 1000  # one failed date's reason in a run's list (see reason_limit)
ERROR_ROOM = 1200  # kept for a run's error when it also lists failures


def _cell(value: str) -> str:
    # A pipe ends a table cell and a newline ends the row.
    return " ".join(value.replace("|", "\\|").split())


def _code(value: str) -> str:
    return f"`{value.replace('`', chr(39))}`"


_CODE_FIELDS = {"Job", "Cluster", "Step"}  # identifiers with underscores: keep them out of italics


def _failure_line(group: FailedDates, limit: int) -> str:
    count = f" ({group.count} dates)" if group.count > 1 else ""
    reason = truncate_middle(group.reason.replace("`", "'"), limit, inline=True)
    return f"- {_code(group.dates)}{count}: {reason}"


def _failures(notification: Notification, room: int) -> str:
    heading = f"\n\n**{failures_heading(notification)}**\n"
    url = notification.more_url

    def more(count: int) -> str:
        return f"- {more_failed(count)}" + (f": [Airflow run]({url})" if url else "")

    budget = room - len(heading)
    limit = reason_limit(notification, budget, minimum=REASON_MIN, maximum=REASON_MAX)
    parts = fit_failures(notification, lambda group: _failure_line(group, limit), more, budget, measure=len)
    return heading + "\n".join(parts[0]) if parts else ""


def render_chime(notification: Notification, *, max_chars: int = CHIME_MAX_CONTENT) -> dict[str, Any]:
    lines = [f"/md ### {_cell(notification.title)}", "| Field | Value |", "|---|---|"]
    for label, value in notification.facts():
        shown = _code(value) if label in _CODE_FIELDS else value
        lines.append(f"| {label} | {_cell(shown)} |")
    if notification.links:
        links = " · ".join(f"[{link.label}]({link.url})" for link in notification.links)
        lines.append(f"| Links | {links} |")
    content = "\n".join(lines)
    if notification.failures:  # a run's failed dates; a run that failed as a whole has only its error
        reserve = ERROR_ROOM if notification.error else 0
        content += _failures(notification, max_chars - len(content) - reserve)
    if notification.error:
        opening, closing = "\n\n**Error**\n```\n", "\n```"
        room = max_chars - len(content) - len(opening) - len(closing)
        if room > 0:
            error = truncate_middle(notification.error.replace("```", "'''"), room)
            content = f"{content}{opening}{error}{closing}"
    return {"Content": content[:max_chars]}
