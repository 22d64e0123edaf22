"""Country-day agreement of the JHU job's output with JHU's own global time series, against a plain pandas sum.

    .venv/bin/python bench/jhu_agreement.py [--time-series DIR] [--mirror DIR] [--master local[2]]
                                            [--processed DIR] [--keep] [--job PATH]

JHU's time series (`time_series_covid19_confirmed_global.csv`, `time_series_covid19_deaths_global.csv`, the
final 2023-03 state) is not part of the shared data and never goes into git: pass the folder holding both
(default `.local/jhu_time_series/`, ignored by git). Dates in its header may be `M/D/YY` or `MM-DD-YYYY` (a
spreadsheet round trip rewrites some).

A country-day agrees when the summed count of every row of that country and report date equals the time
series' value (provinces summed); a country the output lacks on a day counts 0. Measured over every country
of the time series and every date of the 495 files, for Confirmed and Deaths, for:

* ours: the Spark job (spark-submit, as bench/jhu_spark_job.py runs it) over all 495 files;
* plain sum: pandas `read_csv` of each file, country names through the same mapping table, Confirmed and
  Deaths summed as they are (no checks, no duplicate handling);
* the same two on the files as first published (2020-01-22 .. 2020-03-31 with CRLF line endings, and a UTF-8
  BOM on the 12 files that had one: see ../shared/data/jhu/README.md).

Prints one line per measure and `RESULT {json}` last.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.jhu_spark_job import JOB, MIRROR, build_lake, spark_env  # noqa: E402

DEFAULT_TIME_SERIES = REPO / ".local" / "jhu_time_series"
MAPPING = REPO / "spark_jobs" / "reference" / "jhu_country_mapping.csv"
MEASURES = ("confirmed", "deaths")
# As first published (October 2020 state of CSSEGISandData/COVID-19): BOM on these, CRLF in Jan-Mar 2020.
BOM_FILES = ("01-22-2020", "01-23-2020", "01-24-2020", "01-25-2020", "01-26-2020", "01-27-2020", "01-28-2020",
             "01-29-2020", "01-30-2020", "01-31-2020", "03-13-2020", "03-22-2020")
FIRST_PUBLISHED = (dt.date(2020, 1, 22), dt.date(2020, 3, 31))


def _header_date(text: str) -> dt.date:
    return (dt.datetime.strptime(text, "%m/%d/%y") if "/" in text else dt.datetime.strptime(text, "%m-%d-%Y")).date()


def load_time_series(folder: Path) -> pd.DataFrame:
    """(country_region, report_date) -> confirmed, deaths: JHU's time series, provinces summed."""
    frames = []
    for measure in MEASURES:
        wide = pd.read_csv(folder / f"time_series_covid19_{measure}_global.csv", keep_default_na=False)
        dates = wide.columns[4:]
        long = wide.melt(id_vars=["Country/Region"], value_vars=list(dates), var_name="day", value_name=measure)
        long["report_date"] = long["day"].map({day: _header_date(day) for day in dates})
        frames.append(long.groupby(["Country/Region", "report_date"])[measure].sum())
    joined = pd.concat(frames, axis=1).reset_index().rename(columns={"Country/Region": "country_region"})
    days = sorted(joined["report_date"].unique())
    gaps = [b for a, b in itertools.pairwise(days) if (b - a).days != 1]
    if gaps:
        raise ValueError(f"time series dates are not consecutive near {gaps[:3]}")
    return joined


def load_mapping() -> dict[str, str]:
    table = pd.read_csv(MAPPING, dtype=str, keep_default_na=False)
    return {row.source_name.strip(): row.country_region.strip() for row in table.itertuples()}


def plain_sum(files: dict[dt.date, Path]) -> pd.DataFrame:
    """Each file read by pandas as it is; mapped country names; counts summed with no checks."""
    mapping, frames = load_mapping(), []
    for day, path in sorted(files.items()):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df.columns = [name.lstrip("\ufeff").strip() for name in df.columns]
        country = df["Country_Region" if "Country_Region" in df.columns else "Country/Region"].str.strip()
        frame = pd.DataFrame({"country_region": country.map(mapping), "report_date": day})
        for measure in MEASURES:
            frame[measure] = pd.to_numeric(df[measure.capitalize()], errors="coerce").fillna(0)
        frames.append(frame.dropna(subset=["country_region"]))
    all_rows = pd.concat(frames)
    return all_rows.groupby(["country_region", "report_date"])[list(MEASURES)].sum().reset_index()


