"""spark_jobs/jhu_daily_reports.py on real oddities of every era (from ../shared) and crafted rows.

The country mapping's coverage of all 495 files is proven in test_jhu_country_mapping.py.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import jhu_daily_reports as job
import pyarrow.parquet as pq
import pytest

CONTRACT = [
    ("country_region", "string"), ("province_state", "string"), ("admin2", "string"), ("fips", "string"),
    ("iso3", "string"), ("combined_key", "string"), ("last_update", "timestamp"), ("latitude", "double"),
    ("longitude", "double"), ("confirmed", "bigint"), ("deaths", "bigint"), ("recovered", "bigint"),
    ("active", "bigint"), ("incident_rate", "double"), ("case_fatality_ratio", "double"),
    ("source_file", "string"), ("report_date", "date"),
]
# One real file per header era and Last_Update format (see ../shared/data/jhu/README.md).
ERA_SAMPLES = {
    "2020-01-22": "v1_6col", "2020-01-23": "v1_6col", "2020-02-01": "v1_6col", "2020-02-15": "v1_6col",
    "2020-03-10": "v2_8col_latlon", "2020-03-22": "v3_12col_fips", "2020-04-02": "v3_12col_fips",
    "2020-06-15": "v4_14col_incidence_rate", "2021-01-14": "v5_14col_incident_rate",
}
V3_HEADER = ("FIPS,Admin2,Province_State,Country_Region,Last_Update,Lat,Long_,Confirmed,Deaths,Recovered,Active,"
             "Combined_Key")


def raw_path(lake: Path, day: str) -> Path:
    d = date.fromisoformat(day)
    path = lake / "raw/jhu/daily_reports" / f"report_date={day}" / f"{d:%m-%d-%Y}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def csv_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def run_job(spark, lake: Path, days: list[str], tmp_path: Path) -> tuple[int, dict]:
    summary_uri = tmp_path / f"summary-{len(list(tmp_path.glob('summary-*')))}.json"
    code = job.main(["--lake", str(lake), "--start-date", min(days), "--end-date", max(days),
                     "--only-dates", ",".join(days), "--summary-uri", str(summary_uri)], spark=spark)
    return code, json.loads(summary_uri.read_text())


def read_table(lake: Path, table: str, day: str) -> list[dict]:
    folder = lake / table / f"report_date={day}"
    return [row for f in sorted(folder.glob("*.parquet")) for row in pq.read_table(f).to_pylist()]


def assert_rows_accounted_for(entry: dict) -> None:
    assert entry["rows_read"] == (entry["rows_written"] + entry["rows_quarantined"]
                                  + entry["exact_duplicates_dropped"] + entry["key_duplicates_resolved"]), entry


@pytest.fixture(scope="module")
def eras_run(spark, jhu_mirror, tmp_path_factory):
    lake = tmp_path_factory.mktemp("eras") / "lake"
    for day in ERA_SAMPLES:
        d = date.fromisoformat(day)
        shutil.copyfile(jhu_mirror / f"{d:%m-%d-%Y}.csv", raw_path(lake, day))
    code, summary = run_job(spark, lake, list(ERA_SAMPLES), tmp_path_factory.mktemp("summaries"))
    return lake, code, summary


def test_every_era_parses_to_the_contract_with_every_row_accounted_for(eras_run, jhu_mirror):
    lake, code, summary = eras_run
    assert code == 0 and summary["totals"]["dates_failed"] == 0
    for day, era in ERA_SAMPLES.items():
        entry = summary["dates"][day]
        d = date.fromisoformat(day)
        assert (entry["status"], entry["era"]) == ("COMPLETED", era), day
        assert entry["rows_read"] == csv_rows(jhu_mirror / f"{d:%m-%d-%Y}.csv"), day
        assert_rows_accounted_for(entry)
        rows = read_table(lake, "processed/jhu_daily_reports", day)
        assert len(rows) == entry["rows_written"] > 0
        assert all(r["last_update"] is not None and r["country_region"] for r in rows), day
    schema = pq.read_schema(next((lake / "processed/jhu_daily_reports").rglob("*.parquet")))
    names = {f.name: str(f.type) for f in schema}
    assert set(names) == {n for n, _ in CONTRACT} - {"report_date"}  # the partition lives in the path
    assert names["last_update"].startswith("timestamp") and names["confirmed"] == "int64"


def test_spark_reads_the_partitioned_table_with_the_contract_schema(eras_run, spark):
    lake, _, _ = eras_run
    table = spark.read.parquet(str(lake / "processed/jhu_daily_reports"))
    assert sorted(table.dtypes) == sorted(CONTRACT)


def test_names_and_timestamps_are_normalized(eras_run):
    lake, _, summary = eras_run
    rows = {day: read_table(lake, "processed/jhu_daily_reports", day) for day in ERA_SAMPLES}
    countries = {day: {r["country_region"] for r in day_rows} for day, day_rows in rows.items()}
    assert "Mainland China" not in countries["2020-01-22"] and "China" in countries["2020-01-22"]
    assert {"Korea, South", "Iran", "United Kingdom"} <= countries["2020-03-10"]
    assert not {"Republic of Korea", "Iran (Islamic Republic of)", "UK", "Hong Kong SAR"} & countries["2020-03-10"]
    hong_kong = [r for r in rows["2020-03-10"] if r["province_state"] == "Hong Kong"]
    assert [(r["country_region"], r["iso3"]) for r in hong_kong] == [("China", "CHN")]
    hubei = next(r for r in rows["2020-01-22"] if r["province_state"] == "Hubei")
    assert (hubei["confirmed"], hubei["last_update"].isoformat()) == (444, "2020-01-22T17:00:00+00:00")  # UTC
    # 01-23-2020 lists Hubei twice (Recovered 28 and 28.0): the same row once normalized.
    assert summary["dates"]["2020-01-23"]["exact_duplicates_dropped"] >= 1
    assert sum(r["province_state"] == "Hubei" for r in rows["2020-01-23"]) == 1
    # 03-22-2020's District of Columbia duplicate key (Deaths 0 and 2) keeps one row.
    assert summary["dates"]["2020-03-22"]["key_duplicates_resolved"] >= 1
    dc = [r for r in rows["2020-03-22"] if r["admin2"] == "District of Columbia"]
    assert len(dc) == 1
    assert {r["fips"] for r in rows["2020-03-22"] if r["fips"]} and not any(
        r["fips"].endswith(".0") for r in rows["2020-03-22"] if r["fips"])


def test_bom_and_crlf_give_the_same_rows(spark, eras_run, jhu_mirror, tmp_path):
    lake_plain, _, _ = eras_run
    lake = tmp_path / "lake"
    original = (jhu_mirror / "01-22-2020.csv").read_bytes()
    raw_path(lake, "2020-01-22").write_bytes(b"\xef\xbb\xbf" + original.replace(b"\n", b"\r\n"))
    code, summary = run_job(spark, lake, ["2020-01-22"], tmp_path)
    assert code == 0 and summary["dates"]["2020-01-22"]["era"] == "v1_6col"

    def key(row: dict) -> tuple:
        return tuple((k, str(v)) for k, v in sorted(row.items()) if k != "source_file")

    assert sorted(map(key, read_table(lake, "processed/jhu_daily_reports", "2020-01-22"))) == sorted(
        map(key, read_table(lake_plain, "processed/jhu_daily_reports", "2020-01-22")))


@pytest.fixture(scope="module")
def crafted(spark, jhu_mirror, tmp_path_factory):
    """A good real date, an unknown header, and a file of bad rows and duplicates in the 12-column era."""
    lake = tmp_path_factory.mktemp("crafted") / "lake"
    shutil.copyfile(jhu_mirror / "04-01-2020.csv", raw_path(lake, "2020-04-01"))
    raw_path(lake, "2020-04-02").write_text("Region,Cases,When\nNowhere,1,2020-04-02\n", encoding="utf-8")
    rows = [
        '1001,Autauga,Alabama,US,2020-04-03 22:52:45,32.5,-86.6,12,0,0,12,"Autauga, Alabama, US"',
        '1001,Autauga,Alabama,US,2020-04-03 23:59:00,32.5,-86.6,13,1,0,12,"Autauga, Alabama, US"',  # newer wins
        '1003,Baldwin,Alabama,US,2020-04-03 22:52:45,30.7,-87.7,"1,2x",0,0,0,"Baldwin, Alabama, US"',
        '1005,Barbour,Alabama,US,2020-04-03 22:52:45,31.8,-85.3,3,-1,0,4,"Barbour, Alabama, US"',
        ',,,Atlantis,2020-04-03 22:52:45,,,5,0,0,5,Atlantis',
        ',,,,2020-04-03 22:52:45,,,5,0,0,5,',
        ',,Hubei,China,yesterday,30.9,112.2,67803,3199,63326,1278,"Hubei, China"',
        ',,Recovered,US,2020-04-03 22:52:45,,,0,0,8000,-8000,"Recovered, US"',
        ',,Quebec,Canada,2020-04-03 22:52:45,52.9,-73.5,,,,,"Quebec, Canada"',
    ]
    raw_path(lake, "2020-04-03").write_text(V3_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    tmp = tmp_path_factory.mktemp("crafted-summaries")
    first = run_job(spark, lake, ["2020-04-01", "2020-04-02", "2020-04-03"], tmp)
    snapshot = {day: read_table(lake, "processed/jhu_daily_reports", day) for day in ("2020-04-01", "2020-04-03")}
    second = run_job(spark, lake, ["2020-04-01", "2020-04-02", "2020-04-03"], tmp)
    return lake, first, second, snapshot


def test_an_unknown_header_fails_only_its_date_naming_file_and_header(crafted):
    _, (code, summary), _, _ = crafted
    assert code == 1
    failed = summary["dates"]["2020-04-02"]
    assert failed["status"] == "FAILED"
    assert "04-02-2020.csv" in failed["error"] and "Region,Cases,When" in failed["error"]
    assert summary["dates"]["2020-04-01"]["status"] == "COMPLETED"
    assert summary["dates"]["2020-04-03"]["status"] == "COMPLETED"
    assert summary["totals"]["dates_failed"] == 1


def test_bad_rows_go_to_quarantine_with_a_reason_and_nothing_is_lost(crafted):
    lake, (_, summary), _, _ = crafted
    entry = summary["dates"]["2020-04-03"]
    assert_rows_accounted_for(entry)
    assert (entry["rows_read"], entry["rows_written"], entry["rows_quarantined"],
            entry["key_duplicates_resolved"]) == (9, 3, 5, 1)
    reasons = {json.loads(r["raw_record"]).get("Admin2") or json.loads(r["raw_record"])["Country_Region"]
               or "<none>": r["reason"] for r in read_table(lake, "quarantine/jhu_daily_reports", "2020-04-03")}
    assert "Confirmed '1,2x'" in reasons["Baldwin"] and "whole number" in reasons["Baldwin"]
    assert "Deaths" in reasons["Barbour"] and "negative" in reasons["Barbour"]
    assert "Atlantis" in reasons["Atlantis"] and "mapping" in reasons["Atlantis"]
    assert "missing" in reasons["<none>"]
    assert "yesterday" in reasons["China"]
    processed = read_table(lake, "processed/jhu_daily_reports", "2020-04-03")
    kept = {(r["province_state"], r["admin2"]): r for r in processed}
    assert kept[("Alabama", "Autauga")]["confirmed"] == 13  # the newer of the two Autauga rows
    assert kept[("Recovered", None)]["active"] == -8000  # JHU's documented pseudo-row is allowed
    assert kept[("Quebec", None)]["confirmed"] is None  # empty counts are null, not errors


def test_rerun_replaces_exactly_the_same_rows(crafted):
    lake, (_, first), (code, second), snapshot = crafted
    assert code == 1
    for day in ("2020-04-01", "2020-04-03"):
        assert {k: v for k, v in second["dates"][day].items()} == first["dates"][day]
        now = read_table(lake, "processed/jhu_daily_reports", day)
        assert sorted(map(str, now)) == sorted(map(str, snapshot[day]))
    assert len(list((lake / "processed/jhu_daily_reports/report_date=2020-04-01").glob("*.parquet"))) == 1
    assert not (lake / "processed/jhu_daily_reports/report_date=2020-04-02").exists()
