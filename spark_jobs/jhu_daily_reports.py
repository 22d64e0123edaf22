"""JHU CSSE daily reports: raw CSVs of five header eras -> one typed, deduplicated, partitioned Parquet table.

    spark-submit spark_jobs/jhu_daily_reports.py --lake s3://bucket/prefix \
        --start-date 2020-01-22 --end-date 2021-05-30 [--only-dates D1,D2] \
        [--country-mapping s3://.../jhu_country_mapping.csv] [--summary-uri s3://.../summary.json]

Reads   {lake}/raw/jhu/daily_reports/report_date=YYYY-MM-DD/MM-DD-YYYY.csv
Writes  {lake}/processed/jhu_daily_reports/report_date=YYYY-MM-DD/*.parquet   (contract schema)
        {lake}/quarantine/jhu_daily_reports/report_date=YYYY-MM-DD/*.parquet  (source_file, raw_record, reason)
        {lake}/quarantine/jhu_field_issues/report_date=YYYY-MM-DD/*.parquet   (source_file, line, field,
                                                                              original_value, reason)

All file-system access goes through Hadoop's FileSystem API in the JVM, so the same code runs against EMRFS on
EMR and the local file system in tests. The rules (eras, country naming, duplicates, checks) are documented in
docs/jhu-normalization.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from urllib.parse import urlparse

from py4j.java_gateway import JavaObject
from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from spark_common import build_spark_session, write_text

JOB_NAME = "jhu_daily_reports"
DEFAULT_MAPPING = Path(__file__).resolve().parent / "reference" / "jhu_country_mapping.csv"
RAW_PREFIX = "raw/jhu/daily_reports"
PROCESSED_PREFIX = "processed/jhu_daily_reports"
QUARANTINE_PREFIX = "quarantine/jhu_daily_reports"
FIELD_ISSUES_PREFIX = "quarantine/jhu_field_issues"

# The mapping table's province_state column: empty keeps the file's province, a name replaces it, and this
# token clears it (early files put `Taiwan` / `Cruise Ship` there, the time series has no province).
CLEAR_PROVINCE = "<none>"

CANONICAL_FIELDS = (
    "fips", "admin2", "province_state", "country_region", "last_update", "latitude", "longitude",
    "confirmed", "deaths", "recovered", "active", "combined_key", "incident_rate", "case_fatality_ratio",
)
COUNT_FIELDS = ("confirmed", "deaths", "recovered", "active")
DOUBLE_FIELDS = ("latitude", "longitude", "incident_rate", "case_fatality_ratio")
# Every Last_Update format in the data. CORRECTED makes a non-matching pattern yield null; the value's
# shape picks the pattern (see _parse_timestamp), and both slash formats are tried, 4-digit year first.
TIMESTAMP_FORMATS = (
    "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm", "M/d/yyyy H:mm", "M/d/yy H:mm",
)
SLASH_FORMATS = ("M/d/yyyy H:mm", "M/d/yy H:mm")
CORRUPT = "_corrupt_record"

OUTPUT_COLUMNS = (
    "report_date", "country_region", "province_state", "admin2", "fips", "iso3", "combined_key", "last_update",
    "latitude", "longitude", "confirmed", "deaths", "recovered", "active", "incident_rate",
    "case_fatality_ratio", "source_file",
)
QUARANTINE_COLUMNS = ("report_date", "source_file", "raw_record", "reason")
FIELD_ISSUE_COLUMNS = ("report_date", "source_file", "line", "field", "original_value", "reason")
KEY_COLUMNS = ("report_date", "country_region", "province_state", "admin2")

# Columns that are (nearly) unique within a date: a Parquet dictionary only costs hashing every value, and
# with snappy the files come out the same size (110 MB against 109 MB for the 495 dates, measured).
HIGH_CARDINALITY_COLUMNS = ("admin2", "fips", "combined_key", "latitude", "longitude", "confirmed", "deaths",
                            "recovered", "active", "incident_rate", "case_fatality_ratio")
PROCESSED_WRITE_OPTIONS = {f"parquet.enable.dictionary#{name}": "false" for name in HIGH_CARDINALITY_COLUMNS}

KEPT, QUARANTINED, EXACT_DUPLICATE, KEY_DUPLICATE = "kept", "quarantined", "exact_duplicate", "key_duplicate"
COUNTERS = ("rows_read", "rows_written", "rows_quarantined", "exact_duplicates_dropped", "key_duplicates_resolved")
# Rows written with a nulled field, and the findings (one per field): not part of rows_read's identity.
FIELD_COUNTERS = ("rows_with_field_issues", "field_issues")


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
TEXT_FIELDS = ("fips", "admin2", "province_state", "country_region", "last_update", "combined_key")
WHITESPACE = " \t\r\n\u00a0\ufeff"


# --------------------------------------------------------------------------------------------- small helpers

def detect_era(header_line: str | None) -> Era | None:
    """The era whose header is exactly this line, ignoring a BOM, CR and blanks around each name."""
    if header_line is None:
        return None
    names = tuple(part.strip() for part in header_line.lstrip("\ufeff").strip().split(","))
    return next((era for era in ERAS if era.columns == names), None)


def normalize_lake_uri(lake: str) -> str:
    """`s3://b/p` and `file:///x` stay; a plain path becomes an absolute file:// URI."""
    lake = lake.rstrip("/") or "/"
    if urlparse(lake).scheme:
        return lake
    return Path(lake).resolve().as_uri()


