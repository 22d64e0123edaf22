"""The dialect layer: one SQL source per view, rendered for Athena and DuckDB."""

from __future__ import annotations

import re

import pytest

from covid19_lake.analytics.dialect import ATHENA, DUCKDB, SQL_DIR, render
from covid19_lake.analytics.views import VIEWS, View, check_order


@pytest.mark.parametrize("dialect", [ATHENA, DUCKDB], ids=lambda d: d.name)
def test_every_view_renders_to_plain_sql(dialect) -> None:
    for view in VIEWS:
        sql = view.create_statement(dialect)
        assert sql.startswith(f"CREATE OR REPLACE VIEW {view.name} AS\nWITH") or "SELECT" in sql
        assert not re.search(r"\{\{|\{%|\{#|--", sql), view.name  # nothing left for Airflow's Jinja
        assert not sql.rstrip().endswith(";")


def test_one_source_per_view_and_differences_only_in_macros() -> None:
    assert sorted(p.stem for p in SQL_DIR.glob("*.sql")) == sorted(v.source for v in VIEWS)
    country = render("country_daily", ATHENA), render("country_daily", DUCKDB)
    assert "CAST(report_date AS date)" in country[0] and "CAST(report_date AS date)" not in country[1]
    weekly = render("weekly_tweets_vs_cases", ATHENA), render("weekly_tweets_vs_cases", DUCKDB)
    assert "CAST(date_trunc('week'" not in weekly[0] and "CAST(date_trunc('week'" in weekly[1]
    # Integer division is Trino's default: the ratio casts before dividing there.
    assert "CAST(deaths AS double) * 100 / confirmed" in country[0]


def test_views_read_only_earlier_views() -> None:
    check_order()
    reordered = (VIEWS[1], VIEWS[0], *VIEWS[2:])
    with pytest.raises(ValueError, match="analytics_global_daily reads"):
        check_order(reordered)
    with pytest.raises(ValueError, match="not created before"):
        check_order((View("x", "country_daily", ("no_such_table",), ""),))
