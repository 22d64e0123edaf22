"""The neutral message model: what every destination shows, already formatted for people."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
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
T = TypeVar("T")
PARTLY_FAILED = "PARTLY FAILED"  # a run item FAILED with some of its dates completed
PARTLY_FAILED_EMOJI = "⚠️"
RUN_RECORD_TYPE = "run"
MAX_DATE_RANGES = 12  # ranges shown in a run's "Dates"; the rest is counted
MAX_GROUP_RANGES = 10  # ranges shown for the dates that failed with one reason


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class FailedDates:
    """Dates of a run that failed for one reason: ``2020-03-04..2020-03-06, 2020-03-09`` and the reason."""

    dates: str
    count: int
    reason: str

    @property
    def label(self) -> str:
        return self.dates if self.count == 1 else f"{self.dates} ({self.count} dates)"


@dataclass(frozen=True)
class Notification:
    """One job's transition, every value a display string (None when the record did not say).

    A run item (a DAG run over several dates) also fills ``dates``, ``result``, ``failures`` and
    ``failed_count``; ``job_date`` then reads ``2020-03-01..2020-03-31 (31 dates)``.
    """

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
    display_status: str | None = None  # what the reader sees when it differs from status (PARTLY FAILED)
    dates: str | None = None  # a run's dates as compact ranges
    result: str | None = None  # a finished run: "38 of 40 dates completed, 2 failed"
    failures: tuple[FailedDates, ...] = ()  # a run's failed dates grouped by reason, earliest first
    failed_count: int = 0  # every failed date of the run, with or without a reason in ``failures``
    more_url: str | None = None  # where the failures a message has no room for can be read

    @property
    def shown_status(self) -> str:
        return self.display_status or self.status

    @property
    def is_run(self) -> bool:
        return self.dates is not None

    @property
    def title(self) -> str:
        return f"{self.emoji} {self.shown_status}: {self.job_name} for {self.job_date}"

    @property
    def status_text(self) -> str:
        """``FAILED (try 2, was RUNNING)``: the status and what a reader needs to place it."""
        notes = []
        if self.try_number:
            notes.append(f"try {self.try_number}")
        if self.previous_status:
            notes.append(f"was {self.previous_status}")
        return f"{self.shown_status} ({', '.join(notes)})" if notes else self.shown_status

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) rows in display order; missing values are left out, not shown as blanks."""
        rows = [
            ("Job", self.job_name),
            ("Dates", self.dates) if self.is_run else ("Data date", self.job_date),
            ("Status", f"{self.emoji} {self.status_text}"),
            ("Result", self.result),
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


def is_run_item(image: Mapping[str, Any]) -> bool:
    """A run-level item (``record_type`` = "run"): one DAG run over several dates."""
    return str(image.get("record_type") or "").strip().lower() == RUN_RECORD_TYPE


def reported_by_run_item(image: Mapping[str, Any]) -> bool:
    """A date's record that names its run item (``run_item``): the run item's messages report it."""
    return not is_run_item(image) and bool(_text(image.get("run_item")))


def _as_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def date_ranges(dates: Iterable[Any]) -> list[tuple[str, str]]:
    """Sorted, de-duplicated dates as (first, last) runs of consecutive days; a non-date is its own run."""
    values = sorted({text for value in dates if (text := _text(value))})
    ranges: list[tuple[str, str]] = []
    previous: date | None = None
    for value in values:
        day = _as_date(value)
        if ranges and day is not None and previous is not None and day == previous + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], value)
        else:
            ranges.append((value, value))
        previous = day
    return ranges


def format_ranges(dates: Iterable[Any], max_ranges: int | None = None) -> str:
    """``2020-03-01..2020-03-10, 2020-03-12..2020-03-31``; beyond ``max_ranges``: ``… and 7 more dates``."""
    ranges = date_ranges(dates)
    shown = ranges if max_ranges is None else ranges[:max_ranges]
    text = ", ".join(first if first == last else f"{first}..{last}" for first, last in shown)
    if len(shown) < len(ranges):
        rest = sum(_span(first, last) for first, last in ranges[len(shown):])
        text += f", … and {rest} more date{'s' if rest != 1 else ''}"
    return text


def _span(first: str, last: str) -> int:
    start, end = _as_date(first), _as_date(last)
    return (end - start).days + 1 if start and end else 1


def _count(value: Any) -> int | None:
    number = _as_decimal(value)
    return int(number) if number is not None and number == number.to_integral_value() and number >= 0 else None


def _dates_of(image: Mapping[str, Any]) -> list[str]:
    dates = image.get("dates")
    if isinstance(dates, list | tuple | set | frozenset):
        return sorted({text for value in dates if (text := _text(value))})
    return []


def group_failures(failures: Any, secrets: Iterable[str] = ()) -> tuple[FailedDates, ...]:
    """{date: reason} -> the dates of each distinct reason, as ranges, ordered by each group's first date."""
    if not isinstance(failures, Mapping):
        return ()
    secret_values = list(secrets)
    by_reason: dict[str, list[str]] = {}
    for day, reason in failures.items():
        day_text = _text(day)
        if not day_text:
            continue
        text = scrub(" ".join(str(reason if reason is not None else "").split()), secret_values)
        by_reason.setdefault(text or "no reason recorded", []).append(day_text)
    groups = [(min(days), days, reason) for reason, days in by_reason.items()]
    return tuple(FailedDates(format_ranges(days, MAX_GROUP_RANGES), len(set(days)), reason)
                 for _, days, reason in sorted(groups))