def raw_file_uri(lake: str, day: dt.date) -> str:
    return f"{lake}/{RAW_PREFIX}/report_date={day.isoformat()}/{day.strftime('%m-%d-%Y')}.csv"


def requested_dates(start: dt.date, end: dt.date, only: Sequence[dt.date] | None) -> list[dt.date]:
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    if only is None:
        return days
    wanted = set(only)
    return [day for day in days if day in wanted]


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from exc


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=JOB_NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="s3://bucket[/prefix], file:///dir or a local path")
    parser.add_argument("--start-date", required=True, type=parse_date)
    parser.add_argument("--end-date", required=True, type=parse_date)
    parser.add_argument("--only-dates", type=lambda s: [parse_date(p) for p in s.split(",") if p.strip()],
                        help="comma-separated dates inside the range; only these are processed")
    parser.add_argument("--country-mapping", default=DEFAULT_MAPPING.as_uri())
    parser.add_argument("--summary-uri")
    args = parser.parse_args(argv)
    if args.end_date < args.start_date:
        parser.error(f"--end-date {args.end_date} is before --start-date {args.start_date}")
    outside = [d.isoformat() for d in args.only_dates or [] if not args.start_date <= d <= args.end_date]
    if outside:
        parser.error(f"--only-dates outside {args.start_date}..{args.end_date}: {', '.join(outside)}")
    args.lake = normalize_lake_uri(args.lake)
    args.country_mapping = (args.country_mapping if urlparse(args.country_mapping).scheme
                            else Path(args.country_mapping).resolve().as_uri())
    return args


# --------------------------------------------------------------------------------- Hadoop FileSystem access

class HadoopFs:
    """The few file operations the job needs, through Hadoop's FileSystem of one URI (S3/EMRFS, HDFS, local).

    The FileSystem and the Path class are looked up once: every py4j call is a round trip.
    """

    def __init__(self, spark: SparkSession, uri: str) -> None:
        self._jvm = spark._jvm
        self._path = spark._jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(uri).getFileSystem(spark._jsc.hadoopConfiguration())

    def _open(self, uri: str, what: str) -> JavaObject:
        """The file's input stream; FileNotFoundError naming `what` when it does not exist."""
        try:
            return self.fs.open(self._path(uri))
        except Py4JJavaError as exc:
            if exc.java_exception.getClass().getName() == "java.io.FileNotFoundException":
                raise FileNotFoundError(f"{what} not found: {uri}") from None
            raise

    def first_line(self, uri: str) -> str | None:
        """First line of a raw file (None when empty); FileNotFoundError when it does not exist."""
        stream = self._open(uri, "raw file")
        reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
        try:
            return reader.readLine()
        finally:
            reader.close()

    def read_text(self, uri: str, what: str = "file") -> str:
        """A whole small UTF-8 file; FileNotFoundError naming `what` when it does not exist."""
        stream = self._open(uri, what)
        try:
            return self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()

    def delete_dir(self, uri: str) -> None:
        """Recursive delete; a missing directory is fine."""
        self.fs.delete(self._path(uri), True)


@dataclass
class RawFile:
    day: dt.date
    uri: str
    era: Era | None = None
    error: str | None = None


def inspect_raw_files(spark: SparkSession, lake: str, days: Iterable[dt.date], threads: int = 8) -> list[RawFile]:
    """Existence and header of every requested file; threads because each is a round trip on S3."""

    fs = HadoopFs(spark, lake)

    def inspect(day: dt.date) -> RawFile:
        raw = RawFile(day, raw_file_uri(lake, day))
        try:
            header = fs.first_line(raw.uri)
        except FileNotFoundError as exc:
            raw.error = str(exc)
            return raw
        except Exception as exc:  # any Java IOException surfaces as Py4JJavaError
            raw.error = f"cannot read {raw.uri}: {str(exc).strip().splitlines()[0][:300]}"
            return raw
        raw.era = detect_era(header)
        if raw.era is None:
            shown = "<empty file>" if header is None else header.lstrip("\ufeff").strip()
            raw.error = f"unknown header in {raw.uri}: {shown[:500]!r}"
        return raw

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(inspect, days))


# ------------------------------------------------------------------------------------------ transformations

def read_era(spark: SparkSession, era: Era, uris: Sequence[str], raw_root: str) -> DataFrame:
    """All files of one era in one scan: every column a string, malformed lines kept in _corrupt_record.

    `raw_root` is the raw prefix above the `report_date=` folders: Spark then reads each file's date from its
    folder name once per file, as a partition column, instead of parsing it out of every row's file name.

    multiLine parses each file as one stream (RFC 4180: a quoted field may hold a line break). Line by line,
    Spark decodes every line into a String and restarts the parser on it; the stream is measured 2-3 s faster
    over the 495 files. A file is then never split across tasks (JHU's are at most a few MB), and an
    unclosed quote makes the rest of its file one malformed row, quarantined with its text.
    """
    schema = StructType([StructField(name, StringType()) for name in (*era.columns, CORRUPT)])
    return (
        spark.read.schema(schema)
        .option("basePath", raw_root)
        .option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("encoding", "UTF-8")
        .option("multiLine", True)
        .csv(list(uris))
    )


