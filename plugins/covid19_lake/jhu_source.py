"""JHU CSSE daily reports: where each day's file lives at the source and in the raw lake zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests

from covid19_lake import lake as lake_paths
from covid19_lake.lake import Lake

RAW_PREFIX = "raw/jhu/daily_reports"


class SourceError(RuntimeError):
    """The source answered, but not with a daily report (an HTTP error other than 404)."""


def file_name(day: date) -> str:
    return f"{day:%m-%d-%Y}.csv"


def source_url(base_url: str, day: date) -> str:
    return f"{base_url.rstrip('/')}/{file_name(day)}"


def raw_uri(lake_uri: str, day: date) -> str:
    """The contract: ``{lake}/raw/jhu/daily_reports/report_date=YYYY-MM-DD/MM-DD-YYYY.csv``."""
    return lake_paths.join(lake_uri, RAW_PREFIX, f"report_date={day.isoformat()}", file_name(day))


def fetch(base_url: str, day: date, timeout: float = 60.0) -> bytes | None:
    """The day's file as published, byte for byte, or None when it is not published (yet).

    ``base_url`` is GitHub's raw URL or a ``file://`` directory (an offline mirror).
    """
    url = source_url(base_url, day)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return path.read_bytes() if path.is_file() else None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"JHU source URL must be http(s):// or file://, got {base_url!r}")
    response = requests.get(url, timeout=timeout)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise SourceError(f"GET {url} answered HTTP {response.status_code}; expected 200 or 404")
    return response.content


@dataclass(frozen=True)
class LandResult:
    report_date: str
    uri: str
    status: str  # "landed" | "present" | "not_published"
    size: int = 0


def land(lake: Lake, lake_uri: str, base_url: str, day: date, refresh: bool = False) -> LandResult:
    """Copy the day's source file into the raw zone unchanged; a file already there is kept."""
    target = raw_uri(lake_uri, day)
    if not refresh and lake.exists(target):
        return LandResult(day.isoformat(), target, "present")
    data = fetch(base_url, day)
    if data is None:
        return LandResult(day.isoformat(), target, "not_published")
    lake.write_bytes(target, data)
    return LandResult(day.isoformat(), target, "landed", len(data))


def date_range(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"end_date {end} is before start_date {start}")
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