def fit_failures(
    notification: Notification,
    line: Callable[[FailedDates], T],
    more: Callable[[int], T],
    budget: int,
    *,
    measure: Callable[[T], int],
    separator: int = 1,
    chunks: int = 1,
) -> list[list[T]]:
    """The failure lines that fit, earliest first, in up to ``chunks`` parts of at most ``budget`` each.

    When some failed dates are left out, the last part ends with ``more(n)`` (n = the dates left out, those
    without a recorded reason included). ``measure`` sizes a line in the destination's own unit and
    ``separator`` is the size of what joins two lines, so every part's lines measure at most ``budget``.
    """
    total = max(notification.failed_count, sum(group.count for group in notification.failures))
    parts: list[list[T]] = [[]]
    used = shown = 0

    def fits(cost: int, reserve: int) -> bool:
        return used + cost + (separator if parts[-1] else 0) + reserve <= budget

    for group in notification.failures:
        text = line(group)
        after = total - shown - group.count
        placed = False
        while True:
            last = len(parts) >= chunks
            # The last part keeps room for the "and N more" line, unless this line leaves nothing out.
            reserve = measure(more(after)) + separator if last and after > 0 else 0
            if fits(measure(text), reserve):
                used += measure(text) + (separator if parts[-1] else 0)
                parts[-1].append(text)
                placed = True
                break
            if last or not parts[-1]:
                break
            parts.append([])
            used = 0
        if not placed:
            break
        shown += group.count
    left = total - shown
    if left > 0:
        tail = more(left)
        if not fits(measure(tail), 0) and len(parts) < chunks:
            parts.append([])
            used = 0
        if fits(measure(tail), 0):
            used += measure(tail) + (separator if parts[-1] else 0)
            parts[-1].append(tail)
    return [part for part in parts if part]


def more_failed(count: int) -> str:
    """``… and 12 more failed dates``: what a message says about the failures it has no room for."""
    return f"… and {count:,} more failed date{'s' if count != 1 else ''}"


def reason_limit(notification: Notification, budget: int, *, minimum: int, maximum: int) -> int:
    """How long each failure's reason may be: an equal share of ``budget``, within [minimum, maximum].

    Few failures keep their reasons whole (up to ``maximum``); many are cut shorter so that more of them
    are named before "and N more"."""
    share = budget // max(len(notification.failures), 1) - 60  # the dates and the list markup
    return max(minimum, min(maximum, share))


def failures_heading(notification: Notification) -> str:
    return f"Failed dates ({notification.failed_count:,})"


def _run_fields(image: Mapping[str, Any], status: str, airflow: str | None,
                secrets: Iterable[str]) -> dict[str, Any]:
    """The fields only a run item has (see covid19_lake.run_records)."""
    dates = _dates_of(image)
    count = _count(image.get("date_count")) or len(dates)
    first_last = f"{dates[0]}..{dates[-1]}" if len(dates) > 1 else (dates[0] if dates else None)
    job_date = _text(image.get("job_date")) or first_last or MISSING
    noun = "date" if count == 1 else "dates"
    failures = group_failures(image.get("failures"), secrets)
    failed = _count(image.get("dates_failed"))
    failed = failed if failed is not None else sum(group.count for group in failures)
    completed = _count(image.get("dates_completed"))
    result = None
    if status in {"COMPLETED", "FAILED"} and completed is not None:
        result = f"{completed:,} of {count:,} {noun} completed" + (f", {failed:,} failed" if failed else "")
    partly = status == "FAILED" and bool(completed)
    job = _text(image.get("job")) or (_text(image.get("job_name")) or MISSING).split("#run:")[0]
    return {
        "job_name": job,
        "job_date": f"{first_last or job_date} ({count:,} {noun})" if count else job_date,
        "dates": (format_ranges(dates, MAX_DATE_RANGES) if dates else job_date) + f" ({count:,} {noun})",
        "display_status": PARTLY_FAILED if partly else None,
        "emoji": PARTLY_FAILED_EMOJI if partly else STATUS_EMOJI.get(status, UNKNOWN_EMOJI),
        "result": result,
        "failures": failures if status == "FAILED" else (),
        "failed_count": failed if status == "FAILED" else 0,
        "more_url": airflow,
    }


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
    secret_values = list(secrets)
    fields: dict[str, Any] = {
        "job_name": _text(image.get("job_name")) or MISSING,
        "job_date": _text(image.get("job_date")) or MISSING,
        "emoji": STATUS_EMOJI.get(status, UNKNOWN_EMOJI),
    }
    if is_run_item(image):
        fields.update(_run_fields(image, status, airflow, secret_values))
    return Notification(
        status=status,
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
        error=scrub(error, secret_values),
        links=tuple(links),
        **fields,
    )


def truncate_middle(text: str, limit: int, *, inline: bool = False) -> str:
    """Keep the head (the exception) and the tail (the root cause) of a long error; mark the cut.

    ``inline`` marks the cut without line breaks, for text that must stay on one line (a list item)."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    # The marker's length depends on the count it shows: settle the count before cutting.
    cut = len(text) - limit
    while True:
        marker = f" … [{cut} characters cut] … " if inline else f"\n… [{cut} characters cut] …\n"
        room = limit - len(marker)
        if len(text) - room == cut or room < 20:
            break
        cut = len(text) - room
    if room < 20:
        return text[: max(limit - 1, 0)] + "…"
    head = (room * 2) // 3
    tail = room - head
    return text[:head] + marker + text[len(text) - tail:]