def _clean(column: Column) -> Column:
    """Trim blanks, tabs, CR/LF and no-break spaces; empty -> null. (btrim: a regex costs 4x as much.)"""
    trimmed = F.btrim(column, F.lit(WHITESPACE))
    return F.when(trimmed != "", trimmed)


def to_canonical(df: DataFrame, era: Era) -> DataFrame:
    """Era columns -> canonical columns `<field>_raw` (the file's strings, untouched), report_date and the era.

    Only a renaming, so the five era scans stay thin and a quarantined row still has the file's own values
    for raw_record; `normalize` cleans and types them once, after the union.
    """
    def src(canonical: str) -> Column:
        name = era.source_of(canonical)
        return F.lit(None).cast("string") if name is None else F.col(f"`{name}`")

    return df.select(
        # The partition column of read_era (inferred as a date; the cast keeps it one without inference).
        F.col("report_date").cast("date").alias("report_date"),
        *[src(name).alias(f"{name}_raw") for name in CANONICAL_FIELDS],
        F.col(CORRUPT).alias("malformed_line"),
        F.lit(era.name).alias("era"),
    )


def _parse_timestamp(raw: Column) -> Column:
    """Pick the format by the value's shape first: a failed parse costs a Java exception per row."""
    return (
        F.when(raw.contains("/"), F.coalesce(*[F.to_timestamp(raw, fmt) for fmt in SLASH_FORMATS]))
        .when(raw.contains("T"), F.to_timestamp(raw, "yyyy-MM-dd'T'HH:mm:ss"))
        .otherwise(F.coalesce(F.to_timestamp(raw, "yyyy-MM-dd HH:mm:ss"), F.to_timestamp(raw, "yyyy-MM-dd HH:mm")))
    )


def _parse_whole(raw: Column) -> Column:
    """Whole numbers, `28.0` included; `28.5`, `1,2x` or out of bigint range -> null.

    A non-ANSI cast to bigint truncates `28.5` to 28, so a value with a point must also equal its double.
    """
    value = raw.cast("bigint")
    return F.when(~raw.contains(".") | (raw.cast("double") == value), value)


def _parse_double(raw: Column) -> Column:
    """Finite numbers only: the cast would also accept `NaN` and `Infinity`."""
    value = raw.cast("double")
    return F.when(~F.isnan(value) & (F.abs(value) != float("inf")), value)


def _is_blank(raw: Column) -> Column:
    """Number cells are not trimmed up front; a blank one is empty, not an error."""
    return F.btrim(raw, F.lit(WHITESPACE)) == ""


def _field_label(field_name: str) -> Column:
    """The field's name as the row's own file spells it (only evaluated for rows with a problem)."""
    names = {era.source_of(field_name) or field_name for era in ERAS}
    if len(names) == 1:
        return F.lit(names.pop())
    return _per_era(lambda era: F.lit(era.source_of(field_name) or field_name))


def _message(field_name: str, raw: Column | None, expected: str) -> Column:
    """`<Field> '<value>' <expected>`, or `<Field> <expected>` without a value."""
    parts = [_field_label(field_name), F.lit(" ")]
    if raw is not None:
        parts += [F.lit("'"), raw, F.lit("' ")]
    return F.concat(*parts, F.lit(expected))


def _problems() -> list[tuple[Column, Column]]:
    """The checks that quarantine a row, as (condition, message) over the typed columns and the raw strings.

    A row goes to quarantine only when it cannot be placed or counted: a malformed line, no or an unknown
    country, no parseable timestamp, Confirmed or Deaths not a whole number or negative. Any other bad field
    only nulls that field (`field_checks`). `normalize` only ORs the conditions (a small expression on the
    hot path); the messages are built in `quarantined_rows`, for the few rows that need them. Both use this
    one list, so they cannot disagree.
    """
    country_raw, update_raw = F.col("country_region_text"), F.col("last_update_text")
    problems = [
        (F.col("malformed_line").isNotNull(), F.concat(
            F.lit("line does not have the "), _per_era(lambda era: F.lit(str(len(era.columns)))),
            F.lit(" fields of the header (malformed CSV row)"))),
        (country_raw.isNull(), _message("country_region", None, "is missing")),
        (country_raw.isNotNull() & F.col("country_region").isNull(),
         _message("country_region", country_raw, "is not in the country mapping table")),
        (update_raw.isNull(), _message("last_update", None, "is missing")),
        (update_raw.isNotNull() & F.col("last_update").isNull(),
         _message("last_update", update_raw,
                  f"is not a timestamp in a known format ({' | '.join(TIMESTAMP_FORMATS)})")),
    ]
    for name in ROW_COUNT_FIELDS:
        raw = F.col(f"{name}_raw")
        problems.append((raw.isNotNull() & F.col(name).isNull() & ~_is_blank(raw),
                         _message(name, raw, "is not a whole number")))
        problems.append((F.col(name) < 0, _message(name, raw, "is negative, expected a count >= 0")))
    return problems


