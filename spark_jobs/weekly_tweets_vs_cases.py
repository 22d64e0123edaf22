"""Tweets per country and ISO week next to that week's new COVID-19 cases and deaths (JHU).

    spark-submit --py-files lib.zip weekly_tweets_vs_cases.py --lake s3://lake \
        --start-date 2021-03-01 --end-date 2021-03-14 \
        [--reference-uri s3://artifacts/spark_jobs/reference] [--summary-uri URI]

Weeks start on Monday; every week overlapping [start, end] is rebuilt whole into
{lake}/processed/weekly_tweets_vs_cases/week_start=YYYY-MM-DD/. Tweets come from tweet_daily_stats
(country_code is ISO 3166-1 alpha-2), cases from jhu_daily_reports, whose confirmed/deaths are cumulative:
a day's new cases are the per-country total minus the total of the previous report day (looked up to
14 days back, so a missing report day does not make a week start from zero). JHU's iso3 is mapped to
alpha-2 with reference/country_codes.csv (ISO 3166-1 from Debian's iso-codes, plus Kosovo XK/XKS).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_common import path_exists, summary

JOB = "weekly_tweets_vs_cases"
DEFAULT_REFERENCE = Path(__file__).resolve().parent / "reference"
LOOKBACK_DAYS = 14


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="weekly_tweets_vs_cases.py")
    parser.add_argument("--lake", required=True)
    parser.add_argument("--start-date", type=date.fromisoformat, required=True)
    parser.add_argument("--end-date", type=date.fromisoformat)
    parser.add_argument("--reference-uri", default=str(DEFAULT_REFERENCE))
    parser.add_argument("--summary-uri")
    args = parser.parse_args(argv)
    args.end_date = args.end_date or args.start_date
    if args.end_date < args.start_date:
        parser.error(f"--end-date {args.end_date} is before --start-date {args.start_date}")
    return args


def week_starts(start: date, end: date) -> list[date]:
    first = start - timedelta(days=start.weekday())
    return [first + timedelta(weeks=i) for i in range((end - first).days // 7 + 1)]


def load_country_codes(spark: SparkSession, reference_uri: str) -> DataFrame:
    return (spark.read.option("header", True).csv(f"{reference_uri.rstrip('/')}/country_codes.csv")
            .select(F.col("alpha2").alias("country_code"), F.col("alpha3").alias("iso3"),
                    F.col("name").alias("country_name")))


def weekly_tweets(stats: DataFrame, first: date, last: date) -> DataFrame:
    rows = stats.where(F.col("date").between(F.lit(first), F.lit(last)) & F.col("country_code").isNotNull())
    return (rows.withColumn("week_start", F.date_trunc("week", F.col("date")).cast("date"))
            .groupBy("week_start", "country_code").agg(F.sum("tweet_count").cast("bigint").alias("tweet_count")))


def daily_new(jhu: DataFrame, first: date, last: date) -> DataFrame:
    """Per iso3 and report day: new cases and deaths as the difference of the cumulative country totals."""
    rows = jhu.where(F.col("report_date").between(F.lit(first - timedelta(days=LOOKBACK_DAYS)), F.lit(last))
                     & F.col("iso3").isNotNull())
    totals = rows.groupBy("report_date", "iso3").agg(F.sum("confirmed").alias("confirmed"),
                                                      F.sum("deaths").alias("deaths"))
    prev = Window.partitionBy("iso3").orderBy("report_date")
    return (totals
            .withColumn("new_cases", F.col("confirmed") - F.lag("confirmed").over(prev))
            .withColumn("new_deaths", F.col("deaths") - F.lag("deaths").over(prev))
            .where(F.col("report_date") >= F.lit(first)))


def weekly_cases(jhu: DataFrame, first: date, last: date) -> DataFrame:
    return (daily_new(jhu, first, last)
            .withColumn("week_start", F.date_trunc("week", F.col("report_date")).cast("date"))
            .groupBy("week_start", "iso3")
            .agg(F.sum("new_cases").cast("bigint").alias("new_cases"),
                 F.sum("new_deaths").cast("bigint").alias("new_deaths"),
                 F.countDistinct("report_date").cast("int").alias("report_days")))


def combine(tweets: DataFrame, cases: DataFrame, codes: DataFrame) -> DataFrame:
    cases = cases.join(F.broadcast(codes), "iso3", "left")
    out = tweets.join(cases, ["week_start", "country_code"], "full_outer")
    out = out.join(F.broadcast(codes.select("country_code", F.col("iso3").alias("_iso3"),
                                            F.col("country_name").alias("_name"))), "country_code", "left")
    count = F.coalesce("tweet_count", F.lit(0)).cast("bigint")
    return out.select(
        "country_code", F.coalesce("iso3", "_iso3").alias("iso3"),
        F.coalesce("country_name", "_name").alias("country_name"),
        count.alias("tweet_count"), "new_cases", "new_deaths",
        F.coalesce("report_days", F.lit(0)).alias("report_days"),
        F.when(F.col("new_cases") > 0, F.round(count * 1000.0 / F.col("new_cases"), 4))
        .cast("double").alias("tweets_per_1000_new_cases"),
        "week_start",
    )


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    clock = summary.Clock()
    lake = args.lake.rstrip("/")
    weeks = week_starts(args.start_date, args.end_date)
    first, last = weeks[0], weeks[-1] + timedelta(days=6)
    summary_dates: dict[str, dict] = {}
    try:
        codes = load_country_codes(spark, args.reference_uri).cache()
        stats_uri, jhu_uri = f"{lake}/processed/tweet_daily_stats", f"{lake}/processed/jhu_daily_reports"
        tweets = (weekly_tweets(spark.read.parquet(stats_uri), first, last) if path_exists(spark, stats_uri)
                  else spark.createDataFrame([], "week_start date, country_code string, tweet_count bigint"))
        if not path_exists(spark, jhu_uri):
            raise FileNotFoundError(f"JHU table not found at {jhu_uri}")
        jhu = spark.read.parquet(jhu_uri)
        unmapped = sorted(r.iso3 for r in jhu.where(F.col("report_date").between(F.lit(first), F.lit(last)))
                          .select("iso3").distinct().join(codes, "iso3", "left_anti").collect() if r.iso3)
        result = combine(tweets, weekly_cases(jhu, first, last), codes).where(
            F.col("country_code").isNotNull() | F.col("iso3").isNotNull()).cache()
        per_week = {r.week_start: r["count"] for r in result.groupBy("week_start").count().collect()}
        (result.repartition(1, "week_start").write.mode("overwrite").partitionBy("week_start")
         .parquet(f"{lake}/processed/weekly_tweets_vs_cases"))
        for week in weeks:
            written = int(per_week.get(week, 0))
            summary_dates[week.isoformat()] = {
                "status": summary.COMPLETED if written else summary.NO_INPUT, "rows_read": written,
                "rows_written": written, "rows_quarantined": 0, "error": None,
                "partitions": {"weekly_tweets_vs_cases": [f"week_start={week.isoformat()}"] if written else []}}
        result.unpersist()
        extra = {"iso3_without_country_code": unmapped}
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        summary_dates = {w.isoformat(): summary.failed_entry(error) for w in weeks}
        extra = {}
    return summary.build(JOB, spark, clock, summary_dates, **extra)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return summary.run_with_summary("covid19-lake-weekly-tweets-vs-cases", run, args)


if __name__ == "__main__":
    sys.exit(main())
