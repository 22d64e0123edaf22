"""The analytics SQL, run for real by DuckDB on processed Parquet built from the real JHU reports.

Expected numbers are computed here, independently, from the same CSV files with the csv module.
The window 2020-07-01 … 2020-07-12 holds real JHU corrections (United Kingdom's cases on 07-02,
Germany's deaths on 07-06, …), so the negative-correction flags are exercised on real data.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from covid19_lake.analytics.dialect import ATHENA, country_code_pairs
from covid19_lake.analytics.views import VIEWS
from local.analytics import duck, fixture_lake

WINDOW = [date(2020, 7, 1) + timedelta(days=i) for i in range(12)]


def _count(cell: str) -> int | None:
    return int(float(cell)) if cell.strip() else None


def csv_country_totals(files: list[Path]) -> dict[date, dict[str, tuple[int | None, int | None]]]:
    """{day: {country: (confirmed, deaths)}} summed over the country's rows, as the contract defines."""
    totals: dict[date, dict[str, tuple[int | None, int | None]]] = {}
    for path in files:
        month, day, year = (int(x) for x in path.stem.split("-"))
        sums: dict[str, list[int | None]] = defaultdict(lambda: [None, None])
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                country = row["Country_Region"].strip()
                for i, column in enumerate(("Confirmed", "Deaths")):
                    value = _count(row[column])
                    if value is not None:
                        sums[country][i] = (sums[country][i] or 0) + value
        totals[date(year, month, day)] = {c: (v[0], v[1]) for c, v in sums.items()}
    return totals


def expected_daily(totals: dict[date, dict[str, tuple[int | None, int | None]]]) -> dict[tuple[str, date], dict]:
    days = sorted(totals)
    out: dict[tuple[str, date], dict] = {}
    previous: dict[str, tuple[int | None, int | None]] = {}
    for day in days:
        for country, (confirmed, deaths) in totals[day].items():
            # No previous row: unknown history on the lake's first day, else the country starts from zero.
            first_seen = (None, None) if day == days[0] else (0, 0)
            base = previous.get(country, first_seen)
            new_cases = None if confirmed is None or base[0] is None else confirmed - base[0]
            new_deaths = None if deaths is None or base[1] is None else deaths - base[1]
            out[(country, day)] = {
                "confirmed": confirmed, "deaths": deaths, "new_cases": new_cases, "new_deaths": new_deaths,
                "case_fatality_ratio": deaths * 100 / confirmed if confirmed else None,
                "cases_corrected": new_cases is not None and new_cases < 0,
                "deaths_corrected": new_deaths is not None and new_deaths < 0,
            }
            previous[country] = (confirmed, deaths)
    for (country, day), row in out.items():
        for column in ("new_cases", "new_deaths"):
            week = [out.get((country, day - timedelta(days=k)), {}).get(column) for k in range(7)]
            row[f"{column}_avg_7d"] = sum(week) / 7 if all(v is not None for v in week) else None
    return out


@pytest.fixture(scope="module")
def window_files(jhu_mirror: Path) -> list[Path]:
    return fixture_lake.select_reports(jhu_mirror, WINDOW)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, jhu_mirror: Path) -> Path:
    root = tmp_path_factory.mktemp("lake")
    fixture_lake.build(jhu_mirror, root, WINDOW)
    tweets = fixture_lake.sample_tweets(WINDOW)
    fixture_lake.write_table(root, "tweets", tweets, "created_date")
    fixture_lake.write_table(root, "tweet_daily_stats", fixture_lake.daily_stats_of(tweets), "date")
    return root


@pytest.fixture(scope="module")
def con(lake: Path):
    connection = duck.connect(lake)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def expected(window_files: list[Path]) -> dict[tuple[str, date], dict]:
    return expected_daily(csv_country_totals(window_files))


def assert_close(actual: float | None, wanted: float | None, what: str) -> None:
    if wanted is None:
        assert actual is None, what
    else:
        assert actual is not None and math.isclose(actual, wanted, rel_tol=1e-12, abs_tol=1e-9), \
            f"{what}: {actual} != {wanted}"


def test_country_daily_matches_the_csv_files(con, expected) -> None:
    rows = duck.query(con, "SELECT * FROM analytics_country_daily")
    assert {(r["country_region"], r["report_date"]) for r in rows} == set(expected)
    for row in rows:
        key = (row["country_region"], row["report_date"])
        want = expected[key]
        for column in ("confirmed", "deaths", "new_cases", "new_deaths", "cases_corrected", "deaths_corrected"):
            assert row[column] == want[column], f"{key} {column}"
        for column in ("new_cases_avg_7d", "new_deaths_avg_7d", "case_fatality_ratio"):
            assert_close(row[column], want[column], f"{key} {column}")


