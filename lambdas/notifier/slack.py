"""Slack incoming webhook: ``text`` (the notification fallback) plus Block Kit ``blocks``."""

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

HEADER_MAX = 150  # plain_text in a header block
FIELD_MAX = 2000  # one section field
SECTION_TEXT_MAX = 3000  # a section's text
MAX_FIELDS = 10  # fields of one section
FAILURE_SECTIONS = 3  # sections a run's failed dates may fill (a message holds at most 50 blocks)
REASON_MIN, REASON_MAX = 200, 1500  # one failed date's reason (see reason_limit)


def escape(text: str) -> str:
    """Slack mrkdwn gives &, < and > their own meaning (links, mentions); nothing else needs escaping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure_line(group: FailedDates, limit: int) -> str:
    count = f" ({group.count} dates)" if group.count > 1 else ""
    reason = truncate_middle(group.reason.replace("`", "'"), limit, inline=True)
    return f"• `{escape(group.dates)}`{count}: {escape(reason)}"


def _failure_sections(notification: Notification) -> list[dict[str, Any]]:
    heading = f"*{escape(failures_heading(notification))}*\n"
    url = notification.more_url

    def more(count: int) -> str:
        return f"• {more_failed(count)}" + (f": <{url}|Airflow run>" if url else "")

    budget = SECTION_TEXT_MAX - len(heading)
    # Escaping can lengthen a reason; the share is taken with room for it, and fit_failures measures the
    # escaped line, so no section can pass its limit.
    limit = reason_limit(notification, budget * FAILURE_SECTIONS * 4 // 5, minimum=REASON_MIN, maximum=REASON_MAX)
    parts = fit_failures(notification, lambda group: _failure_line(group, limit), more, budget, measure=len,
                         chunks=FAILURE_SECTIONS)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": (heading if index == 0 else "") + "\n".join(part)}}
            for index, part in enumerate(parts)]


def render_slack(notification: Notification) -> dict[str, Any]:
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*{label}*\n{escape(value)}", FIELD_MAX)}
        for label, value in notification.facts()
        if label != "Job"  # the header names the job
    ][:MAX_FIELDS]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(notification.title, HEADER_MAX),
                                    "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if notification.failures:
        blocks.extend(_failure_sections(notification))
    if notification.error:
        opening, closing = "*Error*\n```", "```"
        # Escaping lengthens the text, so cut the raw error with room to spare for it, then clip for sure.
        error = escape(truncate_middle(notification.error.replace("```", "'''"),
                                       SECTION_TEXT_MAX - len(opening) - len(closing) - 200))
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": _clip(f"{opening}{error}{closing}", SECTION_TEXT_MAX)}})
    if notification.links:
        links = " · ".join(f"<{link.url}|{escape(link.label)}>" for link in notification.links)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    text = f"{notification.emoji} {notification.job_name} for {notification.job_date}: {notification.status_text}"
    return {"text": escape(text), "blocks": blocks}
