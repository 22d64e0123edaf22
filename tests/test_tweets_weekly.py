"""spark_jobs/weekly_tweets_vs_cases.py on a tiny lake: cumulative JHU totals -> weekly new cases."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import weekly_tweets_vs_cases as job

JHU_COLUMNS = ("country_region string, province_state string, admin2 string, fips string, iso3 string, "
               "combined_key string, last_update timestamp, latitude double, longitude double, confirmed bigint, "
               "deaths bigint, recovered bigint, active bigint, incident_rate double, case_fatality_ratio double, "
               "source_file string, report_date date")


def write_jhu(spark, lake: Path) -> None:
    rows = []
    start = date(2021, 2, 28)  # a Sunday: the day before the first week, needed for Monday's new cases
    for i in range(15):
        day = start + timedelta(days=i)
        if day == date(2021, 3, 10):
            continue  # a missing report day: the next day's difference spans both
        for province, base, step in (("New York", 1000, 10), ("Texas", 2000, 20)):
            rows.append(("US", province, None, None, "USA", f"{province}, US", datetime(2021, 1, 1), 0.0, 0.0,
                         base + step * i, base // 100 + i, 0, 0, 0.0, 0.0, "x.csv", day))
        rows.append(("Portugal", None, None, None, "PRT", "Portugal", datetime(2021, 1, 1), 0.0, 0.0,
                     500 + 5 * i, 10 + i // 2, 0, 0, 0.0, 0.0, "x.csv", day))
        rows.append(("Diamond Princess", None, None, None, None, "Diamond Princess", datetime(2021, 1, 1),
                     0.0, 0.0, 712, 13, 0, 0, 0.0, 0.0, "x.csv", day))
    (spark.createDataFrame(rows, JHU_COLUMNS).write.mode("overwrite").partitionBy("report_date")
     .parquet(str(lake / "processed/jhu_daily_reports")))


def write_stats(spark, lake: Path) -> None:
    rows = [("US", 5, date(2021, 3, 1)), ("US", 7, date(2021, 3, 7)), ("US", 4, date(2021, 3, 8)),
            ("PT", 3, date(2021, 3, 2)), ("ES", 2, date(2021, 3, 3)), (None, 50, date(2021, 3, 3))]
    (spark.createDataFrame([(c, n, [], [], 0.1, d) for c, n, d in rows],
                           "country_code string, tweet_count bigint, top_hashtags array<string>, "
                           "top_words array<string>, mean_sentiment double, date date")
     .write.mode("overwrite").partitionBy("date").parquet(str(lake / "processed/tweet_daily_stats")))


def test_weekly_tweets_next_to_new_cases(spark, tmp_path):
    lake = tmp_path / "lake"
    write_jhu(spark, lake)
    write_stats(spark, lake)
    summary_path = tmp_path / "s.json"
    code = job.main(["--lake", str(lake), "--start-date", "2021-03-03", "--end-date", "2021-03-09",
                     "--summary-uri", str(summary_path)])
    assert code == 0
    summary = json.loads(summary_path.read_text())
    assert set(summary["dates"]) == {"2021-03-01", "2021-03-08"}
    out = {(r.week_start.isoformat(), r.country_code): r
           for r in spark.read.parquet(str(lake / "processed/weekly_tweets_vs_cases")).collect()}
    us1 = out[("2021-03-01", "US")]
    # Seven days of +30/day summed over New York and Texas; two deaths a day.
    assert (us1.tweet_count, us1.new_cases, us1.new_deaths, us1.iso3) == (12, 210, 14, "USA")
    assert us1.tweets_per_1000_new_cases == round(12 * 1000 / 210, 4)
    pt1 = out[("2021-03-01", "PT")]
    assert (pt1.tweet_count, pt1.new_cases, pt1.country_name) == (3, 35, "Portugal")
    es1 = out[("2021-03-01", "ES")]
    assert (es1.tweet_count, es1.new_cases, es1.iso3) == (2, None, "ESP")  # tweets, no JHU rows
    us2 = out[("2021-03-08", "US")]
    # 8..14 March without the 10th: the 11th's difference covers two days, so the week still sums to 7 days.
    assert (us2.tweet_count, us2.new_cases, us2.report_days) == (4, 210, 6)
    assert not any(k[1] is None for k in out)  # no country: tweets without place, Diamond Princess


def test_country_table_is_a_consistent_iso_mapping():
    with open(job.DEFAULT_REFERENCE / "country_codes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({r["alpha2"] for r in rows}) == len({r["alpha3"] for r in rows}) == len(rows) >= 249
    assert all(len(r["alpha2"]) == 2 and len(r["alpha3"]) == 3 and r["name"] for r in rows)
    by2 = {r["alpha2"]: r["alpha3"] for r in rows}
    assert (by2["US"], by2["GB"], by2["PT"], by2["XK"]) == ("USA", "GBR", "PRT", "XKS")


def test_week_starts_cover_every_overlapping_week():
    assert job.week_starts(date(2021, 3, 3), date(2021, 3, 9)) == [date(2021, 3, 1), date(2021, 3, 8)]
    assert job.week_starts(date(2021, 3, 1), date(2021, 3, 1)) == [date(2021, 3, 1)]
