"""Landing JHU files: GitHub-style HTTP source (local server), file:// mirror, publication window."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from covid19_lake import jhu_jobs, jhu_source
from covid19_lake.config import JHU_GITHUB_URL, Config
from covid19_lake.lake import Lake
from tests.variable import config as make_config


class FakeGitHub(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name == "03-02-2020.csv":
            self.send_error(500)
        elif name in self.files:
            body = self.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def github():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeGitHub.requests = []
    yield f"http://127.0.0.1:{server.server_port}/CSSEGISandData/COVID-19/master/daily_reports"
    server.shutdown()


def config(lake: Path, source: str) -> Config:
    return make_config(str(lake), "spark_jobs", jhu={"source_url": source})


def test_paths_follow_the_lake_contract():
    assert jhu_source.raw_uri("s3://lake", date(2020, 3, 1)) == (
        "s3://lake/raw/jhu/daily_reports/report_date=2020-03-01/03-01-2020.csv")
    assert jhu_source.source_url(JHU_GITHUB_URL + "/", date(2021, 1, 2)) == f"{JHU_GITHUB_URL}/01-02-2021.csv"


def test_http_source_lands_bytes_unchanged_and_once(tmp_path, github):
    original = b"\xef\xbb\xbfProvince/State,Country/Region\r\nHubei,Mainland China\r\n"  # BOM + CRLF kept
    FakeGitHub.files = {"01-22-2020.csv": original}
    lake = Lake()
    first = jhu_source.land(lake, str(tmp_path), github, date(2020, 1, 22))
    assert first.status == "landed" and first.size == len(original)
    assert Path(first.uri).read_bytes() == original
    again = jhu_source.land(lake, str(tmp_path), github, date(2020, 1, 22))
    assert again.status == "present" and len(FakeGitHub.requests) == 1
    assert jhu_source.land(lake, str(tmp_path), github, date(2020, 1, 23)).status == "not_published"
    with pytest.raises(jhu_source.SourceError, match=r"03-02-2020\.csv answered HTTP 500"):
        jhu_source.fetch(github, date(2020, 3, 2))


def test_mirror_directory_works_like_github(tmp_path, jhu_mirror):
    results = jhu_jobs.land_many(config(tmp_path, jhu_mirror.as_uri()), [date(2020, 3, d) for d in range(1, 11)])
    assert [r.status for r in results] == ["landed"] * 10
    for result in results:
        day = date.fromisoformat(result.report_date)
        assert Path(result.uri).read_bytes() == (jhu_mirror / jhu_source.file_name(day)).read_bytes()
    assert jhu_source.fetch(jhu_mirror.as_uri(), date(2021, 6, 1)) is None  # past the mirror's last day


def test_waits_inside_the_window_and_fails_clearly_after_it(tmp_path, github):
    FakeGitHub.files = {}
    cfg = config(tmp_path, github)
    day = date(2023, 3, 10)
    assert jhu_jobs.land_or_wait(cfg, day, datetime(2023, 3, 12, 23, 0, tzinfo=UTC)) is None
    with pytest.raises(jhu_jobs.NotPublishedInTime, match=r"03-10-2023\.csv was not published at http://127\.0\.0\.1"):
        jhu_jobs.land_or_wait(cfg, day, datetime(2023, 3, 13, 0, 0, tzinfo=UTC))
    FakeGitHub.files = {"03-10-2023.csv": b"FIPS,Admin2\n"}
    assert jhu_jobs.land_or_wait(cfg, day, datetime(2023, 3, 13, 0, 0, tzinfo=UTC)).endswith("03-10-2023.csv")


def test_spark_arguments_name_only_the_claimed_dates_when_there_are_gaps():
    cfg = make_config("s3://lake", "s3://artifacts/spark_jobs")
    contiguous = jhu_jobs.spark_arguments(cfg, ["2020-03-02", "2020-03-01"], "s3://lake/s.json")
    assert contiguous == ["--lake", "s3://lake", "--start-date", "2020-03-01", "--end-date", "2020-03-02",
                          "--country-mapping", "s3://artifacts/spark_jobs/reference/jhu_country_mapping.csv",
                          "--summary-uri", "s3://lake/s.json"]
    gappy = jhu_jobs.spark_arguments(cfg, ["2020-03-01", "2020-03-05"], "s3://lake/s.json")
    assert gappy[6:8] == ["--only-dates", "2020-03-01,2020-03-05"]
