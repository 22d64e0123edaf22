"""The reviewed country mapping table covers every name JHU used, and says what the time series says."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from jhu_daily_reports import DEFAULT_MAPPING

from jhu.eras import WHITESPACE
from jhu.storage import load_country_mapping
from jhu.transform import CLEAR_PROVINCE


def _mapping() -> dict[str, dict[str, str]]:
    with DEFAULT_MAPPING.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_name = {row["source_name"]: row for row in rows}
    assert len(by_name) == len(rows), "duplicate source_name rows"
    return by_name


def _country_names(mirror: Path) -> set[str]:
    """Every Country/Region value of every file, read with the csv module (cheap: one column)."""
    names: set[str] = set()
    for path in sorted(mirror.glob("*.csv")):
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader)]
            column = header.index("Country_Region" if "Country_Region" in header else "Country/Region")
            names.update(row[column] for row in reader if row)
    return names


def test_every_country_name_in_the_495_files_maps(jhu_mirror):
    mapping = _mapping()
    names = _country_names(jhu_mirror)
    assert len(list(jhu_mirror.glob("*.csv"))) == 495
    # The job looks names up after trimming (` Azerbaijan` has a leading space in one file).
    unmapped = sorted(name for name in names if name.strip(WHITESPACE) not in mapping)
    assert unmapped == []
    assert " Azerbaijan" in names  # the oddity the trim exists for is really in the data


def test_final_names_map_to_themselves_and_every_target_is_a_final_name():
    mapping = _mapping()
    targets = {row["country_region"] for row in mapping.values()}
    for target in targets:
        assert mapping[target]["country_region"] == target, target
        assert mapping[target]["province_state"] == "", target


@pytest.mark.parametrize(("source", "country", "province"), [
    ("Mainland China", "China", ""),
    ("South Korea", "Korea, South", ""),
    ("Republic of Korea", "Korea, South", ""),
    ("UK", "United Kingdom", ""),
    ("North Ireland", "United Kingdom", "Northern Ireland"),
    ("Hong Kong", "China", "Hong Kong"),
    ("Hong Kong SAR", "China", "Hong Kong"),
    ("Macau", "China", "Macau"),
    ("Macao SAR", "China", "Macau"),
    ("Taiwan", "Taiwan*", CLEAR_PROVINCE),
    ("Taipei and environs", "Taiwan*", CLEAR_PROVINCE),
    ("Iran (Islamic Republic of)", "Iran", ""),
    ("Others", "Diamond Princess", CLEAR_PROVINCE),
    ("Cruise Ship", "Diamond Princess", CLEAR_PROVINCE),
    ("Greenland", "Denmark", "Greenland"),
    ("Faroe Islands", "Denmark", "Faroe Islands"),
    ("French Guiana", "France", "French Guiana"),
    ("St. Martin", "France", "St Martin"),
    ("Saint Martin", "France", "St Martin"),
    ("Aruba", "Netherlands", "Aruba"),
    ("Curacao", "Netherlands", "Curacao"),
    ("Channel Islands", "United Kingdom", "Channel Islands"),
    ("Gibraltar", "United Kingdom", "Gibraltar"),
    ("Puerto Rico", "US", "Puerto Rico"),
    ("Guam", "US", "Guam"),
    ("Czech Republic", "Czechia", ""),
    ("Bahamas, The", "Bahamas", ""),
    ("The Gambia", "Gambia", ""),
    ("occupied Palestinian territory", "West Bank and Gaza", ""),
])
def test_renames_follow_the_global_time_series(source, country, province):
    row = _mapping()[source]
    assert (row["country_region"], row["province_state"]) == (country, province)


NO_ISO3 = {"Diamond Princess", "MS Zaandam", "Summer Olympics 2020", "Winter Olympics 2022"}
UID_TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "jhu" / "reference" / (
    "UID_ISO_FIPS_LookUp_Table.csv")
# Later than the table's 2022-04-17 state (its README): JHU issue #5721 and PR #6245.
LATER_COUNTRIES = {"Korea, North": "PRK", "Tuvalu": "TUV"}


def _uid_countries() -> dict[str, str]:
    """Country_Region -> iso3 of JHU's lookup table (the country-level row's code)."""
    with UID_TABLE.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    countries = {row["Country_Region"]: "" for row in rows}
    for row in rows:
        if not row["Province_State"] and not row["Admin2"]:
            countries[row["Country_Region"]] = row["iso3"]
    return countries


def test_every_country_of_jhus_table_and_the_later_ones_map_to_themselves_with_jhus_iso3():
    mapping, countries = _mapping(), _uid_countries()
    assert len(countries) == 199
    for name, iso3 in {**countries, **LATER_COUNTRIES}.items():
        assert name in mapping, name
        row = mapping[name]
        assert (row["country_region"], row["province_state"], row["iso3"]) == (name, "", iso3), name
    # and every country the mapping produces is one JHU's table (or a later report) uses
    targets = {row["country_region"] for row in mapping.values()}
    assert targets <= set(countries) | set(LATER_COUNTRIES), sorted(targets - set(countries))
    for name in ("Palau", "Tonga", "Antarctica", "Summer Olympics 2020", "Winter Olympics 2022"):
        assert name in countries  # the README's post-05-2021 names really are in the table


def test_iso3_is_the_code_of_the_final_country():
    mapping = _mapping()
    for name, row in mapping.items():
        if row["country_region"] in NO_ISO3:
            assert row["iso3"] == "", name
        else:
            assert re.fullmatch(r"[A-Z]{3}", row["iso3"]), name
        # One code per final country, whichever spelling the file used.
        assert row["iso3"] == mapping[row["country_region"]]["iso3"], name
    assert mapping["Kosovo"]["iso3"] == "XKS"  # JHU's own code (UID table), also in analytics' country_codes.csv
    assert mapping["Taiwan*"]["iso3"] == "TWN"
    assert mapping["Greenland"]["iso3"] == "DNK"
    codes = [row["iso3"] for source, row in mapping.items() if source == row["country_region"] and row["iso3"]]
    assert len(codes) == len(set(codes)), "two final countries share an ISO3 code"


def test_load_rejects_duplicates_and_wrong_columns(spark, tmp_path):
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("source_name,country_region,province_state,iso3\nUK,United Kingdom,,GBR\n"
                         "UK,Ukraine,,UKR\n")
    with pytest.raises(ValueError, match=r"duplicate source names \['UK'\]"):
        load_country_mapping(spark, duplicate.as_uri())
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,country\nUK,United Kingdom\n")
    with pytest.raises(ValueError, match="expected columns"):
        load_country_mapping(spark, wrong.as_uri())
    good = load_country_mapping(spark, DEFAULT_MAPPING.as_uri())
    assert good.count() == len(_mapping())
