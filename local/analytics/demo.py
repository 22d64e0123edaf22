"""Build the dashboard from the local lake and serve it on 127.0.0.1 (the dashboard part of `make demo`).

    python -m local.analytics.demo [--lake .local/lake] [--site .local/site] [--port 8050] [--no-serve]

If the local lake has no processed JHU table yet, it is filled from the JHU mirror in ../shared by the
stand-in in fixture_lake (the same layout the Spark job writes), and this is said on the console.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from local.analytics import dashboard, fixture_lake
from local.analytics.duck import table_dir
from local.analytics.serve import DEFAULT_PORT, serve_until_interrupted

JHU_MIRROR = dashboard.REPO_ROOT.parent / "shared" / "data" / "jhu" / "daily_reports"


def prepare(lake: Path, site: Path, bundle: Path) -> dict:
    if not any(table_dir(lake, "jhu_daily_reports").glob("report_date=*/*.parquet")):
        print(f"{lake} has no processed jhu_daily_reports: building it from {JHU_MIRROR} (stand-in for the "
              "Spark job, 2020-05-29 onwards)", flush=True)
        fixture_lake.build(JHU_MIRROR, lake)
    if not (bundle / "index.html").is_file():
        dashboard.build_bundle(bundle)
    return dashboard.write_site(lake, site, bundle)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, default=Path(".local/lake"))
    parser.add_argument("--site", type=Path, default=Path(".local/site"))
    parser.add_argument("--bundle", type=Path, default=dashboard.DEFAULT_BUNDLE)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--no-serve", action="store_true")
    args = parser.parse_args(argv)
    meta = prepare(args.lake, args.site, args.bundle)
    print(f"dashboard site: {args.site} ({meta['countries']} countries, {meta['first_report_date']} … "
          f"{meta['latest_report_date']})", flush=True)
    if args.no_serve:
        return
    serve_until_interrupted(args.site, args.port)


if __name__ == "__main__":
    main()