def test_real_corrections_are_kept_negative_and_flagged(con, expected) -> None:
    flagged = {(r["country_region"], r["report_date"]): r for r in duck.query(
        con, "SELECT * FROM analytics_country_daily WHERE cases_corrected OR deaths_corrected")}
    negative = {k for k, v in expected.items() if (v["new_cases"] or 0) < 0 or (v["new_deaths"] or 0) < 0}
    assert set(flagged) == negative
    assert len(negative) >= 5  # the window was chosen for its real corrections
    uk = flagged[("United Kingdom", date(2020, 7, 2))]
    assert uk["new_cases"] == expected[("United Kingdom", date(2020, 7, 2))]["new_cases"] < 0
    germany = flagged[("Germany", date(2020, 7, 6))]
    assert germany["deaths_corrected"] and not germany["cases_corrected"] and germany["new_deaths"] < 0


def test_seven_day_average_needs_seven_report_days(con, expected) -> None:
    germany = {r["report_date"]: r for r in duck.query(
        con, "SELECT * FROM analytics_country_daily WHERE country_region = 'Germany'")}
    # Day 1 has no previous report (NULL change), so the first full week of changes ends on day 8.
    assert [d for d, r in sorted(germany.items()) if r["new_cases_avg_7d"] is not None] == WINDOW[7:]
    week = [expected[("Germany", WINDOW[7] - timedelta(days=k))]["new_cases"] for k in range(7)]
    assert_close(germany[WINDOW[7]]["new_cases_avg_7d"], sum(week) / 7, "Germany avg")


def test_global_daily_sums_the_countries(con, expected) -> None:
    rows = duck.query(con, "SELECT * FROM analytics_global_daily ORDER BY report_date")
    assert [r["report_date"] for r in rows] == WINDOW
    for row in rows:
        day = row["report_date"]
        of_day = [v for (_, d), v in expected.items() if d == day]
        assert row["confirmed"] == sum(v["confirmed"] or 0 for v in of_day)
        wanted_new = [v["new_cases"] for v in of_day if v["new_cases"] is not None]
        assert row["new_cases"] == (sum(wanted_new) if wanted_new else None)
        assert row["countries_with_corrections"] == sum(v["cases_corrected"] or v["deaths_corrected"] for v in of_day)
    assert rows[-1]["new_cases_avg_7d"] is not None and rows[6]["new_cases_avg_7d"] is None


def test_latest_by_location_is_the_last_report_with_coordinates(con, window_files) -> None:
    wanted = Counter()
    with window_files[-1].open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["Lat"].strip() and row["Long_"].strip() and not (float(row["Lat"]) == 0 == float(row["Long_"])):
                wanted[(row["Combined_Key"].strip(), _count(row["Confirmed"]), _count(row["Deaths"]))] += 1
    rows = duck.query(con, "SELECT * FROM analytics_latest_by_location")
    assert Counter((r["combined_key"], r["confirmed"], r["deaths"]) for r in rows) == wanted
    assert {r["report_date"] for r in rows} == {WINDOW[-1]}
    assert all(r["latitude"] is not None and r["longitude"] is not None for r in rows)


def test_top_hashtags_rank_case_insensitive_counts(con, lake) -> None:
    tweets = fixture_lake.sample_tweets(WINDOW)
    counts: dict[tuple[str, date], Counter] = defaultdict(Counter)
    for t in tweets:
        if t["country_code"]:
            for tag in t["hashtags"]:
                counts[(t["country_code"], date.fromisoformat(t["created_date"]))][tag.lower().lstrip("#")] += 1
    wanted = {}
    for key, counter in counts.items():
        ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:10]
        for rank, (tag, n) in enumerate(ranked, start=1):
            wanted[(*key, rank)] = (tag, n)
    rows = duck.query(con, "SELECT * FROM analytics_top_hashtags_daily")
    assert {(r["country_code"], r["day"], r["hashtag_rank"]): (r["hashtag"], r["tweet_count"]) for r in rows} == wanted
    names = {r["country_code"]: r["country_region"] for r in rows}
    assert names == {"DE": "Germany", "US": "US", "GB": "United Kingdom", "FR": "France"}


