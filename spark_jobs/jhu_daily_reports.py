"""JHU CSSE daily reports: raw CSVs of five header eras -> one typed, deduplicated, partitioned Parquet table.

    spark-submit spark_jobs/jhu_daily_reports.py --lake s3://bucket/prefix \
        --start-date 2020-01-22 --end-date 2021-05-30 [--only-dates D1,D2] \
        [--country-mapping s3://.../jhu_country_mapping.csv] [--summary-uri s3://.../summary.json]

Reads   {lake}/raw/jhu/daily_reports/report_date=YYYY-MM-DD/MM-DD-YYYY.csv
Writes  {lake}/processed/jhu_daily_reports/report_date=YYYY-MM-DD/*.parquet   (contract schema)
        {lake}/quarantine/jhu_daily_reports/report_date=YYYY-MM-DD/*.parquet  (source_file, raw_record, reason)

All file-system access goes through Hadoop's FileSystem API in the JVM, so the same code runs against EMRFS on
EMR and the local file system in tests. The rules (eras, country naming, duplicates, checks) are documented in
docs/jhu-normalization.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from spark_common import build_spark_session

JOB_NAME = "jhu_daily_reports"
DEFAULT_MAPPING = Path(__file__).resolve().parent / "reference" / "jhu_country_mapping.csv"
RAW_PREFIX = "raw/jhu/daily_reports"
PROCESSED_PREFIX = "processed/jhu_daily_reports"
QUARANTINE_PREFIX = "quarantine/jhu_daily_reports"

# The mapping table's province_state column: empty keeps the file's province, a name replaces it, and this
# token clears it (early files put `Taiwan` / `Cruise Ship` there, the time series has no province).
CLEAR_PROVINCE = "<none>"

CANONICAL_FIELDS = (
    "fips", "admin2", "province_state", "country_region", "last_update", "latitude", "longitude",
    "confirmed", "deaths", "recovered", "active", "combined_key", "incident_rate", "case_fatality_ratio",
)
COUNT_FIELDS = ("confirmed", "deaths", "recovered", "active")
DOUBLE_FIELDS = ("latitude", "longitude", "incident_rate", "case_fatality_ratio")
# Every Last_Update format in the data, most frequent first. CORRECTED makes a non-matching pattern yield
# null, so coalesce() picks the one that fits; each pattern is only tried on values of its shape, because a
# failed parse costs a Java exception per row.
TIMESTAMP_FORMATS = {
    "yyyy-MM-dd HH:mm:ss": r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2} [0-9]{1,2}:[0-9]{2}:[0-9]{2}$",
    "yyyy-MM-dd'T'HH:mm:ss": r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{2}:[0-9]{2}$",
    "yyyy-MM-dd HH:mm": r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2} [0-9]{1,2}:[0-9]{2}$",
    "M/d/yyyy H:mm": r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}$",
    "M/d/yy H:mm": r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{2} [0-9]{1,2}:[0-9]{2}$",
}
WHOLE_NUMBER = r"^[+-]?[0-9]+(\.0*)?$"
DECIMAL_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
CORRUPT = "_corrupt_record"

OUTPUT_COLUMNS = (
    "report_date", "country_region", "province_state", "admin2", "fips", "iso3", "combined_key", "last_update",
    "latitude", "longitude", "confirmed", "deaths", "recovered", "active", "incident_rate",
    "case_fatality_ratio", "source_file",
)
QUARANTINE_COLUMNS = ("report_date", "source_file", "raw_record", "reason")
KEY_COLUMNS = ("report_date", "country_region", "province_state", "admin2")

KEPT, QUARANTINED, EXACT_DUPLICATE, KEY_DUPLICATE = "kept", "quarantined", "exact_duplicate", "key_duplicate"
COUNTERS = ("rows_read", "rows_written", "rows_quarantined", "exact_duplicates_dropped", "key_duplicates_resolved")


@dataclass(frozen=True)
class Era:
    """One header layout: its exact column list and where each canonical field comes from."""

    name: str
    columns: tuple[str, ...]
    sources: dict[str, str] = field(hash=False)

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

def _hadoop_path(spark: SparkSession, uri: str):
    return spark._jvm.org.apache.hadoop.fs.Path(uri)


def _filesystem(spark: SparkSession, uri: str):
    return _hadoop_path(spark, uri).getFileSystem(spark._jsc.hadoopConfiguration())


def read_first_line(spark: SparkSession, uri: str) -> str | None:
    """First line of a file (None when empty); FileNotFoundError when it does not exist."""
    jvm = spark._jvm
    path = _hadoop_path(spark, uri)
    fs = _filesystem(spark, uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"raw file not found: {uri}")
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(path), "UTF-8"))
    try:
        return reader.readLine()
    finally:
        reader.close()


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    out = _filesystem(spark, uri).create(_hadoop_path(spark, uri), True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def delete_dir(spark: SparkSession, uri: str) -> None:
    fs = _filesystem(spark, uri)
    path = _hadoop_path(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)


@dataclass
class RawFile:
    day: dt.date
    uri: str
    era: Era | None = None
    error: str | None = None


def inspect_raw_files(spark: SparkSession, lake: str, days: Iterable[dt.date], threads: int = 8) -> list[RawFile]:
    """Existence and header of every requested file; threads because each is a round trip on S3."""

    def inspect(day: dt.date) -> RawFile:
        raw = RawFile(day, raw_file_uri(lake, day))
        try:
            header = read_first_line(spark, raw.uri)
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

def read_era(spark: SparkSession, era: Era, uris: Sequence[str]) -> DataFrame:
    """All files of one era in one scan: every column a string, malformed lines kept in _corrupt_record."""
    schema = StructType([StructField(name, StringType()) for name in (*era.columns, CORRUPT)])
    return (
        spark.read.schema(schema)
        .option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("encoding", "UTF-8")
        .csv(list(uris))
        .withColumn("source_file", F.input_file_name())
    )


def _clean(column: Column) -> Column:
    """Trim every kind of whitespace (CR included); empty -> null."""
    trimmed = F.regexp_replace(column, r"^\s+|\s+$", "")
    return F.when(trimmed != "", trimmed)


def to_canonical(df: DataFrame, era: Era) -> DataFrame:
    """Era columns -> canonical string columns, plus report_date (from the path) and the raw record as JSON.

    raw_record is built only for rows that will need it (see `normalize`), but its inputs are kept here so the
    JSON shows the file's own field names.
    """
    def src(canonical: str) -> Column:
        name = era.source_of(canonical)
        return _clean(F.col(f"`{name}`")) if name else F.lit(None).cast("string")

    raw_struct = F.struct(*[F.col(f"`{name}`").alias(name) for name in era.columns])
    raw_with_line = F.struct(*[F.col(f"`{name}`").alias(name) for name in (*era.columns, CORRUPT)])
    return df.select(
        F.to_date(F.regexp_extract("source_file", r"report_date=([0-9]{4}-[0-9]{2}-[0-9]{2})", 1)).alias(
            "report_date"),
        *[src(name).alias(f"{name}_raw") for name in CANONICAL_FIELDS],
        "source_file",
        F.col(CORRUPT).alias("malformed_line"),
        F.when(F.col(CORRUPT).isNull(), F.to_json(raw_struct, {"ignoreNullFields": "false"}))
        .otherwise(F.to_json(raw_with_line, {"ignoreNullFields": "false"})).alias("raw_record_json"),
    )


def _parse_whole(raw: Column) -> Column:
    return F.when(raw.rlike(WHOLE_NUMBER), F.regexp_replace(raw, r"\.0*$", "").cast("bigint"))


def _parse_double(raw: Column) -> Column:
    return F.when(raw.rlike(DECIMAL_NUMBER), raw.cast("double"))


def _quote(column: Column) -> Column:
    return F.concat(F.lit("'"), column, F.lit("'"))


def normalize(df: DataFrame, mapping: DataFrame, era: Era) -> DataFrame:
    """Typed contract columns plus `reason` (null for a good row); reasons name the era's own fields."""
    label = {name: era.source_of(name) or name for name in CANONICAL_FIELDS}
    joined = df.join(F.broadcast(mapping), df["country_region_raw"] == mapping["source_name"], "left")

    province = (
        F.when(F.col("map_province") == CLEAR_PROVINCE, F.lit(None).cast("string"))
        .when(F.col("map_province").isNotNull(), F.col("map_province"))
        # Three Feb-2020 rows say `None` where other files leave the province empty.
        .when(F.col("province_state_raw") == "None", F.lit(None).cast("string"))
        .otherwise(F.col("province_state_raw"))
    )
    last_update = F.coalesce(*[F.when(F.col("last_update_raw").rlike(shape), F.to_timestamp("last_update_raw", fmt))
                               for fmt, shape in TIMESTAMP_FORMATS.items()])
    typed = joined.select(
        "report_date",
        F.col("map_country").alias("country_region"),
        province.alias("province_state"),
        F.col("admin2_raw").alias("admin2"),
        _clean(F.regexp_replace("fips_raw", r"\.0$", "")).alias("fips"),
        F.col("map_iso3").alias("iso3"),
        F.col("combined_key_raw").alias("combined_key"),
        last_update.alias("last_update"),
        *[_parse_double(F.col(f"{name}_raw")).alias(name) for name in DOUBLE_FIELDS],
        *[_parse_whole(F.col(f"{name}_raw")).alias(name) for name in COUNT_FIELDS],
        "source_file",
        *[f"{name}_raw" for name in ("country_region", "last_update", *COUNT_FIELDS, *DOUBLE_FIELDS)],
        "map_country", "malformed_line", "raw_record_json",
    )

    problems: list[Column] = [
        F.when(F.col("malformed_line").isNotNull(),
               F.lit(f"line does not have the {len(era.columns)} fields of the header (malformed CSV row)")),
        F.when(F.col("country_region_raw").isNull(), F.lit(f"{label['country_region']} is missing")),
        F.when(F.col("country_region_raw").isNotNull() & F.col("map_country").isNull(),
               F.format_string(f"{label['country_region']} '%s' is not in the country mapping table",
                               F.col("country_region_raw"))),
        F.when(F.col("last_update_raw").isNull(), F.lit(f"{label['last_update']} is missing")),
        F.when(F.col("last_update_raw").isNotNull() & F.col("last_update").isNull(),
               F.format_string(f"{label['last_update']} '%s' is not a timestamp in a known format "
                               f"({' | '.join(TIMESTAMP_FORMATS)})", F.col("last_update_raw"))),
    ]
    for name in COUNT_FIELDS:
        raw = F.col(f"{name}_raw")
        problems.append(F.when(raw.isNotNull() & F.col(name).isNull(),
                               F.concat(F.lit(f"{label[name]} "), _quote(raw), F.lit(" is not a whole number"))))
        negative = F.col(name) < 0
        if name == "active":
            # JHU's `Recovered` pseudo-rows carry national recovered totals with Active = -Recovered.
            negative = negative & ~F.coalesce(F.col("province_state") == "Recovered", F.lit(False))
        problems.append(F.when(negative, F.concat(F.lit(f"{label[name]} "), _quote(raw),
                                                  F.lit(" is negative, expected a count >= 0"))))
    for name in DOUBLE_FIELDS:
        raw = F.col(f"{name}_raw")
        problems.append(F.when(raw.isNotNull() & F.col(name).isNull(),
                               F.concat(F.lit(f"{label[name]} "), _quote(raw), F.lit(" is not a number"))))

    reason = F.concat_ws("; ", *problems)
    return typed.select(
        *OUTPUT_COLUMNS,
        F.when(reason != "", reason).alias("reason"),
        F.lit(era.name).alias("era"),
        "raw_record_json",
    ).withColumn("raw_record", F.when(F.col("reason").isNotNull(), F.col("raw_record_json"))).drop(
        "raw_record_json")


