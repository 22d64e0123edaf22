"""The dashboard site: bundle, extracts written next to it, the loopback server."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

from covid19_lake.analytics import extracts
from local.analytics import dashboard, fixture_lake
from local.analytics.serve import make_server, serve_in_thread, url_of

WINDOW = [date(2020, 9, 1) + timedelta(days=i) for i in range(3)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dashboard.build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, jhu_mirror: Path) -> Path:
    root = tmp_path_factory.mktemp("lake")
    fixture_lake.build(jhu_mirror, root, WINDOW)
    return root


def test_bundle_needs_nothing_from_the_network(bundle: Path) -> None:
    html = (bundle / "index.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(references) == ["app.js", "style.css"]
    script = (bundle / "app.js").read_text()
    assert "echarts" in script.lower() and "import " not in script[:200]  # one self-contained IIFE bundle


def test_site_has_the_bundle_and_the_lakes_extracts(bundle: Path, lake: Path, tmp_path: Path) -> None:
    meta = dashboard.write_site(lake, tmp_path / "site", bundle)
    site = tmp_path / "site"
    assert {p.name for p in site.iterdir()} >= {"index.html", "app.js", "style.css", "data"}
    assert meta["first_report_date"] == WINDOW[0].isoformat() and meta["latest_report_date"] == WINDOW[-1].isoformat()
    countries = json.loads((site / "data" / "countries.json").read_text())
    assert len(countries) == meta["countries"] > 150
    us = next(c for c in countries if c["country"] == "US")
    assert us["iso3"] == "USA" and us["iso2"] == "US"
    document = json.loads((site / "data" / us["file"]).read_text())
    assert document["daily"]["dates"] == [d.isoformat() for d in WINDOW]
    assert document["daily"]["new_cases"][0] is None  # no earlier report in this lake
    assert document["daily"]["new_cases"][1] == document["daily"]["confirmed"][1] - document["daily"]["confirmed"][0]
    locations = json.loads((site / "data" / "locations.json").read_text())
    assert locations["report_date"] == WINDOW[-1].isoformat() and len(locations["rows"]) > 3000


def test_rewriting_the_site_replaces_it_whole(bundle: Path, lake: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    dashboard.write_site(lake, site, bundle)
    (site / "data" / "countries" / "atlantis.json").write_text("{}")
    first = {p.relative_to(site) for p in site.rglob("*")}
    dashboard.write_site(lake, site, bundle)
    second = {p.relative_to(site) for p in site.rglob("*")}
    assert first - second == {Path("data/countries/atlantis.json")}
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no staging folder left behind


def test_missing_bundle_is_a_clear_error(lake: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="npm ci && npm run build"):
        dashboard.write_site(lake, tmp_path / "site", tmp_path / "no-bundle")


def test_server_serves_the_site_on_loopback_only(bundle: Path, lake: Path, tmp_path: Path) -> None:
    dashboard.write_site(lake, tmp_path / "site", bundle)
    with pytest.raises(ValueError, match="loopback"):
        make_server(tmp_path / "site", 0, host="0.0.0.0")
    server, thread = serve_in_thread(tmp_path / "site")
    try:
        url = url_of(server)
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "data/meta.json", timeout=10) as response:
            assert json.loads(response.read())["engine"] == "duckdb"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b'<script src="app.js">' in response.read()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_json_values_are_plain() -> None:
    from decimal import Decimal

    assert extracts.plain(Decimal("12")) == 12 and extracts.plain(1.23456) == 1.23
    assert extracts.plain(date(2020, 7, 1)) == "2020-07-01" and extracts.plain(True) is True
    assert extracts.slug("Korea, South") == "korea-south" and extracts.slug("Taiwan*") == "taiwan"
    with pytest.raises(ValueError):
        extracts.encode({"x": float("nan")})
