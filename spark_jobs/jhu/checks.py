"""The checks of a normalized row: row checks quarantine the row, field checks null one field.

Every function builds Columns over `normalize`'s output (the typed columns, `<field>_text`, `<field>_raw`,
`<field>_parsed`, `era` and `malformed_line`); docs/jhu-normalization.md lists the rules.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column
from pyspark.sql import functions as F

from jhu.eras import CANONICAL_FIELDS, CORRUPT, DOUBLE_FIELDS, ERAS, TIMESTAMP_FORMATS, Era, is_blank, per_era

# Counts whose problem quarantines the row, and counts and numbers whose problem only nulls the field.
ROW_COUNT_FIELDS = ("confirmed", "deaths")
FIELD_COUNT_FIELDS = ("recovered", "active")
COORDINATE_RANGES = {"latitude": 90.0, "longitude": 180.0}
FIELD_CHECKED = (*FIELD_COUNT_FIELDS, *DOUBLE_FIELDS)

# What `reason`, `raw_record` and the field issues need besides the typed columns; kept on quarantined rows
# and rows with a field issue only (nulls are nearly free in the shuffle and the checkpoint).
PROBLEM_INPUTS = (
    "malformed_line", "era", "country_region_text", "last_update_text",
    *[f"{name}_raw" for name in CANONICAL_FIELDS],
)
FIELD_ISSUE_PARSED = tuple(f"{name}_parsed" for name in FIELD_CHECKED)


def field_label(field_name: str) -> Column:
    """The field's name as the row's own file spells it (only evaluated for rows with a problem)."""
    names = {era.source_of(field_name) or field_name for era in ERAS}
    if len(names) == 1:
        return F.lit(names.pop())
    return per_era(lambda era: F.lit(era.source_of(field_name) or field_name))


def _message(field_name: str, raw: Column | None, expected: str) -> Column:
    """`<Field> '<value>' <expected>`, or `<Field> <expected>` without a value."""
    parts = [field_label(field_name), F.lit(" ")]
    if raw is not None:
        parts += [F.lit("'"), raw, F.lit("' ")]
    return F.concat(*parts, F.lit(expected))


def problems() -> list[tuple[Column, Column]]:
    """The checks that quarantine a row, as (condition, message) over the typed columns and the raw strings.

    A row goes to quarantine only when it cannot be placed or counted: a malformed line, no or an unknown
    country, no parseable timestamp, Confirmed or Deaths not a whole number or negative. Any other bad field
    only nulls that field (`field_checks`). `normalize` only ORs the conditions (a small expression on the
    hot path); the messages are built in `quarantined_rows`, for the few rows that need them. Both use this
    one list, so they cannot disagree.
    """
    country_raw, update_raw = F.col("country_region_text"), F.col("last_update_text")
    checks = [
        (F.col("malformed_line").isNotNull(), F.concat(
            F.lit("line does not have the "), per_era(lambda era: F.lit(str(len(era.columns)))),
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
        checks.append((raw.isNotNull() & F.col(name).isNull() & ~is_blank(raw),
                       _message(name, raw, "is not a whole number")))
        checks.append((F.col(name) < 0, _message(name, raw, "is negative, expected a count >= 0")))
    return checks


def quarantine_condition() -> Column:
    """True when any row check fails (a check on a field the era lacks is null, not false)."""
    return F.coalesce(reduce(lambda left, right: left | right, [condition for condition, _ in problems()]),
                      F.lit(False))


def reason() -> Column:
    """The failed checks of a quarantined row, in a fixed order, joined by '; '."""
    return F.concat_ws("; ", *[F.when(condition, message) for condition, message in problems()])


def field_checks() -> list[tuple[str, Column, str]]:
    """(field, condition, reason) for every field-level check; the condition reads `<field>_parsed`, the
    parsed value before it is nulled, and `<field>_raw`, the file's string."""
    checks = []
    for name in FIELD_COUNT_FIELDS:
        raw, value = F.col(f"{name}_raw"), F.col(f"{name}_parsed")
        checks.append((name, raw.isNotNull() & value.isNull() & ~is_blank(raw), "is not a whole number"))
        negative = value < 0
        if name == "active":
            # JHU's `Recovered` pseudo-rows carry national recovered totals with Active = -Recovered.
            negative = negative & ~F.coalesce(F.col("province_state") == "Recovered", F.lit(False))
        checks.append((name, negative, "is negative, expected a count >= 0"))
    for name in DOUBLE_FIELDS:
        raw, value = F.col(f"{name}_raw"), F.col(f"{name}_parsed")
        checks.append((name, raw.isNotNull() & value.isNull() & ~is_blank(raw), "is not a finite number"))
        if name in COORDINATE_RANGES:
            limit = COORDINATE_RANGES[name]
            checks.append((name, F.abs(value) > limit, f"is out of range, expected -{limit:g} .. {limit:g}"))
    return checks


def field_failed(name: str) -> Column:
    """True when any field-level check of this field fails (null-safe)."""
    conditions = [condition for field_name, condition, _ in field_checks() if field_name == name]
    return F.coalesce(reduce(lambda left, right: left | right, conditions), F.lit(False))


def field_findings() -> Column:
    """The failed field checks of a row: an array of (field as the file names it, original_value, reason)."""
    findings = F.array(*[
        F.when(condition, F.struct(field_label(name).alias("field"), F.col(f"{name}_raw").alias("original_value"),
                                   F.lit(why).alias("reason")))
        for name, condition, why in field_checks()])
    return F.filter(findings, lambda finding: finding.isNotNull())


def field_issue_count() -> Column:
    """The number of failed field checks of a row."""
    return reduce(lambda left, right: left + right,
                  [F.when(F.coalesce(condition, F.lit(False)), 1).otherwise(0) for _, condition, _ in field_checks()])


def _source_fields(era: Era) -> Column:
    """The row's values under the file's own column names, in the header's order."""
    canonical_of = {column: canonical for canonical, column in era.sources.items()}
    return F.map_from_arrays(F.array(*[F.lit(name) for name in era.columns]),
                             F.array(*[F.col(f"{canonical_of[name]}_raw") for name in era.columns]))


def raw_record() -> Column:
    """JSON of a row's source fields under the file's own names (and the raw line of a malformed row)."""
    plain = per_era(_source_fields)
    with_line = F.map_concat(plain, F.create_map(F.lit(CORRUPT), F.col("malformed_line")))
    return F.to_json(F.when(F.col("malformed_line").isNull(), plain).otherwise(with_line))
