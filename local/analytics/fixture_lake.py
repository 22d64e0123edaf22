"""A stand-in for the JHU Spark job: processed jhu_daily_reports Parquet from raw JHU daily reports.

For tests and the demo until the real job's output is there. It reads only the 05-29-2020+ header era
(FIPS, Admin2, Province_State, Country_Region, Last_Update, Lat, Long_, Confirmed, Deaths, Recovered,
Active, Combined_Key, Incident/Incidence_Rate, Case_Fatality/Case-Fatality_Ratio) and normalises it to the
data contract with a simple country rule: the country name as published, trimmed, and the country's ISO
alpha-3 code for all of its rows. The layout is the contract's:
{lake}/processed/jhu_daily_reports/report_date=YYYY-MM-DD/*.parquet.

    python -m local.analytics.fixture_lake --source ../shared/data/jhu/daily_reports --lake .local/lake
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import duckdb

from covid19_lake.analytics.dialect import COUNTRY_CODES_CSV

FILE_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{4})\.csv$")
FIRST_DATE = date(2020, 5, 29)  # first report with the 14-column header

# JHU spellings that differ from the ISO 3166 short names.
JHU_ALIASES = {
    "US": "USA", "Korea, South": "KOR", "Taiwan*": "TWN", "Russia": "RUS", "Iran": "IRN", "Burma": "MMR",
    "Vietnam": "VNM", "Syria": "SYR", "Bolivia": "BOL", "Venezuela": "VEN", "Tanzania": "TZA",
    "Moldova": "MDA", "Laos": "LAO", "Brunei": "BRN", "Congo (Kinshasa)": "COD", "Congo (Brazzaville)": "COG",
    "Cote d'Ivoire": "CIV", "West Bank and Gaza": "PSE", "Kosovo": "XKS", "Holy See": "VAT",
    "Micronesia": "FSM", "Cabo Verde": "CPV", "Czechia": "CZE", "Bahamas": "BHS", "Gambia": "GMB",
    "Eswatini": "SWZ", "North Macedonia": "MKD", "United Kingdom": "GBR", "Turkey": "TUR",
}


def report_date(path: Path) -> date:
    match = FILE_NAME.match(path.name)
    if not match:
        raise ValueError(f"{path}: expected a JHU daily report named MM-DD-YYYY.csv")
    month, day, year = (int(part) for part in match.groups())
    return date(year, month, day)


def select_reports(source: Path, dates: Iterable[date] | None = None) -> list[Path]:
    """The source's daily reports of the 14-column era, optionally only the given dates."""
    wanted = set(dates) if dates is not None else None
    files = sorted((p for p in Path(source).glob("*.csv") if FILE_NAME.match(p.name)), key=report_date)
    chosen = [p for p in files if report_date(p) >= FIRST_DATE and (wanted is None or report_date(p) in wanted)]
    if wanted is not None and len(chosen) != len(wanted):
        found = {report_date(p) for p in chosen}
        raise FileNotFoundError(f"{source}: no 14-column daily report for {sorted(wanted - found)}")
    return chosen


def country_iso3() -> dict[str, str]:
    with COUNTRY_CODES_CSV.open(newline="", encoding="utf-8") as handle:
        names = {row["name"]: row["alpha_3"] for row in csv.DictReader(handle)}
    return names | JHU_ALIASES


def build(source: Path, lake: Path, dates: Iterable[date] | None = None) -> list[date]:
    """Write the processed partitions of the chosen reports; re-running replaces them (idempotent)."""
    files = select_reports(source, dates)
    if not files:
        raise FileNotFoundError(f"{source}: no JHU daily reports dated {FIRST_DATE} or later")
    out = Path(lake) / "processed" / "jhu_daily_reports"
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        con.execute("CREATE TABLE iso (name VARCHAR, iso3 VARCHAR)")
        con.executemany("INSERT INTO iso VALUES (?, ?)", sorted(country_iso3().items()))
        file_list = "[" + ", ".join("'" + p.as_posix().replace("'", "''") + "'" for p in files) + "]"
        con.execute(f"""
            CREATE TABLE raw AS SELECT * FROM read_csv({file_list}, all_varchar = true, header = true,
                union_by_name = true, filename = true)
        """)
        columns = {row[0] for row in con.execute("DESCRIBE raw").fetchall()}
        rate = _coalesce(columns, "Incident_Rate", "Incidence_Rate")
        cfr = _coalesce(columns, "Case_Fatality_Ratio", "Case-Fatality_Ratio")
        con.execute(f"""
            CREATE TABLE processed AS
            SELECT
                trim(r.Country_Region) AS country_region,
                NULLIF(trim(r.Province_State), '') AS province_state,
                NULLIF(trim(r.Admin2), '') AS admin2,
                NULLIF(regexp_replace(trim(r.FIPS), '\\.0$', ''), '') AS fips,
                iso.iso3,
                trim(r.Combined_Key) AS combined_key,
                CAST(r.Last_Update AS TIMESTAMP) AS last_update,
                TRY_CAST(r.Lat AS DOUBLE) AS latitude,
                TRY_CAST(r.Long_ AS DOUBLE) AS longitude,
                CAST(CAST(NULLIF(r.Confirmed, '') AS DOUBLE) AS BIGINT) AS confirmed,
                CAST(CAST(NULLIF(r.Deaths, '') AS DOUBLE) AS BIGINT) AS deaths,
                CAST(CAST(NULLIF(r.Recovered, '') AS DOUBLE) AS BIGINT) AS recovered,
                CAST(CAST(NULLIF(r.Active, '') AS DOUBLE) AS BIGINT) AS active,
                TRY_CAST({rate} AS DOUBLE) AS incident_rate,
                TRY_CAST({cfr} AS DOUBLE) AS case_fatality_ratio,
                parse_filename(r.filename) AS source_file,
                strptime(parse_filename(r.filename, true), '%m-%d-%Y')::DATE AS report_date
            FROM raw AS r LEFT JOIN iso ON iso.name = trim(r.Country_Region)
        """)
        con.execute(f"COPY processed TO '{out.as_posix()}' "
                    "(FORMAT parquet, PARTITION_BY (report_date), OVERWRITE_OR_IGNORE true, "
                    "FILENAME_PATTERN 'part-{i}')")
        return [d for (d,) in con.execute("SELECT DISTINCT report_date FROM processed ORDER BY 1").fetchall()]
    finally:
        con.close()


