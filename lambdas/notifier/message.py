"""The neutral message model: what every destination shows, already formatted for people."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from .transitions import Transition

STATUS_EMOJI: dict[str, str] = {
    "SUBMITTED": "📤",
    "RUNNING": "🏃",
    "COMPLETED": "✅",
    "FAILED": "❌",
    "SKIPPED": "⏭️",
}
UNKNOWN_EMOJI = "❔"
UNKNOWN_STATUS = "UNKNOWN"
MISSING = "unknown"


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Notification:
    """One job's transition, every value a display string (None when the record did not say)."""

    job_name: str
    job_date: str
    status: str
    emoji: str
    previous_status: str | None
    try_number: str | None
    cluster_id: str | None
    step_id: str | None
    submitted_at: str | None
    started_at: str | None
    ended_at: str | None
    duration: str | None
    rows_written: str | None
    rows_quarantined: str | None
    error: str | None
    links: tuple[Link, ...]

    @property
    def title(self) -> str:
        return f"{self.emoji} {self.status}: {self.job_name} for {self.job_date}"

    @property
    def status_text(self) -> str:
        """``FAILED (try 2, was RUNNING)``: the status and what a reader needs to place it."""
        notes = []
        if self.try_number:
            notes.append(f"try {self.try_number}")
        if self.previous_status:
            notes.append(f"was {self.previous_status}")
        return f"{self.status} ({', '.join(notes)})" if notes else self.status

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) rows in display order; missing values are left out, not shown as blanks."""
        rows = [
            ("Job", self.job_name),
            ("Data date", self.job_date),
            ("Status", f"{self.emoji} {self.status_text}"),
            ("Duration", self.duration),
            ("Rows written", self.rows_written),
            ("Rows quarantined", self.rows_quarantined),
            ("Cluster", self.cluster_id),
            ("Step", self.step_id),
            ("Submitted", self.submitted_at),
            ("Started", self.started_at),
            ("Ended", self.ended_at),
        ]
        return [(label, value) for label, value in rows if value]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return _decimal_text(value)
    text = str(value).strip()
    return text or None


def _decimal_text(value: Decimal) -> str:
    return str(int(value)) if value == value.to_integral_value() else str(value.normalize())


def _as_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def format_count(value: Any) -> str | None:
    """1234567 -> ``1,234,567``; a value that is not a number is shown as given, never dropped."""
    number = _as_decimal(value)
    if number is None:
        return _text(value)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number:,}"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    # The job table writes UTC; a timestamp without an offset is read as UTC, not as local time.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_time(value: Any) -> str | None:
    """Any ISO 8601 timestamp -> ``2024-03-02T06:01:02Z``; unparsable text is shown as given."""
    parsed = parse_time(value)
    if parsed is None:
        return _text(value)
    return parsed.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: Any) -> str | None:
    """3725 -> ``1h 02m 05s``; 42.4 -> ``42s``."""
    number = _as_decimal(seconds)
    if number is None or number < 0:
        return _text(seconds)
    total = int(number.to_integral_value())
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def job_duration(image: Mapping[str, Any]) -> str | None:
    """``duration_seconds`` when recorded, else ended_at - started_at when both are known."""
    if image.get("duration_seconds") is not None:
        return format_duration(image["duration_seconds"])
    started, ended = parse_time(image.get("started_at")), parse_time(image.get("ended_at"))
    if started and ended and ended >= started:
        return format_duration((ended - started).total_seconds())
    return None


def airflow_run_url(base_url: str | None, dag_id: Any, run_id: Any) -> str | None:
    """Airflow 3 UI: ``{base}/dags/{dag_id}/runs/{run_id}``; run ids carry ``:`` and ``+``, so quote them."""
    dag, run = _text(dag_id), _text(run_id)
    if not (base_url and dag and run):
        return None
    return f"{base_url}/dags/{quote(dag, safe='')}/runs/{quote(run, safe='')}"


def emr_cluster_url(region: str | None, cluster_id: Any) -> str | None:
    cluster = _text(cluster_id)
    if not (region and cluster):
        return None
    region_q, cluster_q = quote(region, safe=""), quote(cluster, safe="")
    return (
        f"https://{region_q}.console.aws.amazon.com/emr/home?region={region_q}#/clusterDetails/{cluster_q}"
    )


# Free text (mostly ``error``) comes from Spark and boto3 messages and may quote a credential: mask the
# shapes a secret takes, plus every value the caller knows to be secret (the webhook URLs themselves).
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1***@"),
    (
        re.compile(
            r"(?i)([?&](?:sig|signature|token|access_token|password|passwd|pwd|secret|key|api_key|apikey|code|"
            r"x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s#\"']+"
        ),
        r"\1***",
    ),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "***"),
    (re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"), "***"),
    (re.compile(r"https://hooks\.slack\.com/\S+"), "https://hooks.slack.com/***"),
    (re.compile(r"(?i)https://[\w.-]*(?:webhook\.office\.com|logic\.azure\.com|environment\.api\.powerplatform\.com)"
                r"[^\s\"'<>]*"), "https://***"),
    (
        re.compile(r"(?i)(aws_secret_access_key|secret_access_key|password|passwd|token)(\s*[=:]\s*)\S+"),
        r"\1\2***",
    ),
)


def scrub(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """Mask credentials in free text before it leaves the function (message or log)."""
    if not text:
        return text
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def build_notification(
    transition: Transition,
    *,
    airflow_base_url: str | None,
    console_region: str | None,
    secrets: Iterable[str] = (),
) -> Notification:
    """Everything a destination shows; no attribute of the item is required."""
    image = transition.image
    status = transition.status or UNKNOWN_STATUS
    links = []
    airflow = airflow_run_url(airflow_base_url, image.get("dag_id"), image.get("run_id"))
    if airflow:
        links.append(Link("Airflow run", airflow))
    emr = emr_cluster_url(console_region, image.get("cluster_id"))
    if emr:
        links.append(Link("EMR cluster and steps", emr))
    error = _text(image.get("error")) if status == "FAILED" else None
    return Notification(
        job_name=_text(image.get("job_name")) or MISSING,
        job_date=_text(image.get("job_date")) or MISSING,
        status=status,
        emoji=STATUS_EMOJI.get(status, UNKNOWN_EMOJI),
        previous_status=transition.previous_status,
        try_number=_text(image.get("try_number")),
        cluster_id=_text(image.get("cluster_id")),
        step_id=_text(image.get("step_id")),
        submitted_at=format_time(image.get("submitted_at")),
        started_at=format_time(image.get("started_at")),
        ended_at=format_time(image.get("ended_at")),
        duration=job_duration(image),
        rows_written=format_count(image.get("rows_written")),
        rows_quarantined=format_count(image.get("rows_quarantined")),
        error=scrub(error, secrets),
        links=tuple(links),
    )


def truncate_middle(text: str, limit: int) -> str:
    """Keep the head (the exception) and the tail (the root cause) of a long error; mark the cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    # The marker's length depends on the count it shows: settle the count before cutting.
    cut = len(text) - limit
    while True:
        marker = f"\n… [{cut} characters cut] …\n"
        room = limit - len(marker)
        if len(text) - room == cut or room < 20:
            break
        cut = len(text) - room
    if room < 20:
        return text[: max(limit - 1, 0)] + "…"
    head = (room * 2) // 3
    tail = room - head
    return text[:head] + marker + text[len(text) - tail:]