# The fields whose problems only null the field: (field, condition over the parsed value `v` and the raw
# string `raw`, reason). The conditions see the parsed value before it is nulled.
FIELD_COUNT_FIELDS = ("recovered", "active")
ROW_COUNT_FIELDS = ("confirmed", "deaths")
COORDINATE_RANGES = {"latitude": 90.0, "longitude": 180.0}


def field_checks() -> list[tuple[str, Column, str]]:
    """(field, condition, reason) for every field-level check; the condition reads `<field>_parsed`."""
    checks = []
    for name in FIELD_COUNT_FIELDS:
        raw, value = F.col(f"{name}_raw"), F.col(f"{name}_parsed")
        checks.append((name, raw.isNotNull() & value.isNull() & ~_is_blank(raw), "is not a whole number"))
        negative = value < 0
        if name == "active":
            # JHU's `Recovered` pseudo-rows carry national recovered totals with Active = -Recovered.
            negative = negative & ~F.coalesce(F.col("province_state") == "Recovered", F.lit(False))
        checks.append((name, negative, "is negative, expected a count >= 0"))
    for name in DOUBLE_FIELDS:
        raw, value = F.col(f"{name}_raw"), F.col(f"{name}_parsed")
        checks.append((name, raw.isNotNull() & value.isNull() & ~_is_blank(raw), "is not a finite number"))
        if name in COORDINATE_RANGES:
            limit = COORDINATE_RANGES[name]
            checks.append((name, F.abs(value) > limit, f"is out of range, expected -{limit:g} .. {limit:g}"))
    return checks


def _field_failed(name: str) -> Column:
    """True when any field-level check of this field fails (null-safe)."""
    conditions = [condition for field_name, condition, _ in field_checks() if field_name == name]
    return F.coalesce(reduce(lambda left, right: left | right, conditions), F.lit(False))


# What `reason`, `raw_record` and the field issues need besides the typed columns; kept on quarantined rows
# and rows with a field issue only (nulls are nearly free in the shuffle and the checkpoint).
PROBLEM_INPUTS = (
    "malformed_line", "era", "country_region_text", "last_update_text",
    *[f"{name}_raw" for name in CANONICAL_FIELDS],
)
FIELD_ISSUE_PARSED = tuple(f"{name}_parsed" for name in (*FIELD_COUNT_FIELDS, *DOUBLE_FIELDS))


def normalize(df: DataFrame, mapping: DataFrame) -> DataFrame:
    """Canonical strings -> typed contract columns, plus `quarantine` (true when a row check fails) and
    `field_issue` (true when a field check fails: that field is null in the contract columns).

    Text fields are trimmed (`<field>_text`); number fields are not, because Spark's casts ignore surrounding
    whitespace and trimming 8 more columns per row is measurable.
    """
    text = df.select("*", *[_clean(F.col(f"{name}_raw")).alias(f"{name}_text") for name in TEXT_FIELDS])
    joined = text.join(F.broadcast(mapping), text["country_region_text"] == mapping["source_name"], "left")
    province = (
        F.when(F.col("map_province") == CLEAR_PROVINCE, F.lit(None).cast("string"))
        .when(F.col("map_province").isNotNull(), F.col("map_province"))
        # Three Feb-2020 rows say `None` where other files leave the province empty.
        .when(F.col("province_state_text") == "None", F.lit(None).cast("string"))
        .otherwise(F.col("province_state_text"))
    )
    typed = joined.select(
        "report_date",
        F.col("map_country").alias("country_region"),
        province.alias("province_state"),
        F.col("admin2_text").alias("admin2"),
        F.when(F.col("fips_text").endswith(".0"), F.expr("substring(fips_text, 1, length(fips_text) - 2)"))
        .otherwise(F.col("fips_text")).alias("fips"),
        F.col("map_iso3").alias("iso3"),
        F.col("combined_key_text").alias("combined_key"),
        _parse_timestamp(F.col("last_update_text")).alias("last_update"),
        *[_parse_double(F.col(f"{name}_raw")).alias(f"{name}_parsed") for name in DOUBLE_FIELDS],
        *[_parse_whole(F.col(f"{name}_raw")).alias(name) for name in ROW_COUNT_FIELDS],
        *[_parse_whole(F.col(f"{name}_raw")).alias(f"{name}_parsed") for name in FIELD_COUNT_FIELDS],
        *PROBLEM_INPUTS,
    )
    # Columns of their own, referenced below: Spark keeps an expensive expression that is used many times in
    # its own projection instead of inlining a copy into every use (less generated code to compile).
    # coalesce: a check on a field the era lacks is null, not false.
    failed = reduce(lambda left, right: left | right, [condition for condition, _ in _problems()])
    field_names = (*FIELD_COUNT_FIELDS, *DOUBLE_FIELDS)
    flagged = typed.withColumns({"quarantine": F.coalesce(failed, F.lit(False)),
                                 **{f"_{name}_bad": _field_failed(name) for name in field_names}})
    flagged = flagged.withColumns({
        "field_issue": reduce(lambda left, right: left | right, [F.col(f"_{name}_bad") for name in field_names]),
        **{name: F.when(~F.col(f"_{name}_bad"), F.col(f"{name}_parsed")) for name in field_names},
    })
    quarantine, keep_inputs = F.col("quarantine"), F.col("quarantine") | F.col("field_issue")
    return flagged.select(
        *[name for name in OUTPUT_COLUMNS if name != "source_file"],
        quarantine,
        "field_issue",
        *[F.when(keep_inputs, F.col(name)).alias(name) for name in (*PROBLEM_INPUTS, *FIELD_ISSUE_PARSED)],
    )


