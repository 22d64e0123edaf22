"""The JHU job's transformations, each DataFrame -> DataFrame; the job's main decides when they run.

    to_canonical -> (union of the eras) -> normalize -> with_row_keys -> [materialized]
        -> location_counts / contested_rows -> duplicate_losers -> with_outcome
        -> processed_rows, quarantined_rows, field_issue_rows, field_issue_totals
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jhu import checks
from jhu.eras import (
    CANONICAL_FIELDS,
    CORRUPT,
    DOUBLE_FIELDS,
    TEXT_FIELDS,
    Era,
    clean,
    parse_double,
    parse_timestamp,
    parse_whole,
)

# The mapping table's province_state column: empty keeps the file's province, a name replaces it, and this
# token clears it (early files put `Taiwan` / `Cruise Ship` there, the time series has no province).
CLEAR_PROVINCE = "<none>"

OUTPUT_COLUMNS = (
    "report_date", "country_region", "province_state", "admin2", "fips", "iso3", "combined_key", "last_update",
    "latitude", "longitude", "confirmed", "deaths", "recovered", "active", "incident_rate",
    "case_fatality_ratio", "source_file",
)
QUARANTINE_COLUMNS = ("report_date", "source_file", "raw_record", "reason")
FIELD_ISSUE_COLUMNS = ("report_date", "source_file", "line", "field", "original_value", "reason")
KEY_COLUMNS = ("report_date", "country_region", "province_state", "admin2")

# A row's outcome.
KEPT, QUARANTINED, EXACT_DUPLICATE, KEY_DUPLICATE = "kept", "quarantined", "exact_duplicate", "key_duplicate"


def to_canonical(df: DataFrame, era: Era) -> DataFrame:
    """Era columns -> canonical columns `<field>_raw` (the file's strings, untouched), report_date and the era.

    Only a renaming, so the five era scans stay thin and a quarantined row still has the file's own values
    for raw_record; `normalize` cleans and types them once, after the union.
    """
    def src(canonical: str) -> Column:
        name = era.source_of(canonical)
        return F.lit(None).cast("string") if name is None else F.col(f"`{name}`")

    return df.select(
        # The partition column of storage.read_era (inferred as a date; the cast keeps it one without inference).
        F.col("report_date").cast("date").alias("report_date"),
        *[src(name).alias(f"{name}_raw") for name in CANONICAL_FIELDS],
        F.col(CORRUPT).alias("malformed_line"),
        F.lit(era.name).alias("era"),
    )


def normalize(df: DataFrame, mapping: DataFrame) -> DataFrame:
    """Canonical strings -> typed contract columns, plus `quarantine` (true when a row check fails) and
    `field_issue` (true when a field check fails: that field is null in the contract columns).

    `mapping` has `source_name`, `map_country`, `map_province`, `map_iso3` (storage.load_country_mapping).
    Text fields are trimmed (`<field>_text`); number fields are not, because Spark's casts ignore surrounding
    whitespace and trimming 8 more columns per row is measurable.
    """
    text = df.select("*", *[clean(F.col(f"{name}_raw")).alias(f"{name}_text") for name in TEXT_FIELDS])
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
        parse_timestamp(F.col("last_update_text")).alias("last_update"),
        *[parse_double(F.col(f"{name}_raw")).alias(f"{name}_parsed") for name in DOUBLE_FIELDS],
        *[parse_whole(F.col(f"{name}_raw")).alias(name) for name in checks.ROW_COUNT_FIELDS],
        *[parse_whole(F.col(f"{name}_raw")).alias(f"{name}_parsed") for name in checks.FIELD_COUNT_FIELDS],
        *checks.PROBLEM_INPUTS,
    )
    # Columns of their own, referenced below: Spark keeps an expensive expression that is used many times in
    # its own projection instead of inlining a copy into every use (less generated code to compile).
    field_names = checks.FIELD_CHECKED
    flagged = typed.withColumns({"quarantine": checks.quarantine_condition(),
                                 **{f"_{name}_bad": checks.field_failed(name) for name in field_names}})
    flagged = flagged.withColumns({
        "field_issue": reduce(lambda left, right: left | right, [F.col(f"_{name}_bad") for name in field_names]),
        **{name: F.when(~F.col(f"_{name}_bad"), F.col(f"{name}_parsed")) for name in field_names},
    })
    quarantine, keep_inputs = F.col("quarantine"), F.col("quarantine") | F.col("field_issue")
    kept_for_problems = (*checks.PROBLEM_INPUTS, *checks.FIELD_ISSUE_PARSED)
    return flagged.select(
        *[name for name in OUTPUT_COLUMNS if name != "source_file"],
        quarantine,
        "field_issue",
        *[F.when(keep_inputs, F.col(name)).alias(name) for name in kept_for_problems],
    )


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


def contested_rows(stored: DataFrame, keys: DataFrame) -> DataFrame:
    """The valid rows whose `_key_hash` is one of `keys` (a small frame of `_key_hash`)."""
    return stored.filter(~F.col("quarantine")).join(F.broadcast(keys), "_key_hash", "left_semi")


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


def with_outcome(stored: DataFrame, losers: DataFrame | None) -> DataFrame:
    """Add `outcome`: the loser's (`losers`: `_row_id`, `outcome`, few rows), else quarantined or kept.

    Without losers there is no join. A broadcast join keeps the order of its streamed side, so the rows keep
    their partitions and date order. `_key_hash` is dropped; `_row_id` stays (it gives a field issue its line).
    """
    kept_or_quarantined = F.when(F.col("quarantine"), F.lit(QUARANTINED)).otherwise(F.lit(KEPT))
    if losers is None:
        return stored.withColumn("outcome", kept_or_quarantined).drop("_key_hash")
    decided = losers.select("_row_id", F.col("outcome").alias("_lost"))
    return (stored.join(F.broadcast(decided), "_row_id", "left")
            .withColumn("outcome", F.coalesce(F.col("_lost"), kept_or_quarantined))
            .drop("_key_hash", "_lost"))


def processed_rows(classified: DataFrame, sources: DataFrame) -> DataFrame:
    """The kept rows in the contract's columns; `sources` maps `report_date` to `source_file`."""
    return (classified.filter(F.col("outcome") == KEPT).join(F.broadcast(sources), "report_date", "left")
            .select(*OUTPUT_COLUMNS))


def quarantined_rows(classified: DataFrame, sources: DataFrame) -> DataFrame:
    """The quarantined rows: file, the row as the file has it (`raw_record`) and why (`reason`)."""
    return (classified.filter(F.col("outcome") == QUARANTINED).join(F.broadcast(sources), "report_date", "left")
            .withColumn("reason", checks.reason())
            .withColumn("raw_record", checks.raw_record())
            .select(*QUARANTINE_COLUMNS))


def _written_with_issues(classified: DataFrame) -> DataFrame:
    # Only rows that are written report their field issues: a quarantined row keeps its whole record.
    return classified.filter((F.col("outcome") == KEPT) & F.col("field_issue"))


def field_issue_rows(classified: DataFrame, sources: DataFrame, first_ids: DataFrame) -> DataFrame:
    """One row per nulled field of a written row: file, line, field (as the file names it), value, reason.

    `first_ids` has `report_date` and `first_row_id` (see `location_counts`).
    """
    return (_written_with_issues(classified)
            .join(F.broadcast(sources), "report_date", "left")
            .join(F.broadcast(first_ids), "report_date", "left")
            .withColumn("line", (F.col("_row_id") - F.col("first_row_id") + 2).cast("bigint"))
            .select("report_date", "source_file", "line", F.explode(checks.field_findings()).alias("finding"))
            .select("report_date", "source_file", "line", "finding.field", "finding.original_value",
                    "finding.reason")
            .select(*FIELD_ISSUE_COLUMNS))


def field_issue_totals(classified: DataFrame) -> DataFrame:
    """Per date: `rows_with_field_issues` (rows written with a nulled field) and `field_issues` (nulled fields)."""
    return (_written_with_issues(classified)
            .groupBy("report_date")
            .agg(F.count(F.lit(1)).alias("rows_with_field_issues"),
                 F.sum(checks.field_issue_count()).alias("field_issues")))
