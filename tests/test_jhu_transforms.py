"""Each JHU transformation (spark_jobs/jhu/transform.py) alone, on a few crafted rows: DataFrame in, DataFrame out."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from jhu import transform
from jhu.eras import CANONICAL_FIELDS, CORRUPT, ERAS_BY_NAME, Era
from jhu.transform import EXACT_DUPLICATE, KEPT, KEY_DUPLICATE, QUARANTINED
from spark_common import literal_frame

DAY = dt.date(2020, 3, 22)
V1, V3 = ERAS_BY_NAME["v1_6col"], ERAS_BY_NAME["v3_12col_fips"]
SOURCE = "file:///lake/raw/jhu/daily_reports/report_date=2020-03-22/03-22-2020.csv"


def era_frame(spark, era: Era, rows: list[dict[str, str | None]], malformed: list[str | None] | None = None):
    """What storage.read_era gives: the era's columns as strings, `_corrupt_record` and `report_date`."""
    columns = [(name, "string") for name in (*era.columns, CORRUPT)] + [("report_date", "date")]
    malformed = malformed or [None] * len(rows)
    values = [(*[row.get(name) for name in era.columns], bad, DAY) for row, bad in zip(rows, malformed, strict=True)]
    return literal_frame(spark, columns, values)


@pytest.fixture(scope="module")
def mapping(spark):
    return literal_frame(spark, [("source_name", "string"), ("map_country", "string"), ("map_province", "string"),
                                 ("map_iso3", "string")],
                         [("Mainland China", "China", None, "CHN"), ("US", "US", None, "USA"),
                          ("Taiwan", "Taiwan*", transform.CLEAR_PROVINCE, "TWN")])


def v3_row(admin2: str, country: str = "US", **values: str) -> dict[str, str | None]:
    row = {"FIPS": "1001.0", "Admin2": admin2, "Province_State": "Alabama", "Country_Region": country,
           "Last_Update": "2020-03-22 23:45:00", "Lat": "32.5", "Long_": "-86.6", "Confirmed": "10",
           "Deaths": "1", "Recovered": "0", "Active": "9", "Combined_Key": f"{admin2}, Alabama, US"}
    return {**row, **values}


def test_to_canonical_renames_the_eras_columns_and_keeps_the_files_strings(spark):
    rows = [{"Province/State": " Hubei ", "Country/Region": "Mainland China", "Last Update": "1/22/2020 17:00",
             "Confirmed": "28.0", "Deaths": None, "Recovered": "x"}]
    out = transform.to_canonical(era_frame(spark, V1, rows, malformed=["a,b"]), V1)
    assert out.columns == ["report_date", *[f"{name}_raw" for name in CANONICAL_FIELDS], "malformed_line", "era"]
    (row,) = out.collect()
    assert (row.report_date, row.era, row.malformed_line) == (DAY, "v1_6col", "a,b")
    assert (row.province_state_raw, row.confirmed_raw, row.recovered_raw) == (" Hubei ", "28.0", "x")
    assert row.fips_raw is None and row.latitude_raw is None  # fields the era lacks


def test_normalize_types_maps_and_flags_rows_and_fields(spark, mapping):
    rows = [
        v3_row("Autauga"),
        v3_row("Baldwin", country="Atlantis"),  # not in the mapping: quarantined
        v3_row("Barbour", Recovered="x", Lat="95"),  # bad fields: nulled, the row stays
        v3_row("Bibb", Confirmed="12.0", Province_State=" None "),
    ]
    out = transform.normalize(transform.to_canonical(era_frame(spark, V3, rows), V3), mapping)
    got = {row.admin2: row for row in out.collect()}
    autauga = got["Autauga"]
    assert (autauga.country_region, autauga.iso3, autauga.fips, autauga.confirmed) == ("US", "USA", "1001", 10)
    assert autauga.last_update == dt.datetime(2020, 3, 22, 23, 45)
    assert (autauga.quarantine, autauga.field_issue) == (False, False)
    assert autauga.country_region_text is None  # the problem inputs are kept for flagged rows only
    assert (got["Baldwin"].quarantine, got["Baldwin"].country_region, got["Baldwin"].country_region_text) == (
        True, None, "Atlantis")
    barbour = got["Barbour"]
    assert (barbour.quarantine, barbour.field_issue, barbour.recovered, barbour.latitude) == (False, True, None, None)
    assert (barbour.recovered_raw, barbour.latitude_parsed, barbour.longitude) == ("x", 95.0, -86.6)
    assert (got["Bibb"].confirmed, got["Bibb"].province_state) == (12, None)
    assert set(transform.OUTPUT_COLUMNS) - {"source_file"} <= set(out.columns)