def classify(df: DataFrame, partitions: int) -> DataFrame:
    """Add `outcome`: kept, quarantined, exact_duplicate or key_duplicate (one window, one shuffle).

    Within a location key the rows are totally ordered by every data column, winner first: latest
    last_update, then highest confirmed, deaths, recovered, then combined_key, then the rest. Identical
    rows tie, so rank() != row_number() marks an exact duplicate of an earlier row, and any other row after
    the first is a distinct key duplicate that lost.
    """
    valid = F.col("reason").isNull()
    window = Window.partitionBy(*KEY_COLUMNS, valid.alias("_valid")).orderBy(
        F.col("last_update").desc_nulls_last(),
        F.col("confirmed").desc_nulls_last(),
        F.col("deaths").desc_nulls_last(),
        F.col("recovered").desc_nulls_last(),
        F.col("combined_key").asc_nulls_last(),
        F.col("active").desc_nulls_last(),
        *[F.col(name).asc_nulls_last() for name in ("fips", "iso3", "latitude", "longitude", "incident_rate",
                                                       "case_fatality_ratio", "source_file")],
    )
    row_number, rank = F.row_number().over(window), F.rank().over(window)
    outcome = (
        F.when(~valid, F.lit(QUARANTINED))
        .when(row_number == 1, F.lit(KEPT))
        .when(rank != row_number, F.lit(EXACT_DUPLICATE))
        .otherwise(F.lit(KEY_DUPLICATE))
    )
    # Clustering on report_date alone satisfies the window's distribution, and leaves each date in one task,
    # so the partitioned writes below produce one file per date without another shuffle.
    return df.repartition(partitions, "report_date").withColumn("outcome", outcome)


