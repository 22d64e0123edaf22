"""The embedded engine: DuckDB over the local lake's processed, Hive-partitioned Parquet.

Each base table of the Glue database becomes a DuckDB view of the same name over
`{lake}/processed/<table>/<partition>=<value>/*.parquet`, so the view sources run unchanged. A table with
no Parquet yet (tweets before the first harvest, say) becomes an empty view with the contract's columns:
the analytics still build, with empty tweet panels, instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from covid19_lake.analytics.dialect import DUCKDB, Dialect
from covid19_lake.analytics.views import BASE_TABLES, VIEWS, View

# The processed tables' contracts: partition column, then the file columns (DuckDB types).
CONTRACTS: dict[str, tuple[str, dict[str, str]]] = {
    "jhu_daily_reports": ("report_date", {
        "country_region": "VARCHAR", "province_state": "VARCHAR", "admin2": "VARCHAR", "fips": "VARCHAR",
        "iso3": "VARCHAR", "combined_key": "VARCHAR", "last_update": "TIMESTAMP", "latitude": "DOUBLE",
        "longitude": "DOUBLE", "confirmed": "BIGINT", "deaths": "BIGINT", "recovered": "BIGINT",
        "active": "BIGINT", "incident_rate": "DOUBLE", "case_fatality_ratio": "DOUBLE", "source_file": "VARCHAR",
    }),
    "tweets": ("created_date", {
        "tweet_id": "VARCHAR", "created_at": "TIMESTAMP", "lang": "VARCHAR", "author_id": "VARCHAR",
        "author_username": "VARCHAR", "text": "VARCHAR", "hashtags": "VARCHAR[]", "mentions": "VARCHAR[]",
        "country_code": "VARCHAR", "retweet_count": "BIGINT", "reply_count": "BIGINT", "like_count": "BIGINT",
        "quote_count": "BIGINT", "sentiment": "DOUBLE", "sentiment_label": "VARCHAR",
    }),
    "tweet_daily_stats": ("date", {
        "country_code": "VARCHAR", "tweet_count": "BIGINT", "top_hashtags": "VARCHAR[]",
        "top_words": "VARCHAR[]", "mean_sentiment": "DOUBLE",
    }),
}
assert set(CONTRACTS) == set(BASE_TABLES)


def table_dir(lake: Path, table: str) -> Path:
    return Path(lake) / "processed" / table


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def base_table_sql(lake: Path, table: str, typed_partitions: bool = True) -> str:
    """The SELECT binding one base table to the lake (or to an empty, typed relation).

    typed_partitions=False keeps partition values as strings, as a Glue table may declare them; the tests
    use it to run the Athena rendering of the views on DuckDB.
    """
    partition, columns = CONTRACTS[table]
    root = table_dir(lake, table)
    if any(root.glob(f"{partition}=*/**/*.parquet")):
        pattern = (root / f"{partition}=*" / "**" / "*.parquet").as_posix()
        # union_by_name: files written before a column was added still read; the partition column's
        # type comes from the path (DATE for YYYY-MM-DD).
        return (f"SELECT * FROM read_parquet({_quote(pattern)}, hive_partitioning = true, "
                f"hive_types_autocast = {str(typed_partitions).lower()}, union_by_name = true)")
    typed = ", ".join(f"CAST(NULL AS {kind}) AS \"{name}\"" for name, kind in columns.items())
    partition_type = "DATE" if typed_partitions else "VARCHAR"
    return f"SELECT {typed}, CAST(NULL AS {partition_type}) AS \"{partition}\" WHERE FALSE"


def connect(lake: Path, views: tuple[View, ...] = VIEWS, dialect: Dialect = DUCKDB,
            typed_partitions: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake's base tables and the analytics views defined."""
    con = duckdb.connect(":memory:")
    for table in BASE_TABLES:
        con.execute(f"CREATE OR REPLACE VIEW {table} AS {base_table_sql(lake, table, typed_partitions)}")
    for view in views:
        con.execute(view.create_statement(dialect))
    return con


@contextmanager
def session(lake: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(lake)
    try:
        yield con
    finally:
        con.close()


def query(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    """Rows of a query as dicts keyed by column name."""
    cursor = con.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
