"""The dashboard in a real headless Chromium: the rendered page shows the lake's numbers.

The site is bundled with the pinned esbuild (dashboard/node_modules from `npm ci`), its extracts are
written by DuckDB from processed Parquet built out of the real JHU reports, and it is served on
127.0.0.1. Expected values are computed here from the raw CSV files. The screenshot is kept in
.local/test-artifacts/ (its path is printed).
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import pytest

from local.analytics import dashboard, fixture_lake
from local.analytics.headless import Browser
from local.analytics.serve import serve_in_thread, url_of

WINDOW = [date(2020, 7, 1) + timedelta(days=i) for i in range(12)]
ARTIFACTS = Path(__file__).resolve().parent.parent / ".local" / "test-artifacts"
READY = "['true', 'error'].includes(document.body.dataset.ready)"
DETAIL = ("Object.fromEntries([...document.querySelectorAll('#day-detail [data-field]')]"
          ".map(e => [e.dataset.field, e.dataset.value]))")


def germany_totals(jhu_mirror: Path, day: date) -> tuple[int, int]:
    confirmed = deaths = 0
    with (jhu_mirror / f"{day:%m-%d-%Y}.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["Country_Region"].strip() == "Germany":
                confirmed += int(row["Confirmed"])
                deaths += int(row["Deaths"])
    return confirmed, deaths


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, jhu_mirror: Path) -> Path:
    root = tmp_path_factory.mktemp("dashboard")
    lake = root / "lake"
    fixture_lake.build(jhu_mirror, lake, WINDOW)
    tweets = fixture_lake.sample_tweets(WINDOW)
    fixture_lake.write_table(lake, "tweets", tweets, "created_date")
    fixture_lake.write_table(lake, "tweet_daily_stats", fixture_lake.daily_stats_of(tweets), "date")
    bundle = dashboard.build_bundle(root / "bundle")
    dashboard.write_site(lake, root / "site", bundle)
    return root / "site"


@pytest.fixture(scope="module")
def server_url(site: Path):
    server, thread = serve_in_thread(site)
    yield url_of(server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with Browser.launch() as launched:
        yield launched


def test_page_shows_the_lakes_numbers_for_germany(browser, server_url, jhu_mirror: Path) -> None:
    day = date(2020, 7, 10)
    page = browser.open(f"{server_url}?country=Germany&date={day}")
    assert page.wait_for(READY) and page.evaluate("document.body.dataset.ready") == "true", \
        page.evaluate("document.body.dataset.error")
    shown = page.evaluate(DETAIL)

    confirmed, deaths = germany_totals(jhu_mirror, day)
    previous_confirmed, previous_deaths = germany_totals(jhu_mirror, day - timedelta(days=1))
    week_ago_confirmed, week_ago_deaths = germany_totals(jhu_mirror, day - timedelta(days=7))
    assert shown["country"] == "Germany" and shown["date"] == day.isoformat()
    assert int(shown["confirmed"]) == confirmed
    assert int(shown["deaths"]) == deaths
    # New cases and deaths are read back from the rendered charts' data.
    assert int(shown["new_cases"]) == confirmed - previous_confirmed
    assert int(shown["new_deaths"]) == deaths - previous_deaths
    assert float(shown["new_cases_avg_7d"]) == pytest.approx((confirmed - week_ago_confirmed) / 7, abs=0.006)
    assert float(shown["new_deaths_avg_7d"]) == pytest.approx((deaths - week_ago_deaths) / 7, abs=0.006)
    assert float(shown["case_fatality_ratio"]) == pytest.approx(deaths * 100 / confirmed, abs=0.006)
    assert shown["corrected"] == "false"
    # Per 100,000 people with JHU's population of Germany (its UID lookup table)
    population = 83155031
    assert int(shown["population"]) == population
    assert float(shown["confirmed_per_100k"]) == pytest.approx(confirmed * 1e5 / population, abs=0.006)
    assert float(shown["deaths_per_100k"]) == pytest.approx(deaths * 1e5 / population, abs=0.006)
    assert float(shown["new_cases_7d_per_100k"]) == pytest.approx(
        (confirmed - week_ago_confirmed) * 1e5 / population, abs=0.006)
    rendered = page.evaluate("document.querySelector('#day-detail [data-field=confirmed_per_100k]').textContent")
    assert rendered == f"{confirmed * 1e5 / population:,.2f}"

    assert page.evaluate("document.getElementById('global-cases').dataset.points") == str(len(WINDOW))
    options = page.evaluate("[...document.querySelectorAll('#country-picker option')].map(o => o.value)")
    assert "Germany" in options and "US" in options and len(options) > 150
    hashtags = page.evaluate("[...document.querySelectorAll('#hashtags li')].map(li => li.textContent)")
    assert 1 <= len(hashtags) <= 10 and all(h.startswith("#") for h in hashtags)
    assert page.evaluate("document.getElementById('hashtags-day').textContent") == f"Germany, {day}"
    sources = page.evaluate("[...document.querySelectorAll('.tweets-source')].map(n => [n.hidden, n.textContent])")
    assert len(sources) == 2 and all(not hidden and text.startswith("Synthetic tweets") for hidden, text in sources)
    located = page.evaluate("document.querySelectorAll('#location-table tbody tr').length")
    assert located == 15  # Germany's 16 states, the top 15 by confirmed
    assert page.exceptions == [] and page.console_errors == []

    shot = page.screenshot(ARTIFACTS / "dashboard-germany.png")
    print(f"\ndashboard screenshot: {shot}")
    assert shot.stat().st_size > 20_000


def test_a_real_correction_is_shown_as_a_negative_day(browser, server_url, jhu_mirror: Path) -> None:
    day = date(2020, 7, 6)  # JHU lowered Germany's cumulative deaths that day
    page = browser.open(f"{server_url}?country=Germany&date={day}")
    assert page.wait_for(READY) and page.evaluate("document.body.dataset.ready") == "true"
    shown = page.evaluate(DETAIL)
    deaths = germany_totals(jhu_mirror, day)[1] - germany_totals(jhu_mirror, day - timedelta(days=1))[1]
    assert deaths < 0
    assert int(shown["new_deaths"]) == deaths
    assert shown["corrected"] == "true"
    assert shown["new_cases_avg_7d"] == ""  # fewer than 7 daily changes in the lake before that day


def test_a_ship_without_a_population_shows_no_rates(browser, server_url) -> None:
    page = browser.open(f"{server_url}?country=Diamond%20Princess&date=2020-07-10")
    assert page.wait_for(READY) and page.evaluate("document.body.dataset.ready") == "true"
    shown = page.evaluate(DETAIL)
    assert shown["country"] == "Diamond Princess" and int(shown["confirmed"]) > 0
    for field in ("population", "confirmed_per_100k", "deaths_per_100k", "new_cases_7d_per_100k"):
        assert shown[field] == "", field
        cell = page.evaluate(f"document.querySelector('#day-detail [data-field={field}]').textContent")
        assert cell == "–", field
