"""The run summary the three Spark jobs share (spark_jobs/spark_common/summary.py), without Spark."""

from __future__ import annotations

import json
from types import SimpleNamespace

from spark_common import summary

SPARK = SimpleNamespace(sparkContext=SimpleNamespace(applicationId="local-1"))


def test_totals_sum_the_counters_and_count_completed_and_failed_dates():
    dates = {"2021-03-01": {"status": summary.COMPLETED, "rows_read": 3, "rows_written": 2, "rows_quarantined": 1,
                            "error": None, "extra": 7},
             "2021-03-02": {"status": summary.NO_INPUT, "rows_read": 0, "rows_written": 0, "rows_quarantined": 0,
                            "error": None},
             "2021-03-03": summary.failed_entry("boom", source_file="x.csv")}
    assert dates["2021-03-03"] == {"status": "FAILED", "source_file": "x.csv", "rows_read": 0, "rows_written": 0,
                                   "rows_quarantined": 0, "error": "boom"}
    assert summary.totals(dates, (*summary.COUNTERS, "extra")) == {
        "rows_read": 3, "rows_written": 2, "rows_quarantined": 1, "extra": 7, "dates_completed": 1, "dates_failed": 1}


def test_build_and_run_with_summary_print_one_schema_and_exit_1_on_a_failed_date(capsys):
    def run(spark, args):
        dates = {"2021-03-01": summary.failed_entry("no file")} if args.fail else {}
        return summary.build("demo", spark, summary.Clock(), dates, week="2021-03-01")

    assert summary.run_with_summary("demo", run, SimpleNamespace(summary_uri=None, fail=False), spark=SPARK) == 0
    assert summary.run_with_summary("demo", run, SimpleNamespace(summary_uri=None, fail=True), spark=SPARK) == 1
    out = capsys.readouterr()
    assert "FAILED 2021-03-01: no file" in out.err
    printed = json.loads(out.out.strip().splitlines()[-1].removeprefix("SUMMARY "))
    assert list(printed) == ["job", "application_id", "started_at", "duration_seconds", "week", "dates", "totals"]
    assert printed["started_at"].endswith("Z") and printed["application_id"] == "local-1"
    assert printed["totals"] == {"rows_read": 0, "rows_written": 0, "rows_quarantined": 0, "dates_completed": 0,
                                 "dates_failed": 1}
