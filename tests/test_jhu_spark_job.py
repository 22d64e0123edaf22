"""The JHU daily-reports Spark job end to end on tiny temporary lakes, through main() with the shared session."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import jhu_daily_reports as job
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame

import spark_common
from jhu import eras, storage, transform
from jhu.transform import EXACT_DUPLICATE, KEPT, KEY_DUPLICATE, QUARANTINED

# One real file per header era, all run in one application by the module fixture below.
ERA_FILES = {
    "v1_6col": "01-23-2020",  # Hubei twice: Recovered 28 and 28.0
    "v2_8col_latlon": "03-21-2020",  # Bahamas/Gambia/Cape Verde spelled twice
    "v3_12col_fips": "03-22-2020",  # District of Columbia twice with different deaths
    "v4_14col_incidence_rate": "06-01-2020",
    "v5_14col_incident_rate": "01-14-2021",  # `#DIV/0!` and `2021-01-15 17:22` (no seconds)
}
V3_HEADER = ("FIPS,Admin2,Province_State,Country_Region,Last_Update,Lat,Long_,Confirmed,Deaths,Recovered,Active,"
             "Combined_Key")
CONTRACT = pa.schema([
    ("country_region", pa.string()), ("province_state", pa.string()), ("admin2", pa.string()),
    ("fips", pa.string()), ("iso3", pa.string()), ("combined_key", pa.string()),
    ("last_update", pa.timestamp("us", tz="UTC")), ("latitude", pa.float64()), ("longitude", pa.float64()),
    ("confirmed", pa.int64()), ("deaths", pa.int64()), ("recovered", pa.int64()), ("active", pa.int64()),
    ("incident_rate", pa.float64()), ("case_fatality_ratio", pa.float64()), ("source_file", pa.string()),
])


def _day(stem: str) -> dt.date:
    return dt.datetime.strptime(stem, "%m-%d-%Y").date()


def place(lake: Path, day: dt.date, content: bytes | str) -> Path:
    target = lake / "raw" / "jhu" / "daily_reports" / f"report_date={day.isoformat()}" / f"{day:%m-%d-%Y}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return target


def csv_row_count(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return sum(1 for row in csv.reader(handle) if row) - 1


def run(spark, lake: Path, days: list[dt.date], *extra: str) -> tuple[int, dict]:
    summary = lake / "summary.json"
    argv = ["--lake", str(lake), "--start-date", min(days).isoformat(), "--end-date", max(days).isoformat(),
            "--only-dates", ",".join(d.isoformat() for d in days), "--summary-uri", str(summary), *extra]
    code = job.main(argv, spark=spark)
    return code, json.loads(summary.read_text())


def processed(lake: Path) -> pa.Table:
    return pq.read_table(lake / "processed" / "jhu_daily_reports")


def quarantined(lake: Path) -> pa.Table:
    return pq.read_table(lake / "quarantine" / "jhu_daily_reports")


def assert_identity(summary: dict) -> None:
    for day, entry in summary["dates"].items():
        if entry["status"] == "COMPLETED":
            assert entry["rows_read"] == (entry["rows_written"] + entry["rows_quarantined"]
                                          + entry["exact_duplicates_dropped"]
                                          + entry["key_duplicates_resolved"]), day


@pytest.fixture(scope="module")
def era_run(spark, jhu_mirror, tmp_path_factory):
    lake = tmp_path_factory.mktemp("era-lake")
    for stem in ERA_FILES.values():
        place(lake, _day(stem), (jhu_mirror / f"{stem}.csv").read_bytes())
    code, summary = run(spark, lake, [_day(stem) for stem in ERA_FILES.values()])
    return lake, code, summary


# ------------------------------------------------------------------------------------------ pure helpers

def test_detect_era_ignores_bom_cr_and_blanks():
    assert eras.detect_era("\ufeffProvince/State,Country/Region,Last Update,Confirmed,Deaths,Recovered\r").name \
        == "v1_6col"
    assert eras.detect_era(" FIPS, Admin2,Province_State,Country_Region,Last_Update,Lat,Long_,Confirmed,Deaths,"
                          "Recovered,Active,Combined_Key,Incident_Rate,Case_Fatality_Ratio ").name \
        == "v5_14col_incident_rate"
    assert eras.detect_era("Province/State,Country/Region,Confirmed") is None
    assert eras.detect_era(None) is None


def test_args_normalise_the_lake_and_reject_dates_outside_the_range(tmp_path, capsys):
    args = job.parse_args(["--lake", str(tmp_path) + "/", "--start-date", "2020-01-22",
                           "--end-date", "2020-01-24", "--only-dates", "2020-01-23"])
    assert args.lake == tmp_path.as_uri()
    assert job.requested_dates(args.start_date, args.end_date, args.only_dates) == [dt.date(2020, 1, 23)]
    assert job.parse_args(["--lake", "s3://bucket/lake/", "--start-date", "2020-01-22",
                           "--end-date", "2020-01-22"]).lake == "s3://bucket/lake"
    with pytest.raises(SystemExit):
        job.parse_args(["--lake", "x", "--start-date", "2020-01-22", "--end-date", "2020-01-24",
                        "--only-dates", "2020-02-01"])
    assert "--only-dates outside" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- real files

def test_every_era_parses_to_the_contract_with_all_rows_accounted_for(era_run, jhu_mirror):
    lake, code, summary = era_run
    assert code == 0
    for era, stem in ERA_FILES.items():
        entry = summary["dates"][_day(stem).isoformat()]
        assert entry["status"] == "COMPLETED" and entry["era"] == era, stem
        assert entry["rows_read"] == csv_row_count(jhu_mirror / f"{stem}.csv"), stem
        assert entry["rows_written"] > 0
        files = list((lake / "processed" / "jhu_daily_reports" / f"report_date={_day(stem)}").glob("*.parquet"))
        assert len(files) == 1, stem
        assert pq.read_schema(files[0]).remove_metadata() == CONTRACT, stem
    assert_identity(summary)
    table = processed(lake)
    assert table.num_rows == summary["totals"]["rows_written"]
    assert {str(day) for day in table.column("report_date").unique().to_pylist()} == {
        _day(stem).isoformat() for stem in ERA_FILES.values()}


def test_known_duplicates_are_dropped_and_resolved(era_run):
    lake, _, summary = era_run
    hubei = summary["dates"]["2020-01-23"]
    assert hubei["exact_duplicates_dropped"] == 1 and hubei["key_duplicates_resolved"] == 0
    dc = summary["dates"]["2020-03-22"]
    assert dc["key_duplicates_resolved"] == 1
    rows = processed(lake).to_pylist()
    dc_rows = [r for r in rows if r["admin2"] == "District of Columbia" and str(r["report_date"]) == "2020-03-22"]
    # Same last_update and confirmed: the higher deaths wins.
    assert [(r["deaths"], r["fips"]) for r in dc_rows] == [(2, "11001")]
    bahamas = [r for r in rows if r["country_region"] == "Bahamas" and str(r["report_date"]) == "2020-03-21"]
    assert len(bahamas) == 1 and bahamas[0]["confirmed"] == 4  # `Bahamas, The` (latest update) won
    keys = [(r["report_date"], r["country_region"], r["province_state"], r["admin2"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_values_are_normalised(era_run):
    lake, _, _ = era_run
    rows = processed(lake).to_pylist()
    by = {(str(r["report_date"]), r["country_region"], r["province_state"], r["admin2"]): r for r in rows}
    hubei = by[("2020-01-23", "China", "Hubei", None)]
    assert (hubei["confirmed"], hubei["deaths"], hubei["recovered"]) == (444, 17, 28)
    assert hubei["last_update"] == dt.datetime(2020, 1, 23, 17, 0, tzinfo=dt.UTC)
    assert hubei["iso3"] == "CHN" and hubei["fips"] is None
    assert hubei["source_file"].endswith("/raw/jhu/daily_reports/report_date=2020-01-23/01-23-2020.csv")
    hong_kong = by[("2020-01-23", "China", "Hong Kong", None)]
    assert hong_kong["iso3"] == "CHN"
    assert ("2020-01-23", "Taiwan*", None, None) in by
    assert by[("2020-03-21", "Diamond Princess", None, None)]["iso3"] is None
    autauga = by[("2021-01-14", "US", "Alabama", "Autauga")]
    assert autauga["fips"] == "1001" and autauga["combined_key"] == "Autauga, Alabama, US"
    assert autauga["incident_rate"] > 0 and autauga["case_fatality_ratio"] > 0
    assert by[("2020-03-22", "US", "New Mexico", "Doña Ana")]["iso3"] == "USA"
    assert by[("2020-03-22", "US", "Washington", "King")]["last_update"] == dt.datetime(2020, 3, 22, 23, 45,
                                                                                        tzinfo=dt.UTC)
    # 01-14-2021 has 37 rows stamped without seconds; the 2 with other bad fields keep their rows too.
    minutes_only = [r for r in rows if r["last_update"] == dt.datetime(2021, 1, 15, 17, 22, tzinfo=dt.UTC)]
    assert len(minutes_only) == 37
    assert not [r for r in quarantined(lake).to_pylist() if "2021-01-15 17:22\"" in r["raw_record"]]
    assert all(r["last_update"] is not None for r in rows)
    assert all(r["country_region"] and r["iso3"] != "" for r in rows)


def field_issues(lake: Path) -> pa.Table:
    return pq.read_table(lake / "quarantine" / "jhu_field_issues")


def test_real_field_problems_keep_their_rows_and_are_recorded_with_file_and_line(era_run, jhu_mirror):
    lake, _, summary = era_run
    assert quarantined(lake).num_rows == summary["totals"]["rows_quarantined"]
    assert not any("#DIV/0!" in r["raw_record"] or r["reason"].startswith("Active")
                   for r in quarantined(lake).to_pylist())
    issues = field_issues(lake).to_pylist()
    assert len(issues) == summary["totals"]["field_issues"] > 0
    assert sum(e["field_issues"] for e in summary["dates"].values()) == len(issues)
    div = next(r for r in issues if r["original_value"] == "#DIV/0!")
    assert (div["field"], div["reason"], str(div["report_date"])) == (
        "Case_Fatality_Ratio", "is not a finite number", "2021-01-14")
    assert div["source_file"].endswith("report_date=2021-01-14/01-14-2021.csv")
    # the line is the file's own: read it back and find the value there
    lines = (jhu_mirror / "01-14-2021.csv").read_text(encoding="utf-8-sig").splitlines()
    assert "#DIV/0!" in lines[div["line"] - 1]
    negative = [r for r in issues if r["field"] == "Active" and r["reason"].startswith("is negative")]
    assert negative and all(int(r["original_value"]) < 0 for r in negative)
    # ... and the row is in the processed table with that field null, its counts intact
    sample = negative[0]
    text = (jhu_mirror / Path(sample["source_file"]).name).read_text(encoding="utf-8-sig").splitlines()
    row = next(csv.reader([text[sample["line"] - 1]]))
    kept = [r for r in processed(lake).to_pylist() if r["combined_key"] == row[11].strip()
            and str(r["report_date"]) == str(sample["report_date"])]
    assert len(kept) == 1 and kept[0]["active"] is None and kept[0]["confirmed"] == int(row[7])
    # `Recovered` pseudo-rows keep their negative Active.
    assert any(r["province_state"] == "Recovered" and r["active"] < 0 for r in processed(lake).to_pylist())


# ------------------------------------------------------------------------------------ built test files

def test_bom_and_crlf_read_like_plain_files(spark, jhu_mirror, tmp_path):
    original = (jhu_mirror / "01-22-2020.csv").read_bytes()
    v3 = (f"{V3_HEADER}\n"
          '45001,Abbeville,South Carolina,US,2020-03-23 23:19:34,34.22,-82.46,1,0,0,1,"Abbeville, South Carolina, US"\n'
          ',,,Canada,2020-03-23 23:19:34,,,5,,,,Canada\n')
    plain, fancy = tmp_path / "plain", tmp_path / "fancy"
    for lake, encode in ((plain, lambda b: b), (fancy, lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"))):
        place(lake, dt.date(2020, 1, 22), encode(original))
        place(lake, dt.date(2020, 3, 23), encode(v3.encode()))
    assert (fancy / "raw/jhu/daily_reports/report_date=2020-01-22/01-22-2020.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    days = [dt.date(2020, 1, 22), dt.date(2020, 3, 23)]
    results = [run(spark, lake, days) for lake in (plain, fancy)]
    assert [code for code, _ in results] == [0, 0]
    assert results[1][1]["dates"]["2020-01-22"]["rows_read"] == csv_row_count(jhu_mirror / "01-22-2020.csv")

    def rows(lake):
        return sorted((r | {"source_file": None} for r in processed(lake).to_pylist()), key=repr)

    assert rows(plain) == rows(fancy)
    combined = {r["combined_key"] for r in processed(fancy).to_pylist()}
    assert "Abbeville, South Carolina, US" in combined and "Canada" in combined  # no trailing \r
    canada = next(r for r in processed(fancy).to_pylist() if r["combined_key"] == "Canada")
    assert (canada["confirmed"], canada["deaths"], canada["recovered"], canada["active"]) == (5, None, None, None)


def test_bad_rows_go_to_quarantine_with_reasons(spark, tmp_path):
    day = dt.date(2020, 4, 1)
    stamp = "2020-04-01 23:00:00"
    lines = [
        V3_HEADER,
        f'1001,Autauga,Alabama,US,{stamp},32.5,-86.6,10,1,0,9,"Autauga, Alabama, US"',  # good
        f',,Recovered,US,{stamp},,,0,0,100,-100,"Recovered, US"',  # good: documented pseudo-row
        f'1003,Baldwin,Alabama,US,{stamp},30.7,-87.7,"1,2x",0,0,0,"Baldwin, Alabama, US"',
        f'1005,Barbour,Alabama,US,{stamp},31.8,-85.3,5,-3,0,8,"Barbour, Alabama, US"',
        f'1007,Bibb,Alabama,US,{stamp},33.0,-87.1,5,0,0,-2,"Bibb, Alabama, US"',
        f',,,,{stamp},,,1,0,0,1,Nowhere',
        f',,, Atlantis\t,{stamp},,,1,0,0,1,Atlantis',  # padded: trimmed for the check, kept in raw_record
        '1009,Blount,Alabama,US,yesterday,34.0,-86.5,1,0,0,1,"Blount, Alabama, US"',
        f'1011,Bullock,Alabama,US,{stamp},abc,-85.7,1.5,0,0,1,"Bullock, Alabama, US"',
        f'1013,Butler,Alabama,US,{stamp},31.7,-86.6,2,0,0,2,"Butler, Alabama, US",extra',
        f'1015.0,Calhoun,Alabama,US,{stamp},33.7,-85.8,3.0, ,,3,"Calhoun, Alabama, US"',  # good: 3.0, blanks
    ]
    place(tmp_path, day, "\n".join(lines) + "\n")
    code, summary = run(spark, tmp_path, [day])
    assert code == 0
    entry = summary["dates"][day.isoformat()]
    assert (entry["rows_read"], entry["rows_written"], entry["rows_quarantined"]) == (11, 4, 7)
    assert (entry["rows_with_field_issues"], entry["field_issues"]) == (1, 1)
    assert_identity(summary)
    records = [(json.loads(r["raw_record"]), r["reason"]) for r in quarantined(tmp_path).to_pylist()]
    reasons = {(record.get("Admin2") or record["Country_Region"] or "").strip(): why for record, why in records}
    atlantis = next(r for r in quarantined(tmp_path).to_pylist() if "Atlantis" in r["raw_record"])
    assert json.loads(atlantis["raw_record"])["Country_Region"] == " Atlantis\t"
    assert reasons["Baldwin"] == "Confirmed '1,2x' is not a whole number"
    assert reasons["Barbour"] == "Deaths '-3' is negative, expected a count >= 0"
    assert reasons["Atlantis"] == "Country_Region 'Atlantis' is not in the country mapping table"
    assert reasons["Blount"].startswith("Last_Update 'yesterday' is not a timestamp in a known format (")
    assert reasons["Bullock"] == "Confirmed '1.5' is not a whole number"  # Lat 'abc' alone would only null Lat
    assert reasons["Butler"] == "line does not have the 12 fields of the header (malformed CSV row)"
    missing = next(r for r in quarantined(tmp_path).to_pylist() if "Nowhere" in r["raw_record"])
    assert missing["reason"] == "Country_Region is missing"
    assert json.loads(missing["raw_record"])["Country_Region"] is None
    butler = next(r for r in quarantined(tmp_path).to_pylist() if "Butler" in r["raw_record"])
    assert json.loads(butler["raw_record"])["_corrupt_record"].endswith(',"Butler, Alabama, US",extra')
    good = {r["combined_key"]: r for r in processed(tmp_path).to_pylist()}
    assert good["Calhoun, Alabama, US"]["fips"] == "1015"
    assert (good["Calhoun, Alabama, US"]["confirmed"], good["Calhoun, Alabama, US"]["deaths"]) == (3, None)
    assert good["Recovered, US"]["active"] == -100
    bibb = good["Bibb, Alabama, US"]
    assert (bibb["confirmed"], bibb["deaths"], bibb["recovered"], bibb["active"]) == (5, 0, 0, None)
    assert field_issues(tmp_path).to_pylist() == [
        {"report_date": day.isoformat(), "source_file": bibb["source_file"], "line": 6, "field": "Active",
         "original_value": "-2", "reason": "is negative, expected a count >= 0"}]


def test_unknown_header_and_missing_file_fail_only_their_dates(spark, jhu_mirror, tmp_path, capsys):
    good_day, bad_day, missing_day = dt.date(2020, 1, 22), dt.date(2020, 1, 23), dt.date(2020, 1, 24)
    place(tmp_path, good_day, (jhu_mirror / "01-22-2020.csv").read_bytes())
    bad = place(tmp_path, bad_day, "Country,Cases\nFrance,3\n")
    code, summary = run(spark, tmp_path, [good_day, bad_day, missing_day])
    assert code == 1
    assert summary["dates"][good_day.isoformat()]["status"] == "COMPLETED"
    failed = summary["dates"][bad_day.isoformat()]
    assert failed["status"] == "FAILED" and failed["era"] is None and failed["rows_read"] == 0
    assert str(bad) in failed["error"] and "'Country,Cases'" in failed["error"]
    missing = summary["dates"][missing_day.isoformat()]
    assert missing["status"] == "FAILED" and "raw file not found" in missing["error"]
    assert missing["source_file"].endswith("report_date=2020-01-24/01-24-2020.csv")
    assert summary["totals"]["dates_completed"] == 1 and summary["totals"]["dates_failed"] == 2
    written = {str(r["report_date"]) for r in processed(tmp_path).to_pylist()}
    assert written == {"2020-01-22"}
    out = capsys.readouterr()
    assert "FAILED 2020-01-23: unknown header" in out.err
    assert json.loads(out.out.strip().splitlines()[-1].removeprefix("SUMMARY ")) == summary


def test_rerun_is_idempotent_and_all_quarantined_dates_leave_no_stale_rows(spark, jhu_mirror, tmp_path):
    first, second = dt.date(2020, 1, 22), dt.date(2020, 1, 23)
    for day in (first, second):
        place(tmp_path, day, (jhu_mirror / f"{day:%m-%d-%Y}.csv").read_bytes())
    _, before = run(spark, tmp_path, [first, second])
    rows_before = sorted(map(repr, processed(tmp_path).to_pylist()))
    _, again = run(spark, tmp_path, [first, second])
    assert sorted(map(repr, processed(tmp_path).to_pylist())) == rows_before
    assert again["totals"] | {} == before["totals"]
    assert len(list((tmp_path / "processed/jhu_daily_reports/report_date=2020-01-22").glob("*.parquet"))) == 1

    # A corrected upstream file whose every row is bad replaces the date: nothing stale stays behind.
    header = "Province/State,Country/Region,Last Update,Confirmed,Deaths,Recovered"
    place(tmp_path, first, f"{header}\nHubei,Mainland China,not a time,1,0,0\n,Atlantis,1/22/2020 17:00,1,0,0\n")
    code, summary = run(spark, tmp_path, [first])
    assert code == 0 and summary["dates"][first.isoformat()]["rows_quarantined"] == 2
    dates = sorted({str(r["report_date"]) for r in processed(tmp_path).to_pylist()})
    assert dates == ["2020-01-23"]
    assert quarantined(tmp_path).num_rows == 2

    # And fixing it again removes the quarantine partition of that date.
    place(tmp_path, first, (jhu_mirror / "01-22-2020.csv").read_bytes())
    run(spark, tmp_path, [first])
    assert sorted(map(repr, processed(tmp_path).to_pylist())) == rows_before
    assert not (tmp_path / "quarantine/jhu_daily_reports/report_date=2020-01-22").exists()


def test_cli_range_without_only_dates_and_default_mapping(spark, jhu_mirror, tmp_path, capsys):
    for stem in ("02-01-2020", "02-02-2020"):
        shutil.copyfile(jhu_mirror / f"{stem}.csv", place(tmp_path, _day(stem), b""))
    code = job.main(["--lake", tmp_path.as_uri(), "--start-date", "2020-02-01", "--end-date", "2020-02-02",
                     "--country-mapping", str(job.DEFAULT_MAPPING)], spark=spark)
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("SUMMARY "))
    assert summary["job"] == "jhu_daily_reports" and summary["application_id"] == spark.sparkContext.applicationId
    assert (summary["start_date"], summary["end_date"]) == ("2020-02-01", "2020-02-02")
    assert summary["started_at"].endswith("Z") and summary["duration_seconds"] > 0
    assert set(summary["dates"]) == {"2020-02-01", "2020-02-02"}
    assert summary["totals"]["rows_read"] == sum(csv_row_count(jhu_mirror / f"{s}.csv")
                                                 for s in ("02-01-2020", "02-02-2020"))
    assert summary["totals"]["dates_completed"] == 2
    assert_identity(summary)


def test_materialized_rows_stay_sorted_by_date_so_the_writes_do_not_sort_again(spark, jhu_mirror, tmp_path):
    # 01-23-2020 has an exact duplicate: the losers' join is in the plan.
    days = [_day("01-23-2020"), _day("03-22-2020"), _day("11-09-2020")]
    for day in days:
        place(tmp_path, day, (jhu_mirror / f"{day.strftime('%m-%d-%Y')}.csv").read_bytes())
    lake = storage.normalize_lake_uri(str(tmp_path))
    raws = storage.inspect_raw_files(spark, lake, days)
    mapping = storage.load_country_mapping(spark, job.DEFAULT_MAPPING.as_uri())
    root = f"{lake}/{storage.RAW_PREFIX}"
    parts = [transform.to_canonical(storage.read_era(spark, raw.era, [raw.uri], root), raw.era) for raw in raws]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.unionByName(part)
    adaptive = spark.conf.get("spark.sql.adaptive.enabled")
    stored = job.materialize(spark, transform.with_row_keys(transform.normalize(combined, mapping)))
    assert spark.conf.get("spark.sql.adaptive.enabled") == adaptive
    classified, counts, first_ids = job.classify(spark, stored, 2)
    assert (days[0], EXACT_DUPLICATE, 1) in counts
    first_frame = spark_common.literal_frame(spark, [("report_date", "date"), ("first_row_id", "bigint")],
                                    sorted(first_ids.items()))

    sql_executions = spark._jsparkSession.sharedState().statusStore()
    before = sql_executions.executionsCount()
    sources = storage.source_files(spark, lake, days)
    storage.write_outputs(lake, transform.processed_rows(classified, sources),
                          transform.quarantined_rows(classified, sources),
                          transform.field_issue_rows(classified, sources, first_frame))
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()
    executions = sql_executions.executionsList(before, 100)
    writes = [executions.apply(i).physicalPlanDescription() for i in range(executions.size())]
    writes = [plan for plan in writes if "InsertIntoHadoopFsRelationCommand" in plan]
    # processed and quarantine stream in date order; the few field issues (after an explode) may be sorted.
    big = [plan for plan in writes if "jhu_field_issues" not in plan]
    assert len(writes) == 3 and len(big) == 2 and all("WriteFiles" in plan and "Sort" not in plan for plan in big)
    # and the rows really are in that order, each date in one partition (the scan splits no file)
    per_partition = classified.rdd.mapPartitions(lambda rows: [[row.report_date for row in rows]]).collect()
    assert all(part == sorted(part) for part in per_partition)
    assert sorted(day for part in per_partition for day in set(part)) == days


LOCATION = "report_date date, country_region string, province_state string, admin2 string"


def _stored(spark, rows: list[tuple]) -> DataFrame:
    """Normalized-looking rows: the location key, a few data columns and the quarantine flag."""
    schema = (f"{LOCATION}, last_update timestamp, confirmed bigint, deaths bigint, recovered bigint, "
              "combined_key string, active bigint, fips string, iso3 string, latitude double, longitude double, "
              "incident_rate double, case_fatality_ratio double, quarantine boolean")
    return transform.with_row_keys(spark.createDataFrame(rows, schema))


def _row(day: dt.date, province: str | None, confirmed: int, quarantine: bool = False, hour: int = 12) -> tuple:
    when = dt.datetime(day.year, day.month, day.day, hour)
    return (day, "China", province, None, when, confirmed, 0, 0, None, None, None, "CHN", None, None, None, None,
            quarantine)


def test_location_counts_find_only_keys_with_several_valid_rows(spark):
    day, other = dt.date(2020, 2, 1), dt.date(2020, 2, 2)
    stored = _stored(spark, [
        _row(day, "Hubei", 10), _row(day, "Hubei", 10),  # exact duplicate
        _row(day, "Anhui", 5), _row(day, "Anhui", 6, quarantine=True),  # one valid row: not contested
        _row(day, "Beijing", 1, quarantine=True), _row(day, "Beijing", 2, quarantine=True),
        _row(other, "Hubei", 12),  # the same location on another date is another key
    ])
    per_date = {row.report_date: row for row in transform.location_counts(stored).collect()}
    assert (per_date[day].valid, per_date[day].quarantined) == (3, 3)
    assert (per_date[other].valid, per_date[other].quarantined, per_date[other].contested_keys) == (1, 0, [])
    hubei = stored.filter("report_date = '2020-02-01' AND province_state = 'Hubei'").select("_key_hash").first()[0]
    assert per_date[day].contested_keys == [hubei]


def test_duplicate_losers_compare_keys_so_a_shared_hash_decides_nothing(spark):
    day = dt.date(2020, 2, 1)
    # As if all four rows had come in under one colliding hash: only the two Hubei rows are duplicates.
    stored = job.materialize(spark, _stored(spark, [
        # the higher count wins, though updated earlier (a later zero placeholder under another name loses)
        _row(day, "Hubei", 10, hour=9), _row(day, "Hubei", 20, hour=8),
        _row(day, "Anhui", 5), _row(day, "Beijing", 7),
    ]))
    losers = transform.duplicate_losers(stored).collect()
    provinces = {row._row_id: row.province_state for row in stored.collect()}
    confirmed = {row._row_id: row.confirmed for row in stored.collect()}
    assert [(provinces[row._row_id], confirmed[row._row_id], row.outcome) for row in losers] == [
        ("Hubei", 10, KEY_DUPLICATE)]


def test_classify_counts_every_outcome_and_keeps_the_winners(spark):
    day = dt.date(2020, 2, 1)
    stored = job.materialize(spark, _stored(spark, [
        _row(day, "Hubei", 10), _row(day, "Hubei", 10), _row(day, "Hubei", 9),
        _row(day, "Anhui", 5), _row(day, "Anhui", -1, quarantine=True),
    ]))
    classified, counts, _ = job.classify(spark, stored, 2)
    totals = {}
    for _, outcome, count in counts:
        totals[outcome] = totals.get(outcome, 0) + count
    assert totals == {KEPT: 2, QUARANTINED: 1, EXACT_DUPLICATE: 1, KEY_DUPLICATE: 1}
    outcomes = sorted((row.province_state, row.confirmed, row.outcome) for row in classified.collect())
    assert outcomes == sorted([("Hubei", 10, KEPT), ("Hubei", 10, EXACT_DUPLICATE),
                               ("Hubei", 9, KEY_DUPLICATE), ("Anhui", 5, KEPT),
                               ("Anhui", -1, QUARANTINED)])
    assert "_key_hash" not in classified.columns  # `_row_id` stays: it gives a field issue its line


def test_literal_frame_keeps_every_value_and_type_without_python_workers(spark):
    columns = [("report_date", "date"), ("source_file", "string"), ("_row_id", "bigint")]
    rows = [(dt.date(2020, 1, 22), 'quote " backslash \\ comma , unicode é', 2**63 - 1),
            (dt.date(2021, 5, 30), None, -(2**63))]
    frame = spark_common.literal_frame(spark, columns, rows)
    assert frame.schema.simpleString() == "struct<report_date:date,source_file:string,_row_id:bigint>"
    assert [tuple(row) for row in frame.collect()] == rows
    empty = spark_common.literal_frame(spark, [("_key_hash", "bigint")], [])
    assert empty.columns == ["_key_hash"] and empty.count() == 0
    # Built from a JSON literal in the JVM: no Python RDD (whose rows Python workers would unpickle).
    assert "PythonRDD" not in frame._jdf.queryExecution().toRdd().toDebugString()


def test_country_mapping_rows_need_four_fields_and_the_file_must_exist(spark, tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("source_name,country_region,province_state,iso3\nUK,United Kingdom,,GBR\nChina,China\n")
    with pytest.raises(ValueError, match=r"row 3 has 2 fields, expected 4"):
        storage.load_country_mapping(spark, short.as_uri())
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        storage.load_country_mapping(spark, (tmp_path / "missing.csv").as_uri())
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffsource_name,country_region,province_state,iso3\r\nUK,United Kingdom,,GBR\r\n".encode())
    assert [tuple(row) for row in storage.load_country_mapping(spark, bom.as_uri()).collect()] == [
        ("UK", "United Kingdom", None, "GBR")]


V5_HEADER = V3_HEADER + ",Incident_Rate,Case_Fatality_Ratio"


def test_field_problems_null_only_their_field_and_a_rerun_replaces_the_findings(spark, tmp_path):
    day = dt.date(2020, 11, 10)
    stamp = "2020-11-10 05:25:00"
    lines = [
        V5_HEADER,
        f'1001,Autauga,Alabama,US,{stamp},95.5,abc,10,1,x,-4,"Autauga, Alabama, US",NaN,10.0',
        f'1003,Baldwin,Alabama,US,{stamp},30.7,-187.7,20,2,3,15,"Baldwin, Alabama, US",12.5,Infinity',
        f'1005,Barbour,Alabama,US,{stamp},31.8,-85.3,30,3,4,23,"Barbour, Alabama, US",1.5,10.0',
    ]
    place(tmp_path, day, "\n".join(lines) + "\n")
    code, summary = run(spark, tmp_path, [day])
    entry = summary["dates"][day.isoformat()]
    assert code == 0 and (entry["rows_written"], entry["rows_quarantined"]) == (3, 0)
    assert (entry["rows_with_field_issues"], entry["field_issues"]) == (2, 7)
    assert (summary["totals"]["rows_with_field_issues"], summary["totals"]["field_issues"]) == (2, 7)
    rows = {r["admin2"]: r for r in processed(tmp_path).to_pylist()}
    assert set(processed(tmp_path).schema.names) == {*CONTRACT.names, "report_date"}
    autauga, baldwin = rows["Autauga"], rows["Baldwin"]
    assert (autauga["confirmed"], autauga["deaths"], autauga["recovered"], autauga["active"]) == (10, 1, None, None)
    assert (autauga["latitude"], autauga["longitude"], autauga["incident_rate"]) == (None, None, None)
    assert autauga["case_fatality_ratio"] == 10.0
    assert (baldwin["latitude"], baldwin["longitude"], baldwin["case_fatality_ratio"]) == (30.7, None, None)
    assert rows["Barbour"]["active"] == 23
    found = sorted((r["line"], r["field"], r["original_value"], r["reason"])
                   for r in field_issues(tmp_path).to_pylist())
    assert found == [
        (2, "Active", "-4", "is negative, expected a count >= 0"),
        (2, "Incident_Rate", "NaN", "is not a finite number"),
        (2, "Lat", "95.5", "is out of range, expected -90 .. 90"),
        (2, "Long_", "abc", "is not a finite number"),
        (2, "Recovered", "x", "is not a whole number"),
        (3, "Case_Fatality_Ratio", "Infinity", "is not a finite number"),
        (3, "Long_", "-187.7", "is out of range, expected -180 .. 180"),
    ]
    before = sorted(map(repr, field_issues(tmp_path).to_pylist()))
    run(spark, tmp_path, [day])
    assert sorted(map(repr, field_issues(tmp_path).to_pylist())) == before
    # a corrected file leaves no stale findings behind
    place(tmp_path, day, "\n".join([lines[0], lines[3]]) + "\n")
    code, summary = run(spark, tmp_path, [day])
    assert code == 0 and summary["dates"][day.isoformat()]["field_issues"] == 0
    assert not (tmp_path / f"quarantine/jhu_field_issues/report_date={day.isoformat()}").exists()


def test_last_era_files_of_2021_to_2023_land_every_late_name_under_jhus_name(spark, tmp_path):
    """Names and provinces JHU added after the 495 files (../shared/data/jhu/reference/README.md)."""
    files = {
        dt.date(2021, 6, 22): [(None, "Palau", 8, 0), (None, "Summer Olympics 2020", 2, 0),
                               ("Selangor", "Malaysia", 100, 1)],
        dt.date(2021, 11, 1): [(None, "Tonga", 1, 0), ("Sabah", "Malaysia", 50, 0)],
        dt.date(2022, 2, 1): [(None, "Antarctica", 11, 0), (None, "Winter Olympics 2022", 3, 0),
                              ("Guernsey", "United Kingdom", 5, 0), ("Jersey", "United Kingdom", 6, 0)],
        dt.date(2022, 4, 20): [("Transnistria", "Moldova", 7, 1), ("Unknown", "Poland", 9, 0),
                               (None, "Korea, North", 1, 0), (None, "Somaliland", 4, 0)],
        dt.date(2022, 11, 5): [(None, "Tuvalu", 2, 0)],
    }
    for day, rows in files.items():
        lines = [V5_HEADER] + [
            f',,{province or ""},"{country}",{day} 04:20:59,1.0,2.0,{confirmed},{deaths},0,{confirmed - deaths},'
            f'"{", ".join(part for part in (province, country) if part)}",1.5,0.5'
            for province, country, confirmed, deaths in rows]
        place(tmp_path, day, "\n".join(lines) + "\n")
    # 2023: Recovered and Active empty on every row, Incident_Rate empty on some
    last = dt.date(2023, 3, 9)
    place(tmp_path, last, "\n".join([
        V5_HEADER,
        '1001,Autauga,Alabama,US,2023-03-10 04:21:03,32.53,-86.64,19732,230,,,"Autauga, Alabama, US",35319.4,1.1656',
        ',,,Tuvalu,2023-03-10 04:21:03,-7.1095,177.6493,2805,0,,,Tuvalu,,0.0',
        ',,,"Korea, North",2023-03-10 04:21:03,40.3399,127.5101,1,6,,,"Korea, North",0.0039,600.0',
    ]) + "\n")
    days = [*files, last]
    code, summary = run(spark, tmp_path, days)
    assert code == 0 and summary["totals"]["dates_completed"] == len(days)
    assert summary["totals"]["rows_quarantined"] == 1
    assert summary["totals"]["field_issues"] == 0  # empty cells are nulls, not problems
    (somaliland,) = quarantined(tmp_path).to_pylist()
    assert somaliland["reason"] == "Country_Region 'Somaliland' is not in the country mapping table"
    rows = processed(tmp_path).to_pylist()
    landed = {(r["country_region"], r["province_state"]): r for r in rows}
    expected = {(country, province) for entries in files.values() for province, country, _, _ in entries
                if country != "Somaliland"} | {("US", "Alabama"), ("Tuvalu", None), ("Korea, North", None)}
    assert set(landed) == expected
    assert landed[("Summer Olympics 2020", None)]["iso3"] is None
    assert landed[("Winter Olympics 2022", None)]["iso3"] is None
    assert (landed[("Palau", None)]["iso3"], landed[("Antarctica", None)]["iso3"]) == ("PLW", "ATA")
    assert landed[("United Kingdom", "Guernsey")]["iso3"] == "GBR"
    assert landed[("Malaysia", "Selangor")]["confirmed"] == 100
    late = [r for r in rows if str(r["report_date"]) == last.isoformat()]
    assert len(late) == 3 and all(r["recovered"] is None and r["active"] is None for r in late)
    tuvalu = next(r for r in late if r["country_region"] == "Tuvalu")
    assert (tuvalu["confirmed"], tuvalu["deaths"], tuvalu["incident_rate"], tuvalu["iso3"]) == (2805, 0, None, "TUV")
    assert next(r for r in late if r["admin2"] == "Autauga")["incident_rate"] == 35319.4