def reason() -> Column:
    """The failed checks of a quarantined row, in a fixed order, joined by '; '."""
    return F.concat_ws("; ", *[F.when(condition, message) for condition, message in _problems()])


def _duplicate_order() -> list[Column]:
    """Rows of one location key, winner first (docs/jhu-normalization.md: Duplicates). Identical rows tie."""
    return [
        F.col("confirmed").desc_nulls_last(),
        F.col("deaths").desc_nulls_last(),
        F.col("last_update").desc_nulls_last(),
        F.col("recovered").desc_nulls_last(),
        F.col("combined_key").asc_nulls_last(),
        F.col("active").desc_nulls_last(),
        *[F.col(name).asc_nulls_last() for name in ("fips", "iso3", "latitude", "longitude", "incident_rate",
                                                       "case_fatality_ratio")],
    ]


def with_row_keys(df: DataFrame) -> DataFrame:
    """Add `_row_id` and `_key_hash` (of the location key), and order each partition by date.

    Duplicates are rare (61 of the 1.67 million rows in the 495 files), so the job finds them with a small
    fixed-width aggregate over the key hash and decides only those keys' rows, instead of shuffling and
    sorting every row by its key. The id names a row for that decision. The date order lets the partitioned
    writes stream each date into its own file without a sort of their own. No shuffle: the rows stay in the
    partitions of the file scan.
    """
    return (df.withColumns({"_row_id": F.monotonically_increasing_id(), "_key_hash": F.xxhash64(*KEY_COLUMNS)})
            .sortWithinPartitions("report_date"))


def location_counts(stored: DataFrame) -> DataFrame:
    """Per date: `quarantined` and `valid` rows, `contested_keys`, the key hashes of several valid rows, and
    `first_row_id`, the id of the file's first row (a row's line is then `_row_id - first_row_id + 2`).

    A hash shared by two different keys only makes both contested; `duplicate_losers` compares the keys.
    """
    valid_key = F.when(~F.col("quarantine"), F.col("_key_hash"))
    per_key = stored.groupBy("report_date", valid_key.alias("_valid_key")).agg(
        F.count(F.lit(1)).alias("count"), F.min("_row_id").alias("_first"))
    is_valid = F.col("_valid_key").isNotNull()
    return per_key.groupBy("report_date").agg(
        F.sum(F.when(~is_valid, F.col("count")).otherwise(0)).alias("quarantined"),
        F.sum(F.when(is_valid, F.col("count")).otherwise(0)).alias("valid"),
        F.collect_list(F.when(F.col("count") > 1, F.col("_valid_key"))).alias("contested_keys"),
        # A file is read by one task in its order, so its row ids are consecutive from this one.
        F.min("_first").alias("first_row_id"),
    )


def duplicate_losers(contested: DataFrame) -> DataFrame:
    """The rows that lose to another row of their location key: `report_date`, `_row_id`, `outcome`.

    Within a key the rows are totally ordered by every data column, winner first. Identical rows tie, so
    rank() != row_number() marks an exact duplicate of an earlier row; any other row after the first is a
    distinct key duplicate that lost.
    """
    window = Window.partitionBy(*KEY_COLUMNS).orderBy(*_duplicate_order())
    row_number, rank = F.row_number().over(window), F.rank().over(window)
    outcome = F.when(rank != row_number, F.lit(EXACT_DUPLICATE)).otherwise(F.lit(KEY_DUPLICATE))
    return (contested.select("report_date", "_row_id", row_number.alias("_position"), outcome.alias("outcome"))
            .filter(F.col("_position") > 1).drop("_position"))


Counts = list[tuple[dt.date, str, int]]


def classify(spark: SparkSession, stored: DataFrame, partitions: int) -> tuple[DataFrame, Counts, dict]:
    """Add `outcome` (kept, quarantined, exact_duplicate or key_duplicate) and count the outcomes per date;
    also the first row id of each date's file ({date: id}, for the field issues' line numbers).

    `stored` comes from `with_row_keys` and is materialized: it is read twice here and once by each write.
    The losers are few and collected; the rows keep their partitions and date order (a broadcast join keeps
    the order of its streamed side).
    """
    with _sql_conf(spark, {"spark.sql.shuffle.partitions": str(partitions)}):
        per_date = location_counts(stored).collect()
        contested_keys = sorted({key for row in per_date for key in row.contested_keys})
        losers = []
        if contested_keys:
            keys = literal_frame(spark, [("_key_hash", "bigint")], [(key,) for key in contested_keys])
            contested = stored.filter(~F.col("quarantine")).join(F.broadcast(keys), "_key_hash", "left_semi")
            losers = duplicate_losers(contested).collect()

    lost = Counter(row.report_date for row in losers)
    counts: Counts = [(row.report_date, row.outcome, 1) for row in losers]
    for row in per_date:
        counts += [(row.report_date, QUARANTINED, row.quarantined),
                   (row.report_date, KEPT, row.valid - lost[row.report_date])]

    first_ids = {row.report_date: row.first_row_id for row in per_date}
    kept_or_quarantined = F.when(F.col("quarantine"), F.lit(QUARANTINED)).otherwise(F.lit(KEPT))
    if not losers:
        return stored.withColumn("outcome", kept_or_quarantined).drop("_key_hash"), counts, first_ids
    decided = literal_frame(spark, [("_row_id", "bigint"), ("_lost", "string")],
                            [(row._row_id, row.outcome) for row in losers])
    rows = (stored.join(F.broadcast(decided), "_row_id", "left")
            .withColumn("outcome", F.coalesce(F.col("_lost"), kept_or_quarantined))
            .drop("_key_hash", "_lost"))
    return rows, counts, first_ids