def processed_rows(classified: DataFrame) -> DataFrame:
    return classified.filter(F.col("outcome") == KEPT).select(*OUTPUT_COLUMNS)


def quarantined_rows(classified: DataFrame) -> DataFrame:
    return classified.filter(F.col("outcome") == QUARANTINED).select(*QUARANTINE_COLUMNS)


def load_country_mapping(spark: SparkSession, uri: str) -> DataFrame:
    """The reviewed mapping table, validated: the four columns, a country per row, unique source names."""
    table = spark.read.option("header", True).csv(uri)
    expected = ["source_name", "country_region", "province_state", "iso3"]
    if table.columns != expected:
        raise ValueError(f"country mapping {uri}: expected columns {expected}, found {table.columns}")
    table = table.select(
        _clean(F.col("source_name")).alias("source_name"),
        _clean(F.col("country_region")).alias("map_country"),
        _clean(F.col("province_state")).alias("map_province"),
        _clean(F.col("iso3")).alias("map_iso3"),
    ).cache()
    bad = (
        table.groupBy("source_name").agg(F.count("*").alias("n"), F.min("map_country").alias("c"))
        .filter((F.col("n") > 1) | F.col("source_name").isNull() | F.col("c").isNull())
        .limit(5).collect()
    )
    if bad:
        raise ValueError(f"country mapping {uri}: duplicate, empty or country-less source names: "
                         f"{[row.source_name for row in bad]}")
    return table