def test_with_row_keys_adds_an_id_and_a_key_hash_without_a_shuffle(spark, mapping):
    frame = transform.normalize(transform.to_canonical(era_frame(spark, V3, [v3_row("A"), v3_row("A")]), V3),
                                mapping)
    keyed = transform.with_row_keys(frame)
    rows = keyed.collect()
    assert len({row._row_id for row in rows}) == 2 and len({row._key_hash for row in rows}) == 1
    assert not re.search(r"(?<!Broadcast)Exchange", keyed._jdf.queryExecution().executedPlan().toString())


def _outcomes(spark, mapping, rows):
    frame = transform.normalize(transform.to_canonical(era_frame(spark, V3, rows), V3), mapping)
    return transform.with_row_keys(frame)


def test_contested_rows_and_with_outcome_mark_the_losers_and_keep_the_rest(spark, mapping):
    stored = _outcomes(spark, mapping, [v3_row("A"), v3_row("A"), v3_row("A", Confirmed="9"), v3_row("B"),
                                        v3_row("C", country="Atlantis")]).localCheckpoint()
    hashes = literal_frame(spark, [("_key_hash", "bigint")],
                           [(row._key_hash,) for row in stored.filter("admin2 = 'A'").limit(1).collect()])
    contested = transform.contested_rows(stored, hashes)
    assert sorted(row.admin2 for row in contested.collect()) == ["A", "A", "A"]
    losers = transform.duplicate_losers(contested)
    assert sorted(row.outcome for row in losers.collect()) == [EXACT_DUPLICATE, KEY_DUPLICATE]

    decided = transform.with_outcome(stored, losers)
    assert sorted((row.admin2, row.confirmed, row.outcome) for row in decided.collect()) == [
        ("A", 9, KEY_DUPLICATE), ("A", 10, EXACT_DUPLICATE), ("A", 10, KEPT), ("B", 10, KEPT),
        ("C", 10, QUARANTINED)]
    assert "_key_hash" not in decided.columns and "_lost" not in decided.columns and "_row_id" in decided.columns
    undecided = transform.with_outcome(stored, None)
    assert sorted(row.outcome for row in undecided.collect()) == [KEPT] * 4 + [QUARANTINED]


def test_the_three_output_frames_and_the_field_issue_totals(spark, mapping):
    stored = _outcomes(spark, mapping, [v3_row("A"), v3_row("B", country="Atlantis", Deaths="-1"),
                                        v3_row("C", Recovered="x", Long_="abc")])
    classified = transform.with_outcome(stored, None).localCheckpoint()
    sources = literal_frame(spark, [("report_date", "date"), ("source_file", "string")], [(DAY, SOURCE)])
    first_id = min(row._row_id for row in classified.collect())
    first_ids = literal_frame(spark, [("report_date", "date"), ("first_row_id", "bigint")], [(DAY, first_id)])

    processed = transform.processed_rows(classified, sources)
    assert processed.columns == list(transform.OUTPUT_COLUMNS)
    assert sorted((row.admin2, row.source_file) for row in processed.collect()) == [("A", SOURCE), ("C", SOURCE)]

    (quarantined,) = transform.quarantined_rows(classified, sources).collect()
    assert quarantined.reason == ("Country_Region 'Atlantis' is not in the country mapping table; "
                                  "Deaths '-1' is negative, expected a count >= 0")
    record = json.loads(quarantined.raw_record)
    assert list(record) == list(V3.columns) and record["Country_Region"] == "Atlantis"

    issues = transform.field_issue_rows(classified, sources, first_ids)
    assert issues.columns == list(transform.FIELD_ISSUE_COLUMNS)
    assert sorted((row.line, row.field, row.original_value, row.reason) for row in issues.collect()) == [
        (4, "Long_", "abc", "is not a finite number"), (4, "Recovered", "x", "is not a whole number")]
    (totals,) = transform.field_issue_totals(classified).collect()
    assert (totals.report_date, totals.rows_with_field_issues, totals.field_issues) == (DAY, 1, 2)
