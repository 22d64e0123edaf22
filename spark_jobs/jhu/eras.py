"""The header eras of JHU's daily reports, the canonical fields they map to, and the value parsers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F

CANONICAL_FIELDS = (
    "fips", "admin2", "province_state", "country_region", "last_update", "latitude", "longitude",
    "confirmed", "deaths", "recovered", "active", "combined_key", "incident_rate", "case_fatality_ratio",
)
COUNT_FIELDS = ("confirmed", "deaths", "recovered", "active")
DOUBLE_FIELDS = ("latitude", "longitude", "incident_rate", "case_fatality_ratio")
TEXT_FIELDS = ("fips", "admin2", "province_state", "country_region", "last_update", "combined_key")
# Every Last_Update format in the data. CORRECTED makes a non-matching pattern yield null; the value's
# shape picks the pattern (see parse_timestamp), and both slash formats are tried, 4-digit year first.
TIMESTAMP_FORMATS = (
    "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm", "M/d/yyyy H:mm", "M/d/yy H:mm",
)
SLASH_FORMATS = ("M/d/yyyy H:mm", "M/d/yy H:mm")
# The column Spark's CSV reader puts a malformed line in.
CORRUPT = "_corrupt_record"
WHITESPACE = " \t\r\n\u00a0\ufeff"


@dataclass(frozen=True)
class Era:
    """One header layout: its exact column list and where each canonical field comes from."""

    name: str
    columns: tuple[str, ...]
    sources: dict[str, str] = field(hash=False)

    def __post_init__(self) -> None:
        # raw_record rebuilds a quarantined row from the canonical `<field>_raw` columns: every column of
        # the header must be the source of exactly one field.
        if sorted(self.sources.values()) != sorted(self.columns):
            raise ValueError(f"era {self.name}: sources {sorted(self.sources.values())} != columns {self.columns}")

    def source_of(self, canonical: str) -> str | None:
        return self.sources.get(canonical)


_V1 = ("Province/State", "Country/Region", "Last Update", "Confirmed", "Deaths", "Recovered")
_V1_SOURCES = {
    "province_state": "Province/State", "country_region": "Country/Region", "last_update": "Last Update",
    "confirmed": "Confirmed", "deaths": "Deaths", "recovered": "Recovered",
}
_V3 = ("FIPS", "Admin2", "Province_State", "Country_Region", "Last_Update", "Lat", "Long_", "Confirmed",
       "Deaths", "Recovered", "Active", "Combined_Key")
_V3_SOURCES = {
    "fips": "FIPS", "admin2": "Admin2", "province_state": "Province_State", "country_region": "Country_Region",
    "last_update": "Last_Update", "latitude": "Lat", "longitude": "Long_", "confirmed": "Confirmed",
    "deaths": "Deaths", "recovered": "Recovered", "active": "Active", "combined_key": "Combined_Key",
}
ERAS: tuple[Era, ...] = (
    Era("v1_6col", _V1, _V1_SOURCES),
    Era("v2_8col_latlon", (*_V1, "Latitude", "Longitude"),
        {**_V1_SOURCES, "latitude": "Latitude", "longitude": "Longitude"}),
    Era("v3_12col_fips", _V3, _V3_SOURCES),
    Era("v4_14col_incidence_rate", (*_V3, "Incidence_Rate", "Case-Fatality_Ratio"),
        {**_V3_SOURCES, "incident_rate": "Incidence_Rate", "case_fatality_ratio": "Case-Fatality_Ratio"}),
    Era("v5_14col_incident_rate", (*_V3, "Incident_Rate", "Case_Fatality_Ratio"),
        {**_V3_SOURCES, "incident_rate": "Incident_Rate", "case_fatality_ratio": "Case_Fatality_Ratio"}),
)
ERAS_BY_NAME = {era.name: era for era in ERAS}


def detect_era(header_line: str | None) -> Era | None:
    """The era whose header is exactly this line, ignoring a BOM, CR and blanks around each name."""
    if header_line is None:
        return None
    names = tuple(part.strip() for part in header_line.lstrip("\ufeff").strip().split(","))
    return next((era for era in ERAS if era.columns == names), None)


def per_era(value_of: Callable[[Era], Column]) -> Column:
    """CASE era WHEN ... : a value built per header era (from the row's `era` column)."""
    result = None
    for era in ERAS:
        condition, value = F.col("era") == era.name, value_of(era)
        result = F.when(condition, value) if result is None else result.when(condition, value)
    return result


# ------------------------------------------------------------------------------------------- value parsers

def clean(column: Column) -> Column:
    """Trim blanks, tabs, CR/LF and no-break spaces; empty -> null. (btrim: a regex costs 4x as much.)"""
    trimmed = F.btrim(column, F.lit(WHITESPACE))
    return F.when(trimmed != "", trimmed)


def parse_timestamp(raw: Column) -> Column:
    """Pick the format by the value's shape first: a failed parse costs a Java exception per row."""
    return (
        F.when(raw.contains("/"), F.coalesce(*[F.to_timestamp(raw, fmt) for fmt in SLASH_FORMATS]))
        .when(raw.contains("T"), F.to_timestamp(raw, "yyyy-MM-dd'T'HH:mm:ss"))
        .otherwise(F.coalesce(F.to_timestamp(raw, "yyyy-MM-dd HH:mm:ss"), F.to_timestamp(raw, "yyyy-MM-dd HH:mm")))
    )


def parse_whole(raw: Column) -> Column:
    """Whole numbers, `28.0` included; `28.5`, `1,2x` or out of bigint range -> null.

    A non-ANSI cast to bigint truncates `28.5` to 28, so a value with a point must also equal its double.
    """
    value = raw.cast("bigint")
    return F.when(~raw.contains(".") | (raw.cast("double") == value), value)


def parse_double(raw: Column) -> Column:
    """Finite numbers only: the cast would also accept `NaN` and `Infinity`."""
    value = raw.cast("double")
    return F.when(~F.isnan(value) & (F.abs(value) != float("inf")), value)


def is_blank(raw: Column) -> Column:
    """Number cells are not trimmed up front; a blank one is empty, not an error."""
    return F.btrim(raw, F.lit(WHITESPACE)) == ""