# ------------------------------------------------------------------------------------------------- the run

def _date_entry(raw: RawFile) -> dict:
    return {
        "status": "FAILED" if raw.error else "COMPLETED",
        "source_file": raw.uri,
        "era": raw.era.name if raw.era else None,
        **dict.fromkeys(COUNTERS, 0),
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
    totals = {name: sum(entry[name] for entry in dates.values()) for name in COUNTERS}
    totals["dates_completed"] = sum(entry["status"] == "COMPLETED" for entry in dates.values())
    totals["dates_failed"] = sum(entry["status"] == "FAILED" for entry in dates.values())
    return totals


@contextmanager
def _listing_on_driver(spark: SparkSession, enabled: bool) -> Iterator[None]:
    """Local files: stat them on the driver instead of a Spark job per era (one task per path, seconds each).

    On S3 the default stays: above 32 paths Spark lists them in a distributed job, which beats serial HEADs.
    """
    key = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    previous = spark.conf.get(key)
    if enabled:
        spark.conf.set(key, "1000000")
    try:
        yield
    finally:
        spark.conf.set(key, previous)


def process(spark: SparkSession, args: argparse.Namespace, raw_files: list[RawFile]) -> dict[str, dict]:
    """Transform and write every readable file; returns the per-date summary entries."""
    dates = {raw.day.isoformat(): _date_entry(raw) for raw in raw_files}
    good = [raw for raw in raw_files if raw.error is None]
    if not good:
        return dates
    mapping = load_country_mapping(spark, args.country_mapping)
    parts = []
    with _listing_on_driver(spark, all(urlparse(raw.uri).scheme == "file" for raw in good)):
        for era in ERAS:
            uris = [raw.uri for raw in good if raw.era is era]
            if uris:
                parts.append(normalize(to_canonical(read_era(spark, era, uris), era), mapping, era))
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.unionByName(part)

    # A fixed count: AQE cannot coalesce a shuffle below a cached plan, and 200 tiny tasks cost more than
    # the work on a small cluster.
    partitions = max(1, min(len(good), 2 * spark.sparkContext.defaultParallelism))
    classified = classify(combined, partitions).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = classified.groupBy("report_date", "outcome").count().collect()
        _apply_counts(dates, ((row.report_date, row.outcome, row["count"]) for row in counts))
        for rows, prefix in ((processed_rows(classified), PROCESSED_PREFIX),
                             (quarantined_rows(classified), QUARANTINE_PREFIX)):
            (rows.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
             .partitionBy("report_date").parquet(f"{args.lake}/{prefix}"))
    finally:
        classified.unpersist()
        mapping.unpersist()

    # Dynamic overwrite replaces only partitions that receive rows; a rerun date with none must not keep
    # its old partition.
    for raw in good:
        entry = dates[raw.day.isoformat()]
        for counter, prefix in (("rows_written", PROCESSED_PREFIX), ("rows_quarantined", QUARANTINE_PREFIX)):
            if entry[counter] == 0:
                delete_dir(spark, f"{args.lake}/{prefix}/report_date={raw.day.isoformat()}")
    return dates


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    started = time.time()
    days = requested_dates(args.start_date, args.end_date, args.only_dates)
    raw_files = inspect_raw_files(spark, args.lake, days)
    try:
        dates = process(spark, args, raw_files)
    except Exception as exc:
        # A failure inside Spark cannot be pinned to one file: every date of this run failed.
        message = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
        dates = {}
        for raw in raw_files:
            entry = _date_entry(raw)
            entry.update(status="FAILED", error=raw.error or f"job failed: {message}")
            dates[raw.day.isoformat()] = entry
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
            write_text(spark, args.summary_uri if urlparse(args.summary_uri).scheme
                       else Path(args.summary_uri).resolve().as_uri(), text + "\n")
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