def write_table(lake: Path, table: str, rows: list[dict], partition: str) -> Path:
    """Write rows (dicts with the contract's columns) as a processed table partitioned by `partition`.

    For tests and demos that need tweets before the tweet jobs ran; column types follow duck.CONTRACTS.
    """
    from local.analytics.duck import CONTRACTS

    expected_partition, columns = CONTRACTS[table]
    if partition != expected_partition:
        raise ValueError(f"{table} is partitioned by {expected_partition}, not {partition}")
    out = Path(lake) / "processed" / table
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        typed = {**columns, partition: "DATE"}
        con.execute(f"CREATE TABLE t ({', '.join(f'{chr(34)}{n}{chr(34)} {k}' for n, k in typed.items())})")
        names = list(typed)
        con.executemany(f"INSERT INTO t VALUES ({', '.join('?' for _ in names)})",
                        [[row.get(n) for n in names] for row in rows])
        con.execute(f"COPY t TO '{out.as_posix()}' (FORMAT parquet, PARTITION_BY (\"{partition}\"), "
                    "OVERWRITE_OR_IGNORE true, FILENAME_PATTERN 'part-{i}')")
    finally:
        con.close()
    return out


SAMPLE_HASHTAGS = ("covid19", "COVID19", "#Covid19", "lockdown", "maske", "stayhome", "vaccine", "coronavirus",
                   "wearamask", "testing", "nhs", "rki", "2ndwave", "socialdistancing", "flattenthecurve")


def sample_tweets(days: list[date], count: int = 600, seed: int = 20200701,
                  countries: tuple[str, ...] = ("DE", "US", "GB", "FR")) -> list[dict]:
    """Synthetic tweets in the processed tweets contract (deterministic for a seed), for tests only:
    real tweets cannot be shipped, and the tweet jobs are tested elsewhere."""
    rng = random.Random(seed)
    tweets = []
    for n in range(count):
        day = rng.choice(days)
        tweets.append({
            "tweet_id": str(10**18 + n), "created_at": f"{day} {rng.randrange(24):02d}:00:00", "lang": "en",
            "author_id": str(rng.randrange(50)), "author_username": f"user{n % 50}", "text": "synthetic",
            "hashtags": rng.sample(SAMPLE_HASHTAGS, rng.randrange(0, 4)), "mentions": [],
            "country_code": rng.choice((*countries, None)), "retweet_count": 0, "reply_count": 0,
            "like_count": 0, "quote_count": 0, "sentiment": 0.0, "sentiment_label": "neutral",
            "created_date": day.isoformat(),
        })
    return tweets


def daily_stats_of(tweets: list[dict]) -> list[dict]:
    """tweet_daily_stats rows (tweet counts only) of sample tweets."""
    counts = Counter((t["country_code"], t["created_date"]) for t in tweets if t["country_code"])
    return [{"country_code": cc, "tweet_count": n, "top_hashtags": [], "top_words": [], "mean_sentiment": 0.0,
             "date": day} for (cc, day), n in sorted(counts.items())]


def _coalesce(columns: set[str], *names: str) -> str:
    present = [f'r."{name}"' for name in names if name in columns]
    return f"COALESCE({', '.join(present)})" if present else "NULL"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder of JHU daily report CSVs")
    parser.add_argument("--lake", type=Path, required=True, help="local lake root")
    parser.add_argument("--from", dest="start", type=date.fromisoformat, default=None)
    parser.add_argument("--to", dest="end", type=date.fromisoformat, default=None)
    args = parser.parse_args(argv)
    dates = None
    if args.start or args.end:
        files = select_reports(args.source)
        dates = [report_date(p) for p in files
                 if (args.start is None or report_date(p) >= args.start)
                 and (args.end is None or report_date(p) <= args.end)]
    written = build(args.source, args.lake, dates)
    print(f"{datetime.now():%H:%M:%S} wrote {len(written)} report days ({written[0]} … {written[-1]}) "
          f"to {Path(args.lake) / 'processed' / 'jhu_daily_reports'}")


if __name__ == "__main__":
    main()
