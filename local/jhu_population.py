"""Derive the population reference of the analytics from JHU CSSE's own location lookup table.

    .venv/bin/python -m local.jhu_population [--table PATH] [--out PATH]

Source: `UID_ISO_FIPS_LookUp_Table.csv` of CSSEGISandData/COVID-19 (`csse_covid_19_data/`), 2022-04-17 state, as
kept in ../shared/data/jhu/reference/ (README there; licence CC BY 4.0, JHU CSSE). The output,
plugins/covid19_lake/analytics/reference/jhu_population.csv, is the reviewed, committed reference: one row per
location of the table (country rows have no province and no admin2; provinces and US counties where JHU has
them), `population` empty where JHU has none (ships, the Olympics, Antarctica, `Unassigned`/`Out of` rows).
Only JHU's own numbers are used, so rates match JHU's `Incident_Rate` basis. Rerun it when the table changes
and review the diff.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TABLE = REPO.parent / "shared" / "data" / "jhu" / "reference" / "UID_ISO_FIPS_LookUp_Table.csv"
DEFAULT_OUT = REPO / "plugins" / "covid19_lake" / "analytics" / "reference" / "jhu_population.csv"
COLUMNS = ("uid", "country_region", "province_state", "admin2", "iso3", "population")


def derive(table: Path) -> list[dict[str, str]]:
    with table.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        population = row["Population"].strip()
        if population and (not population.isdigit() or int(population) <= 0):
            raise ValueError(f"{table}: UID {row['UID']}: population {population!r} is not a positive count")
        out.append({"uid": row["UID"].strip(), "country_region": row["Country_Region"].strip(),
                    "province_state": row["Province_State"].strip(), "admin2": row["Admin2"].strip(),
                    "iso3": row["iso3"].strip(), "population": population})
    keys = [(r["country_region"], r["province_state"], r["admin2"]) for r in out]
    if len(keys) != len(set(keys)):
        raise ValueError(f"{table}: a location appears twice")
    countries = {r["country_region"] for r in out}
    top = {r["country_region"] for r in out if not r["province_state"] and not r["admin2"]}
    if countries != top:
        raise ValueError(f"{table}: countries without a country row: {sorted(countries - top)}")
    return sorted(out, key=lambda r: (r["country_region"], r["province_state"], r["admin2"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rows = derive(args.table)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} locations, {sum(1 for r in rows if r['population'])} with a population -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