def materialize(spark: SparkSession, rows: DataFrame) -> DataFrame:
    """Compute the normalized rows once; the classification and both writes read them.

    A local checkpoint keeps the rows as they are; a cache would first convert them to columnar batches and
    back, measured 5-7 s more over the 495 files. Its blocks live on the executors: losing one fails the job
    (the Airflow task retries).

    Adaptive execution is off for this one query: an adaptive plan reports no output ordering, so the
    checkpoint would forget that the rows are sorted by date and both writes would sort them again. The
    query gains nothing from it (no shuffle, an explicit broadcast).
    """
    with _sql_conf(spark, {"spark.sql.adaptive.enabled": "false"}):
        return rows.localCheckpoint(eager=True)


def source_files(spark: SparkSession, lake: str, days: Iterable[dt.date]) -> DataFrame:
    """`report_date` -> the raw file it was read from, for a broadcast join: a lookup per row instead of
    formatting the date twice per row (about 10 % of the processed write's profile samples)."""
    return literal_frame(spark, [("report_date", "date"), ("source_file", "string")],
                         [(day, raw_file_uri(lake, day)) for day in days])


def processed_rows(classified: DataFrame, sources: DataFrame) -> DataFrame:
    return (classified.filter(F.col("outcome") == KEPT).join(F.broadcast(sources), "report_date", "left")
            .select(*OUTPUT_COLUMNS))


def _per_era(value_of: Callable[[Era], Column]) -> Column:
    """CASE era WHEN ... : a value built per header era."""
    result = None
    for era in ERAS:
        condition, value = F.col("era") == era.name, value_of(era)
        result = F.when(condition, value) if result is None else result.when(condition, value)
    return result


def _source_fields(era: Era) -> Column:
    """The row's values under the file's own column names, in the header's order."""
    canonical_of = {column: canonical for canonical, column in era.sources.items()}
    return F.map_from_arrays(F.array(*[F.lit(name) for name in era.columns]),
                             F.array(*[F.col(f"{canonical_of[name]}_raw") for name in era.columns]))


def raw_record() -> Column:
    """JSON of a row's source fields under the file's own names (and the raw line of a malformed row)."""
    plain = _per_era(_source_fields)
    with_line = F.map_concat(plain, F.create_map(F.lit(CORRUPT), F.col("malformed_line")))
    return F.to_json(F.when(F.col("malformed_line").isNull(), plain).otherwise(with_line))


def quarantined_rows(classified: DataFrame, sources: DataFrame) -> DataFrame:
    return (classified.filter(F.col("outcome") == QUARANTINED).join(F.broadcast(sources), "report_date", "left")
            .withColumn("reason", reason())
            .withColumn("raw_record", raw_record())
            .select(*QUARANTINE_COLUMNS))


def field_issue_rows(classified: DataFrame, sources: DataFrame, first_ids: DataFrame) -> DataFrame:
    """One row per nulled field of a written row: file, line, field (as the file names it), value, reason.

    `first_ids` has `report_date` and `first_row_id` (see `location_counts`). Only rows that are written
    (outcome kept) report their field issues: a quarantined row keeps its whole record in the quarantine.
    """
    findings = F.array(*[
        F.when(condition, F.struct(_field_label(name).alias("field"), F.col(f"{name}_raw").alias("original_value"),
                                   F.lit(why).alias("reason")))
        for name, condition, why in field_checks()])
    return (classified.filter((F.col("outcome") == KEPT) & F.col("field_issue"))
            .join(F.broadcast(sources), "report_date", "left")
            .join(F.broadcast(first_ids), "report_date", "left")
            .withColumn("line", (F.col("_row_id") - F.col("first_row_id") + 2).cast("bigint"))
            .select("report_date", "source_file", "line",
                    F.explode(F.filter(findings, lambda finding: finding.isNotNull())).alias("finding"))
            .select("report_date", "source_file", "line", "finding.field", "finding.original_value",
                    "finding.reason")
            .select(*FIELD_ISSUE_COLUMNS))


def field_issue_counts(classified: DataFrame) -> list:
    """Per date: rows written with a nulled field and the number of nulled fields."""
    issues = reduce(lambda left, right: left + right,
                    [F.when(F.coalesce(condition, F.lit(False)), 1).otherwise(0) for _, condition, _ in field_checks()])
    return (classified.filter((F.col("outcome") == KEPT) & F.col("field_issue"))
            .groupBy("report_date")
            .agg(F.count(F.lit(1)).alias("rows_with_field_issues"), F.sum(issues).alias("field_issues"))
            .collect())