def test_weekly_tweets_next_to_new_cases(con, expected) -> None:
    tweets = fixture_lake.sample_tweets(WINDOW)
    rows = {(r["country_code"], r["week_start"]): r for r in duck.query(
        con, "SELECT * FROM analytics_weekly_tweets_vs_cases WHERE country_code = 'DE'")}
    for week_start in sorted({d - timedelta(days=d.weekday()) for d in WINDOW}):
        days = [week_start + timedelta(days=k) for k in range(7)]
        row = rows[("DE", week_start)]
        assert row["tweet_count"] == sum(1 for t in tweets if t["country_code"] == "DE"
                                         and date.fromisoformat(t["created_date"]) in days)
        changes = [expected[("Germany", d)]["new_cases"] for d in days if ("Germany", d) in expected]
        assert row["new_cases"] == (sum(c for c in changes if c is not None)
                                    if any(c is not None for c in changes) else None)
        assert row["report_days"] == len(changes)
        assert row["country_region"] == "Germany" and row["iso3"] == "DEU"


def test_views_build_on_a_lake_without_tweets(tmp_path: Path, jhu_mirror: Path) -> None:
    fixture_lake.build(jhu_mirror, tmp_path, WINDOW[:2])
    with duck.session(tmp_path) as con:
        assert duck.query(con, "SELECT COUNT(*) AS n FROM analytics_top_hashtags_daily") == [{"n": 0}]
        weekly = duck.query(con, "SELECT SUM(tweet_count) AS t, COUNT(*) AS n FROM analytics_weekly_tweets_vs_cases")
        assert weekly[0]["t"] == 0 and weekly[0]["n"] > 0


def _normal(value):
    # The Athena rendering's date_trunc keeps DuckDB's timestamp type; Athena itself returns a date.
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def test_athena_rendering_gives_the_same_rows_on_string_partitions(lake: Path, con) -> None:
    """The Athena flavour of every view, run by DuckDB over string-typed partitions (as Glue may declare
    them), returns exactly the rows of the DuckDB flavour."""
    athena_like = duck.connect(lake, dialect=ATHENA, typed_partitions=False)
    try:
        assert duck.query(athena_like, "SELECT typeof(report_date) AS t FROM jhu_daily_reports LIMIT 1") == \
            [{"t": "VARCHAR"}]
        for view in VIEWS:
            def rows(connection, name=view.name):
                got = connection.execute(f"SELECT * FROM {name}").fetchall()
                return sorted((tuple(_normal(v) for v in row) for row in got), key=repr)
            assert rows(athena_like) == rows(con), view.name
    finally:
        athena_like.close()


def test_fixture_lake_rebuild_is_idempotent(tmp_path: Path, jhu_mirror: Path) -> None:
    for _ in range(2):
        fixture_lake.build(jhu_mirror, tmp_path, WINDOW[:3])
    with duck.session(tmp_path) as con:
        n = duck.query(con, "SELECT COUNT(*) AS n FROM jhu_daily_reports")[0]["n"]
    assert n == sum(1 for p in fixture_lake.select_reports(jhu_mirror, WINDOW[:3])
                    for _ in csv.DictReader(p.open(encoding="utf-8")))
    assert len(country_code_pairs()) > 240


def test_per_100k_rates_use_jhus_population_and_are_null_without_one(con, expected) -> None:
    from covid19_lake.analytics.dialect import country_populations

    populations = country_populations()
    assert populations["Germany"] == 83155031 and populations["US"] == 329466283  # JHU's UID table
    assert not {"Diamond Princess", "MS Zaandam", "Antarctica", "Summer Olympics 2020"} & set(populations)
    rows = {(r["country_region"], r["report_date"]): r for r in duck.query(
        con, "SELECT * FROM analytics_country_daily")}
    day = WINDOW[-1]
    germany = rows[("Germany", day)]
    assert germany["population"] == populations["Germany"]
    assert_close(germany["confirmed_per_100k"], germany["confirmed"] * 1e5 / populations["Germany"], "cases/100k")
    assert_close(germany["deaths_per_100k"], germany["deaths"] * 1e5 / populations["Germany"], "deaths/100k")
    week = sum(expected[("Germany", day - timedelta(days=k))]["new_cases"] for k in range(7))
    assert_close(germany["new_cases_7d_per_100k"], week * 1e5 / populations["Germany"], "7-day new cases/100k")
    assert rows[("Germany", WINDOW[0])]["new_cases_7d_per_100k"] is None  # no 7 days of changes yet
    for ship in ("Diamond Princess", "MS Zaandam"):
        row = rows[(ship, day)]
        assert row["confirmed"] > 0 and row["population"] is None
        assert (row["confirmed_per_100k"], row["deaths_per_100k"], row["new_cases_7d_per_100k"]) == (None, None, None)
    with_population = [r for r in rows.values() if r["population"] is not None]
    assert len({r["country_region"] for r in with_population}) >= 180
