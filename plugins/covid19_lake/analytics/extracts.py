"""The dashboard's JSON extracts, computed from the analytics views by either engine.

The extract queries are plain SELECTs over the views (same text for Athena and DuckDB); a `Fetch`
turns one into rows of Python values. Shaping rows into JSON documents is pure and engine-agnostic:

    data/meta.json                 what the site shows and when it was built
    data/global.json               the world's daily series
    data/countries.json            the country picker: name, codes, latest totals, file
    data/countries/<slug>.json     one country's daily series, weekly tweets vs cases, top hashtags
    data/locations.json            the latest report day by coordinates (map and table)
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

Row = dict[str, Any]
Fetch = Callable[[str], list[Row]]

DATA_DIR = "data"
HASHTAG_DAYS = 14  # top hashtags of the last N days with tweets, per country

QUERIES = {
    "global": "SELECT * FROM analytics_global_daily ORDER BY report_date",
    "country_daily": "SELECT * FROM analytics_country_daily ORDER BY country_region, report_date",
    "locations": (
        "SELECT combined_key, country_region, province_state, admin2, latitude, longitude, confirmed, deaths, "
        "case_fatality_ratio, report_date FROM analytics_latest_by_location ORDER BY confirmed DESC, combined_key"
    ),
    "weekly": (
        "SELECT * FROM analytics_weekly_tweets_vs_cases "
        "WHERE tweet_count > 0 OR new_cases IS NOT NULL ORDER BY week_start, country_code"
    ),
    "hashtags": (
        "SELECT h.country_code, h.day, h.hashtag_rank, h.hashtag, h.tweet_count "
        "FROM analytics_top_hashtags_daily AS h "
        "JOIN (SELECT country_code, day, DENSE_RANK() OVER (PARTITION BY country_code ORDER BY day DESC) AS age "
        "      FROM (SELECT DISTINCT country_code, day FROM analytics_top_hashtags_daily) AS d) AS recent "
        f"  ON recent.country_code = h.country_code AND recent.day = h.day AND recent.age <= {HASHTAG_DAYS} "
        "ORDER BY h.country_code, h.day, h.hashtag_rank"
    ),
}

SERIES_COLUMNS = ("confirmed", "deaths", "new_cases", "new_deaths", "new_cases_avg_7d", "new_deaths_avg_7d",
                  "case_fatality_ratio")
# Per 100,000 people (JHU's population; null where it has none): country documents only.
PER_100K_COLUMNS = ("confirmed_per_100k", "deaths_per_100k", "new_cases_7d_per_100k")


def plain(value: Any) -> Any:
    """A JSON-ready value: ISO dates, ints for integral numbers, floats rounded to 2 decimals."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else round(float(value), 2)
    if isinstance(value, float):
        return round(value, 2)
    return value


def slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "country"


def series(rows: Iterable[Row], extra: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    """Columnar daily series (dates plus one list per measure) of rows ordered by report_date."""
    rows = list(rows)
    out: dict[str, list[Any]] = {"dates": [plain(r["report_date"]) for r in rows]}
    for column in (*SERIES_COLUMNS, *extra):
        out[column] = [plain(r[column]) for r in rows]
    return out


def country_documents(daily: list[Row], weekly: list[Row], hashtags: list[Row],
                      iso2_by_iso3: dict[str, str]) -> tuple[list[Row], dict[str, Row]]:
    """The picker index and one document per country."""
    by_country: dict[str, list[Row]] = defaultdict(list)
    for row in daily:
        by_country[row["country_region"]].append(row)
    names_by_iso2: dict[str, str] = {}
    index: list[Row] = []
    documents: dict[str, Row] = {}
    used: set[str] = set()
    for name in sorted(by_country):
        rows = by_country[name]
        latest = rows[-1]
        iso3 = latest["iso3"]
        iso2 = iso2_by_iso3.get(iso3) if iso3 else None
        file_slug = slug(name)
        if file_slug in used:
            file_slug = f"{file_slug}-{(iso3 or str(len(used))).lower()}"
        used.add(file_slug)
        if iso2:
            names_by_iso2.setdefault(iso2, name)
        index.append({
            "country": name, "iso3": iso3, "iso2": iso2, "file": f"countries/{file_slug}.json",
            "latest_date": plain(latest["report_date"]), "confirmed": plain(latest["confirmed"]),
            "deaths": plain(latest["deaths"]), "case_fatality_ratio": plain(latest["case_fatality_ratio"]),
        })
        documents[file_slug] = {
            "country": name, "iso3": iso3, "iso2": iso2, "population": plain(latest.get("population")),
            "daily": series(rows, ("cases_corrected", "deaths_corrected", *PER_100K_COLUMNS)),
            "weekly": [], "top_hashtags": {},
        }
    slug_by_name = {entry["country"]: entry["file"].split("/")[-1][:-5] for entry in index}
    for row in weekly:
        name = row["country_region"] or names_by_iso2.get(row["country_code"] or "")
        if name in slug_by_name:
            documents[slug_by_name[name]]["weekly"].append({
                key: plain(row[key]) for key in ("week_start", "tweet_count", "new_cases", "new_deaths",
                                                  "report_days")
            })
    for row in hashtags:
        name = names_by_iso2.get(row["country_code"])
        if name in slug_by_name:
            days = documents[slug_by_name[name]]["top_hashtags"]
            days.setdefault(plain(row["day"]), []).append({"hashtag": row["hashtag"],
                                                           "count": plain(row["tweet_count"])})
    return index, documents


def build(fetch: Fetch, iso2_by_iso3: dict[str, str], engine: str,
          now: datetime | None = None) -> dict[str, Any]:
    """All extracts as {relative path: JSON document}."""
    rows = {name: fetch(sql) for name, sql in QUERIES.items()}
    index, documents = country_documents(rows["country_daily"], rows["weekly"], rows["hashtags"], iso2_by_iso3)
    global_rows = rows["global"]
    locations = rows["locations"]
    files: dict[str, Any] = {
        f"{DATA_DIR}/global.json": series(global_rows, ("countries", "countries_with_corrections")),
        f"{DATA_DIR}/countries.json": index,
        f"{DATA_DIR}/locations.json": {
            "report_date": plain(locations[0]["report_date"]) if locations else None,
            "columns": ["combined_key", "country_region", "province_state", "admin2", "latitude", "longitude",
                        "confirmed", "deaths", "case_fatality_ratio"],
            "rows": [[plain(r[c]) for c in ("combined_key", "country_region", "province_state", "admin2",
                                            "latitude", "longitude", "confirmed", "deaths",
                                            "case_fatality_ratio")] for r in locations],
        },
    }
    for file_slug, document in documents.items():
        files[f"{DATA_DIR}/countries/{file_slug}.json"] = document
    files[f"{DATA_DIR}/meta.json"] = {
        "generated_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "engine": engine,
        "first_report_date": plain(global_rows[0]["report_date"]) if global_rows else None,
        "latest_report_date": plain(global_rows[-1]["report_date"]) if global_rows else None,
        "countries": len(index),
        "locations": len(locations),
        "countries_with_tweets": sum(1 for d in documents.values() if any(w["tweet_count"] for w in d["weekly"])),
    }
    return files


def encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
