"""The SQL dialect layer: what differs between Athena (Trino) and DuckDB, and nothing else.

The view sources in sql/*.sql are Jinja templates written in the SQL both engines agree on. Where they
disagree, a source calls a macro from here instead of writing the expression:

- `as_date(col)`: partition columns are typed `date` by DuckDB's Hive partitioning, but may be `string`
  in a Glue table (partition projection or a crawler); Athena casts, DuckDB leaves the date alone.
- `week_start(expr)`: Trino's date_trunc on a date returns a date, DuckDB's returns a timestamp.
- `ratio_pct(num, den)`: Trino divides integers as integers, DuckDB as doubles; both get a double.
- `avg_7d(col, partition)`: a trailing 7-day mean that is NULL unless all 7 calendar days are present;
  written with ROWS frames and date_diff, which both engines (and Athena engine v2) accept.
- `country_codes()`: the ISO 3166 alpha-2/alpha-3 reference as an inline VALUES table (one CSV source).
- `country_population()`: JHU's country populations (reference/jhu_population.csv) as an inline VALUES table.

Rendering happens in Python before a statement reaches AthenaOperator, so no `{{` is left for Airflow's
own templating to interpret.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

SQL_DIR = Path(__file__).resolve().parent / "sql"
COUNTRY_CODES_CSV = Path(__file__).resolve().parent / "reference" / "country_codes.csv"
# Derived from JHU's UID_ISO_FIPS_LookUp_Table.csv by local/jhu_population.py (reviewed, committed).
POPULATION_CSV = Path(__file__).resolve().parent / "reference" / "jhu_population.csv"


@dataclass(frozen=True)
class Dialect:
    name: str
    partitions_are_strings: bool
    date_trunc_returns_date: bool
    integer_division: bool

    def as_date(self, column: str) -> str:
        return f"CAST({column} AS date)" if self.partitions_are_strings else column

    def week_start(self, expr: str) -> str:
        truncated = f"date_trunc('week', {expr})"
        return truncated if self.date_trunc_returns_date else f"CAST({truncated} AS date)"

    def ratio_pct(self, numerator: str, denominator: str) -> str:
        num = f"CAST({numerator} AS double)" if self.integer_division else numerator
        return f"CASE WHEN {denominator} > 0 THEN {num} * 100 / {denominator} END"

    def avg_7d(self, column: str, partition: str | None = None, order: str = "report_date") -> str:
        by = f"PARTITION BY {partition} " if partition else ""
        frame = f"OVER ({by}ORDER BY {order} ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)"
        value = f"CAST({column} AS double)"
        return (
            f"CASE WHEN COUNT({column}) {frame} = 7 "
            f"AND date_diff('day', MIN({order}) {frame}, {order}) = 6 "
            f"THEN AVG({value}) {frame} END"
        )

    def country_codes(self) -> str:
        values = ",\n        ".join(f"('{a2}', '{a3}')" for a2, a3 in country_code_pairs())
        return f"(SELECT * FROM (VALUES\n        {values}\n    ) AS v (alpha_2, alpha_3))"

    def country_population(self) -> str:
        """JHU's population of each country that has one, as an inline table (country_region, population)."""
        values = ",\n        ".join(f"('{name.replace(chr(39), chr(39) * 2)}', {people})"
                                     for name, people in country_populations().items())
        return f"(SELECT * FROM (VALUES\n        {values}\n    ) AS v (country_region, population))"


ATHENA = Dialect("athena", partitions_are_strings=True, date_trunc_returns_date=True, integer_division=True)
DUCKDB = Dialect("duckdb", partitions_are_strings=False, date_trunc_returns_date=False, integer_division=False)
DIALECTS = {d.name: d for d in (ATHENA, DUCKDB)}


@cache
def country_code_pairs() -> tuple[tuple[str, str], ...]:
    """(alpha_2, alpha_3) pairs of reference/country_codes.csv, validated so they can be inlined in SQL."""
    pairs = []
    with COUNTRY_CODES_CSV.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            a2, a3 = row["alpha_2"], row["alpha_3"]
            if not (len(a2) == 2 and len(a3) == 3 and (a2 + a3).isalpha() and (a2 + a3).isupper()):
                raise ValueError(f"{COUNTRY_CODES_CSV}:{line}: expected upper-case alpha_2/alpha_3 codes, "
                                 f"got {a2!r}/{a3!r}")
            pairs.append((a2, a3))
    return tuple(pairs)


@cache
def country_populations() -> dict[str, int]:
    """Country_Region -> population of JHU's country-level rows (no province, no admin2) that have one.

    Ships, the Olympics and Antarctica have none, so their per-capita rates are NULL, not zero.
    """
    populations = {}
    with POPULATION_CSV.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if row["province_state"] or row["admin2"] or not row["population"]:
                continue
            if not row["population"].isdigit() or int(row["population"]) <= 0:
                raise ValueError(f"{POPULATION_CSV}:{line}: population {row['population']!r} is not a count")
            populations[row["country_region"]] = int(row["population"])
    return populations


def iso2_by_iso3() -> dict[str, str]:
    return {a3: a2 for a2, a3 in country_code_pairs()}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(SQL_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(source: str, dialect: Dialect) -> str:
    """Render sql/<source>.sql for a dialect; the result contains no template syntax."""
    template = _environment().get_template(f"{source}.sql")
    macros = {
        "as_date": dialect.as_date,
        "week_start": dialect.week_start,
        "ratio_pct": dialect.ratio_pct,
        "avg_7d": dialect.avg_7d,
        "country_codes": dialect.country_codes,
        "country_population": dialect.country_population,
    }
    sql = template.render(**macros).strip()
    return _strip_comment_lines(sql)


def _strip_comment_lines(sql: str) -> str:
    # Leading comment lines would end up in Athena's stored view text; keep the statement itself.
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")