def write_outputs(classified: DataFrame, lake: str, sources: DataFrame, first_ids: DataFrame) -> None:
    """The processed, quarantine and field-issue tables, replacing exactly the dates that have rows (dynamic
    overwrite)."""
    for rows, prefix, options in ((processed_rows(classified, sources), PROCESSED_PREFIX, PROCESSED_WRITE_OPTIONS),
                                  (quarantined_rows(classified, sources), QUARANTINE_PREFIX, {}),
                                  (field_issue_rows(classified, sources, first_ids), FIELD_ISSUES_PREFIX, {})):
        (rows.write.mode("overwrite").option("partitionOverwriteMode", "dynamic").options(**options)
         .partitionBy("report_date").parquet(f"{lake}/{prefix}"))


def literal_frame(spark: SparkSession, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence]) -> DataFrame:
    """A small DataFrame of these rows (`columns`: name and SQL type), parsed in the JVM from one JSON literal.

    `createDataFrame` of Python rows would start Python workers to unpickle them where the frame is computed
    (about a second per broadcast of a few hundred rows on a 2-core machine, for workers the job needs nowhere
    else), and a literal Column per value would be thousands of py4j round trips.
    """
    names = [name for name, _ in columns]
    payload = json.dumps([dict(zip(names, [value.isoformat() if isinstance(value, dt.date) else value
                                           for value in row], strict=True)) for row in rows])
    schema = "array<struct<" + ", ".join(f"`{name}`: {kind}" for name, kind in columns) + ">>"
    return spark.range(1, numPartitions=1).select(F.inline(F.from_json(F.lit(payload), schema)))


MAPPING_COLUMNS = ("source_name", "country_region", "province_state", "iso3")


