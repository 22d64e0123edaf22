"""Single-process pandas reference for the JHU daily-reports job: same rules, same outputs, one machine.

    .venv/bin/python bench/jhu_pandas_reference.py [--mirror DIR] [--out DIR] [--no-write]

Reads every file of the offline mirror, applies the rules of docs/jhu-normalization.md (header eras, country
mapping table, timestamps, checks, duplicates), writes processed and quarantine Parquet partitioned by
report_date (like the Spark job) and prints wall time, rows/s and peak RSS. The last line is
`RESULT {json}` so bench/jhu_spark_job.py can compute its ratio. Needs pandas (bench only, not a job
dependency).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "spark_jobs"))

# The era table, formats and patterns are shared with the job, so both implement the same rules.
from jhu_daily_reports import DEFAULT_MAPPING  # noqa: E402

from jhu.checks import COORDINATE_RANGES, ROW_COUNT_FIELDS  # noqa: E402
from jhu.eras import CANONICAL_FIELDS, COUNT_FIELDS, DOUBLE_FIELDS, detect_era  # noqa: E402
from jhu.transform import CLEAR_PROVINCE, OUTPUT_COLUMNS  # noqa: E402

WHOLE_NUMBER = r"^[+-]?[0-9]+(\.0*)?$"
DECIMAL_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
DEFAULT_MIRROR = REPO.parent / "shared" / "data" / "jhu" / "daily_reports"
# The job's Last_Update formats as strptime formats, each tried on values of its shape.
TIMESTAMP_SHAPES = {
    "%Y-%m-%d %H:%M:%S": r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2} [0-9]{1,2}:[0-9]{2}:[0-9]{2}$",
    "%Y-%m-%dT%H:%M:%S": r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{2}:[0-9]{2}$",
    "%Y-%m-%d %H:%M": r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2} [0-9]{1,2}:[0-9]{2}$",
    "%m/%d/%Y %H:%M": r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}$",
    "%m/%d/%y %H:%M": r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{2} [0-9]{1,2}:[0-9]{2}$",
}


def read_all(mirror: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(mirror.glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            era = detect_era(handle.readline())
        if era is None:
            raise SystemExit(f"unknown header in {path}")
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        frame = pd.DataFrame({name: raw[era.source_of(name)] if era.source_of(name) else "" for name in
                              CANONICAL_FIELDS})
        frame["report_date"] = dt.datetime.strptime(path.stem, "%m-%d-%Y").date()
        frame["source_file"] = path.as_uri()
        frame["line_index"] = range(len(frame))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def normalize(df: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    for name in CANONICAL_FIELDS:
        df[name] = df[name].str.strip().replace("", None)
    df = df.merge(mapping, how="left", left_on="country_region", right_on="source_name")
    reasons = []
    reasons.append(df["country_region"].isna().map({True: "Country_Region is missing", False: None}))
    unknown = df["country_region"].notna() & df["map_country"].isna()
    reasons.append(("Country_Region '" + df["country_region"] + "' is not in the country mapping table").where(
        unknown))

    province = df["province_state"].where(df["province_state"] != "None")
    province = df["map_province"].where(df["map_province"].notna(), province)
    df["province_state"] = province.where(province != CLEAR_PROVINCE)
    df["fips"] = df["fips"].str.replace(r"\.0$", "", regex=True).replace("", None)

    raw_ts = df["last_update"]
    parsed = pd.Series(pd.NaT, index=df.index, dtype="datetime64[us]")
    for strptime_format, shape in TIMESTAMP_SHAPES.items():
        mask = raw_ts.str.match(shape, na=False) & parsed.isna()
        parsed[mask] = pd.to_datetime(raw_ts[mask], format=strptime_format, errors="coerce")
    reasons.append(raw_ts.isna().map({True: "Last_Update is missing", False: None}))
    reasons.append(("Last_Update '" + raw_ts + "' is not a timestamp in a known format").where(
        raw_ts.notna() & parsed.isna()))
    df["last_update_raw"], df["last_update"] = raw_ts, parsed

    # Confirmed and Deaths decide the row; a problem in any other field only nulls it (the job also records the
    # finding in jhu_field_issues, which this timing reference does not write; it counts them).
    issues = pd.Series(0, index=df.index)
    for name in COUNT_FIELDS:
        raw = df[name]
        whole = raw.str.match(WHOLE_NUMBER, na=False)
        value = pd.to_numeric(raw.where(whole).str.replace(r"\.0*$", "", regex=True)).astype("Int64")
        negative = (value < 0).fillna(False)
        if name == "active":
            negative &= df["province_state"].ne("Recovered").fillna(True)
        if name in ROW_COUNT_FIELDS:
            reasons.append((f"{name.capitalize()} '" + raw + "' is not a whole number").where(
                raw.notna() & ~whole))
            reasons.append((f"{name.capitalize()} '" + raw + "' is negative, expected a count >= 0").where(
                negative))
        else:
            bad = (raw.notna() & ~whole) | negative
            issues += bad.astype(int)
            value = value.where(~bad)
        df[name] = value
    for name in DOUBLE_FIELDS:
        raw = df[name]
        ok = raw.str.match(DECIMAL_NUMBER, na=False)
        value = pd.to_numeric(raw.where(ok)).astype("float64")
        bad = raw.notna() & ~ok
        if name in COORDINATE_RANGES:
            bad |= (value.abs() > COORDINATE_RANGES[name]).fillna(False)
        issues += bad.astype(int)
        df[name] = value.where(~bad)
    df["field_issues"] = issues

    df["reason"] = join_reasons(reasons, df.index)
    df["country_region"], df["iso3"] = df["map_country"], df["map_iso3"]
    return df


def join_reasons(reasons: list[pd.Series], index: pd.Index) -> pd.Series:
    combined = pd.Series(None, index=index, dtype=object)
    for reason in reasons:
        both = combined.notna() & reason.notna()
        combined = combined.str.cat(reason, sep="; ").where(both, combined.where(combined.notna(), reason))
    return combined


def classify(df: pd.DataFrame) -> pd.DataFrame:
    """Same rule as the job: within a key, highest confirmed/deaths, latest last_update, highest recovered, ...."""
    valid = df[df["reason"].isna()].copy()
    order = ["confirmed", "deaths", "last_update", "recovered", "combined_key", "active", "fips", "iso3",
             "latitude", "longitude", "incident_rate", "case_fatality_ratio"]
    ascending = [False, False, False, False, True, False, True, True, True, True, True, True]
    keys = ["report_date", "country_region", "province_state", "admin2"]
    valid = valid.sort_values(keys + order, ascending=[True] * 4 + ascending, na_position="last", kind="stable")
    exact = valid.duplicated(subset=[*keys, *order], keep="first")
    first_of_key = ~valid.duplicated(subset=keys, keep="first")
    valid["outcome"] = "key_duplicate"
    valid.loc[exact, "outcome"] = "exact_duplicate"
    valid.loc[first_of_key, "outcome"] = "kept"
    quarantined = df[df["reason"].notna()].assign(outcome="quarantined")
    return pd.concat([valid, quarantined])


def add_raw_records(bad: pd.DataFrame) -> pd.DataFrame:
    """JSON of the source fields, built (like the job) only for quarantined rows: re-read their files."""
    records = pd.Series(index=bad.index, dtype=object)
    for source_file, rows in bad.groupby("source_file"):
        raw = pd.read_csv(Path(source_file.removeprefix("file://")), dtype=str, keep_default_na=False,
                          encoding="utf-8-sig")
        lines = raw.iloc[rows["line_index"].to_numpy()].to_json(orient="records", lines=True, force_ascii=False)
        records[rows.index] = lines.splitlines()
    return bad.assign(raw_record=records)


def write(df: pd.DataFrame, out: Path) -> None:
    kept = df[df["outcome"] == "kept"][list(OUTPUT_COLUMNS)]
    pq.write_to_dataset(pa.Table.from_pandas(kept, preserve_index=False), out / "processed",
                        partition_cols=["report_date"], existing_data_behavior="delete_matching")
    bad = add_raw_records(df[df["outcome"] == "quarantined"])[["report_date", "source_file", "raw_record",
                                                                 "reason"]]
    if len(bad):
        pq.write_to_dataset(pa.Table.from_pandas(bad, preserve_index=False), out / "quarantine",
                            partition_cols=["report_date"], existing_data_behavior="delete_matching")


def load_mapping(path: Path) -> pd.DataFrame:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return pd.DataFrame({
        "source_name": [r["source_name"].strip() for r in rows],
        "map_country": [r["country_region"].strip() for r in rows],
        "map_province": [r["province_state"].strip() or None for r in rows],
        "map_iso3": [r["iso3"].strip() or None for r in rows],
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--out", type=Path, help="output directory (default: a temporary one, removed)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="jhu-pandas-"))

    started = time.perf_counter()
    df = read_all(args.mirror)
    read_seconds = time.perf_counter() - started
    classified = classify(normalize(df, load_mapping(DEFAULT_MAPPING)))
    if not args.no_write:
        write(classified, out)
    wall = time.perf_counter() - started
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)

    outcomes = classified["outcome"].value_counts().to_dict()
    result = {
        "files": int(classified["report_date"].nunique()),
        "rows_read": len(classified),
        "rows_written": int(outcomes.get("kept", 0)),
        "rows_quarantined": int(outcomes.get("quarantined", 0)),
        "exact_duplicates_dropped": int(outcomes.get("exact_duplicate", 0)),
        "key_duplicates_resolved": int(outcomes.get("key_duplicate", 0)),
        "field_issues": int(classified.loc[classified["outcome"] == "kept", "field_issues"].sum()),
        "read_seconds": round(read_seconds, 2),
        "wall_seconds": round(wall, 2),
        "rows_per_second": round(len(classified) / wall),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"pandas reference: {result['files']} files, {result['rows_read']} rows in {wall:.1f} s "
          f"({result['rows_per_second']} rows/s, read {read_seconds:.1f} s), peak RSS {result['peak_rss_mb']} MB")
    print(f"  written {result['rows_written']}, quarantined {result['rows_quarantined']}, exact duplicates "
          f"{result['exact_duplicates_dropped']}, key duplicates {result['key_duplicates_resolved']}, "
          f"field issues {result['field_issues']}")
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