def ours(processed: Path) -> pd.DataFrame:
    table = pq.read_table(processed, columns=["report_date", "country_region", *MEASURES]).to_pandas()
    table["report_date"] = pd.to_datetime(table["report_date"].astype(str)).dt.date
    return table.groupby(["country_region", "report_date"])[list(MEASURES)].sum(min_count=0).reset_index()


def agreement(truth: pd.DataFrame, totals: pd.DataFrame, days: set[dt.date]) -> dict[str, float]:
    graded = truth[truth["report_date"].isin(days)]
    merged = graded.merge(totals, on=["country_region", "report_date"], how="left", suffixes=("", "_ours"))
    agree = {measure: int((merged[measure] == merged[f"{measure}_ours"].fillna(0)).sum()) for measure in MEASURES}
    return ({measure: round(count / len(merged), 4) for measure, count in agree.items()}
            | {f"{measure}_agreeing": count for measure, count in agree.items()} | {"country_days": len(merged)})


def first_published_lake(mirror: Path, lake: Path) -> dict[dt.date, Path]:
    """The Jan-Mar 2020 files with CRLF line endings and the BOMs they were first published with."""
    files = {}
    for source in sorted(mirror.glob("*.csv")):
        day = dt.datetime.strptime(source.stem, "%m-%d-%Y").date()
        if not FIRST_PUBLISHED[0] <= day <= FIRST_PUBLISHED[1]:
            continue
        data = source.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if source.stem in BOM_FILES:
            data = b"\xef\xbb\xbf" + data
        target = lake / "raw" / "jhu" / "daily_reports" / f"report_date={day.isoformat()}" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        files[day] = target
    return files


def run_job(lake: Path, start: dt.date, end: dt.date, master: str, job: Path = JOB) -> Path:
    env = spark_env()
    command = [str(Path(env["SPARK_HOME"]) / "bin" / "spark-submit"), "--master", master, "--driver-memory", "2g",
               "--conf", "spark.ui.enabled=false", str(job), "--lake", str(lake), "--start-date", start.isoformat(),
               "--end-date", end.isoformat(), "--summary-uri", str(lake / "summary.json")]
    log = lake / "spark-submit.log"
    with log.open("w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
    if code:
        raise RuntimeError(f"spark-submit exited {code}; log: {log}")
    summary = json.loads((lake / "summary.json").read_text())["totals"]
    print(f"job over {start}..{end}: rows written {summary['rows_written']:,}, quarantined "
          f"{summary['rows_quarantined']:,}, field issues {summary.get('field_issues', 0):,}")
    return lake / "processed" / "jhu_daily_reports"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-series", type=Path, default=DEFAULT_TIME_SERIES)
    parser.add_argument("--mirror", type=Path, default=MIRROR)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--processed", type=Path, help="an existing processed table of all 495 files (no job run)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary lakes")
    parser.add_argument("--job", type=Path, default=JOB, help="the job script to grade (e.g. an older checkout's)")
    args = parser.parse_args(argv)

    truth = load_time_series(args.time_series)
    files = {dt.datetime.strptime(p.stem, "%m-%d-%Y").date(): p for p in sorted(args.mirror.glob("*.csv"))}
    every_day = set(files)
    results = {}
    with contextlib.nullcontext(tempfile.mkdtemp(prefix="jhu-agreement-")) if args.keep else \
            tempfile.TemporaryDirectory(prefix="jhu-agreement-") as tmp:
        full_lake, fancy_lake = Path(tmp) / "lake", Path(tmp) / "first-published"
        if args.processed:
            processed = args.processed
        else:
            build_lake(args.mirror, full_lake, copy=False)
            processed = run_job(full_lake, min(every_day), max(every_day), args.master, args.job)
        fancy_files = first_published_lake(args.mirror, fancy_lake)
        fancy_processed = run_job(fancy_lake, *FIRST_PUBLISHED, args.master, args.job)
        fancy_days = set(fancy_files)
        results["ours"] = agreement(truth, ours(processed), every_day)
        results["plain_sum"] = agreement(truth, plain_sum(files), every_day)
        results["ours_first_published"] = agreement(truth, ours(fancy_processed), fancy_days)
        results["plain_sum_first_published"] = agreement(truth, plain_sum(fancy_files), fancy_days)
        if args.keep:
            print(f"lakes kept in {tmp}")
    for name, numbers in results.items():
        print(f"{name:>26}: confirmed {numbers['confirmed']:.4f} ({numbers['confirmed_agreeing']:,})  "
              f"deaths {numbers['deaths']:.4f} ({numbers['deaths_agreeing']:,})  "
              f"over {numbers['country_days']:,} country-days")
    print("RESULT " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