def load_country_mapping(spark: SparkSession, uri: str) -> DataFrame:
    """The reviewed mapping table (about 250 rows), read through Hadoop's FileSystem (it may live on S3) and
    validated in Python: the four columns, a country on every row, unique source names.

    Not a Spark query: the job's first query pays the new JVM's SQL start-up, and the others wait for the
    mapping (measured 6.4 s from the start of the run, against 1.5 s for the 495 headers read meanwhile).
    """
    text = HadoopFs(spark, uri).read_text(uri, "country mapping")
    lines = [line for line in csv.reader(io.StringIO(text.lstrip("\ufeff")))
             if any(cell.strip(WHITESPACE) for cell in line)]
    header = [cell.strip(WHITESPACE) for cell in lines[0]] if lines else []
    if header != list(MAPPING_COLUMNS):
        raise ValueError(f"country mapping {uri}: expected columns {list(MAPPING_COLUMNS)}, found {header}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(MAPPING_COLUMNS):
            raise ValueError(f"country mapping {uri}: row {number} has {len(line)} fields, expected "
                             f"{len(MAPPING_COLUMNS)}: {line}")
        values = [cell.strip(WHITESPACE) or None for cell in line]
        if values[0] is None or values[1] is None:
            raise ValueError(f"country mapping {uri}: row without source_name or country_region: {line}")
        rows.append(tuple(values))
    duplicates = sorted({row[0] for row in rows if sum(other[0] == row[0] for other in rows) > 1})
    if duplicates:
        raise ValueError(f"country mapping {uri}: duplicate source names {duplicates}")
    return literal_frame(spark, [("source_name", "string"), ("map_country", "string"), ("map_province", "string"),
                                 ("map_iso3", "string")], rows)


# ------------------------------------------------------------------------------------------------- the run

def _date_entry(raw: RawFile) -> dict:
    return {
        "status": "FAILED" if raw.error else "COMPLETED",
        "source_file": raw.uri,
        "era": raw.era.name if raw.era else None,
        **dict.fromkeys(COUNTERS, 0),
        **dict.fromkeys(FIELD_COUNTERS, 0),
        "error": raw.error,
    }


def _apply_counts(dates: dict[str, dict], counts: Iterable[tuple[dt.date, str, int]]) -> None:
    counter_of = {KEPT: "rows_written", QUARANTINED: "rows_quarantined",
                  EXACT_DUPLICATE: "exact_duplicates_dropped", KEY_DUPLICATE: "key_duplicates_resolved"}
    for day, outcome, count in counts:
        entry = dates[day.isoformat()]
        entry[counter_of[outcome]] += count
        entry["rows_read"] += count


def totals_of(dates: dict[str, dict]) -> dict:
    totals = {name: sum(entry.get(name, 0) for entry in dates.values()) for name in (*COUNTERS, *FIELD_COUNTERS)}
    totals["dates_completed"] = sum(entry["status"] == "COMPLETED" for entry in dates.values())
    totals["dates_failed"] = sum(entry["status"] == "FAILED" for entry in dates.values())
    return totals


@contextmanager
def _sql_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """These SQL settings inside the block, the previous ones after it (the session may be shared, as in tests)."""
    previous = {key: spark.conf.get(key) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            spark.conf.set(key, value)


def _job_conf(spark: SparkSession, local_files: bool) -> AbstractContextManager[None]:
    """SQL settings for this job's queries.

    - hugeMethodLimit 8000: normalize's stage compiles to one method too big for the JIT (HotSpot skips
      methods over 8000 bytes); above the limit Spark uses per-operator code instead, measured 1.5x faster.
    - Local files are stat'ed on the driver instead of in a Spark job per era (one task per path); on S3
      the default stays: above 32 paths Spark lists them in a distributed job, which beats serial HEADs.
    """
    settings = {"spark.sql.codegen.hugeMethodLimit": "8000"}
    if local_files:
        settings["spark.sql.sources.parallelPartitionDiscovery.threshold"] = "1000000"
    return _sql_conf(spark, settings)


def _transform_and_write(spark: SparkSession, args: argparse.Namespace, good: list[RawFile],
                         dates: dict[str, dict], loading_mapping: Future[DataFrame]) -> None:
    mapping = loading_mapping.result()
    raw_prefix = f"{args.lake}/{RAW_PREFIX}"
    parts = []
    for era in ERAS:
        uris = [raw.uri for raw in good if raw.era is era]
        if uris:
            parts.append(to_canonical(read_era(spark, era, uris, raw_prefix), era))
    combined = reduce(DataFrame.unionByName, parts)

    # Few partitions for the small aggregate: 200 tiny tasks (and 200 shuffle files per map task) cost more
    # than the work on a small cluster.
    partitions = max(1, min(len(good), 2 * spark.sparkContext.defaultParallelism))
    stored = materialize(spark, with_row_keys(normalize(combined, mapping)))
    classified, counts, first_ids = classify(spark, stored, partitions)
    _apply_counts(dates, counts)
    with _sql_conf(spark, {"spark.sql.shuffle.partitions": str(partitions)}):
        for row in field_issue_counts(classified):
            dates[row.report_date.isoformat()].update(rows_with_field_issues=row.rows_with_field_issues,
                                                      field_issues=row.field_issues)
    first_frame = literal_frame(spark, [("report_date", "date"), ("first_row_id", "bigint")],
                                sorted(first_ids.items()))
    write_outputs(classified, args.lake, source_files(spark, args.lake, [raw.day for raw in good]), first_frame)


def process(spark: SparkSession, args: argparse.Namespace, raw_files: list[RawFile],
            loading_mapping: Future[DataFrame]) -> dict[str, dict]:
    """Transform and write every readable file; returns the per-date summary entries."""
    dates = {raw.day.isoformat(): _date_entry(raw) for raw in raw_files}
    good = [raw for raw in raw_files if raw.error is None]
    if not good:
        return dates
    with _job_conf(spark, all(urlparse(raw.uri).scheme == "file" for raw in good)):
        _transform_and_write(spark, args, good, dates, loading_mapping)

    # Dynamic overwrite replaces only partitions that receive rows; a rerun date with none must not keep
    # its old partition.
    fs = HadoopFs(spark, args.lake)
    for raw in good:
        entry = dates[raw.day.isoformat()]
        for counter, prefix in (("rows_written", PROCESSED_PREFIX), ("rows_quarantined", QUARANTINE_PREFIX),
                                ("field_issues", FIELD_ISSUES_PREFIX)):
            if entry[counter] == 0:
                fs.delete_dir(f"{args.lake}/{prefix}/report_date={raw.day.isoformat()}")
    return dates


def _all_failed(raw_files: list[RawFile], exc: Exception) -> dict[str, dict]:
    """A failure inside Spark cannot be pinned to one file: every date of this run failed."""
    message = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
    dates = {}
    for raw in raw_files:
        entry = _date_entry(raw)
        entry.update(status="FAILED", error=raw.error or f"job failed: {message}")
        dates[raw.day.isoformat()] = entry
    return dates


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    started = time.time()
    days = requested_dates(args.start_date, args.end_date, args.only_dates)
    # The mapping is read while the headers are: its Spark query pays the session's one-off SQL start-up
    # (some seconds in a new JVM), the headers are round trips to the file system.
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading_mapping = pool.submit(load_country_mapping, spark, args.country_mapping)
        raw_files = inspect_raw_files(spark, args.lake, days)
        try:
            dates = process(spark, args, raw_files, loading_mapping)
        except Exception as exc:
            dates = _all_failed(raw_files, exc)
    return {
        "job": JOB_NAME,
        "application_id": spark.sparkContext.applicationId,
        "start_date": args.start_date.isoformat(),
        "end_date": args.end_date.isoformat(),
        "started_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds").replace(
            "+00:00", "Z"),
        "duration_seconds": round(time.time() - started, 3),
        "dates": dates,
        "totals": totals_of(dates),
    }


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    """CLI entry: 0 when every date completed, 1 when any failed (after writing the rest and the summary)."""
    args = parse_args(argv)
    own_session = spark is None
    if own_session:
        # spark-submit (EMR or local) configures the master; a plain `python` run defaults to local[*].
        spark = build_spark_session(JOB_NAME)
    try:
        summary = run(spark, args)
        text = json.dumps(summary, sort_keys=False)
        if args.summary_uri:
            summary_uri = (args.summary_uri if urlparse(args.summary_uri).scheme
                           else Path(args.summary_uri).resolve().as_uri())
            write_text(spark, summary_uri, text + "\n")
    finally:
        if own_session:
            spark.stop()
    for day, entry in summary["dates"].items():
        if entry["status"] == "FAILED":
            print(f"FAILED {day}: {entry['error']}", file=sys.stderr)
    print(f"SUMMARY {text}", flush=True)
    return 1 if summary["totals"]["dates_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
