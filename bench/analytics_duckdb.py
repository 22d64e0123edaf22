"""Time the analytics on DuckDB over a processed JHU lake (default: every 14-column report, 2020-05-29 on).

    PYTHONPATH=plugins:. python bench/analytics_duckdb.py [--lake DIR] [--source ../shared/data/jhu/daily_reports]

Prints the seconds to build the stand-in lake (if it is missing), to count each view, and to compute all
dashboard extracts, with row counts and the extracts' size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from covid19_lake.analytics import extracts
from covid19_lake.analytics.dialect import iso2_by_iso3
from covid19_lake.analytics.views import VIEWS
from local.analytics import duck, fixture_lake

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", type=Path, default=None)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "jhu" / "daily_reports")
    args = parser.parse_args()
    lake = args.lake or Path(tempfile.mkdtemp(prefix="bench-lake-"))
    if not any(duck.table_dir(lake, "jhu_daily_reports").glob("report_date=*/*.parquet")):
        start = time.perf_counter()
        days = fixture_lake.build(args.source, lake)
        print(f"build stand-in lake: {len(days)} report days in {time.perf_counter() - start:.1f}s")
    start = time.perf_counter()
    con = duck.connect(lake)
    print(f"connect + create {len(VIEWS)} views: {time.perf_counter() - start:.2f}s")
    for view in VIEWS:
        start = time.perf_counter()
        (rows,) = con.execute(f"SELECT COUNT(*) FROM {view.name}").fetchone()
        print(f"{view.name}: {rows} rows in {time.perf_counter() - start:.2f}s")
    start = time.perf_counter()
    files = extracts.build(lambda sql: duck.query(con, sql), iso2_by_iso3(), engine="duckdb")
    size = sum(len(extracts.encode(document)) for document in files.values())
    print(f"extracts: {len(files)} files, {size / 1e6:.1f} MB in {time.perf_counter() - start:.2f}s")
    con.close()


if __name__ == "__main__":
    main()
