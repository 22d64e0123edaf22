"""Benchmark: all 495 local JHU files through the `jhu_backfill` DAG on the local stack.

Prints the wall time of the whole backfill through Airflow, of the Spark job alone (from its summary),
rows per second and peak memory (RSS of this process plus the local stack's process tree, sampled),
next to the single-process pandas reference (bench/jhu_pandas_reference.py) doing the same
normalization, as ratios.

    .venv/bin/python bench/backfill.py [--start 2020-01-22] [--end 2021-05-30] [--skip-reference]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from bench.jhu_spark_job import own_rss  # noqa: E402


class PeakRss:
    """Samples the summed RSS of some process trees every 0.2 s."""

    def __init__(self, roots: list[int]) -> None:
        self.roots, self.peak, self._stop = roots, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self.roots:
                try:
                    root = psutil.Process(pid)
                    for proc in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):  # a child that ended meanwhile
                            total += own_rss(proc)
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_reference() -> dict:
    process = subprocess.Popen([sys.executable, str(REPO / "bench" / "jhu_pandas_reference.py")],
                               stdout=subprocess.PIPE, text=True)
    with PeakRss([process.pid]) as rss:
        out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pandas reference failed: {out[-2000:]}")
    result = json.loads(next(line[7:] for line in out.splitlines() if line.startswith("RESULT ")))
    result["peak_rss_mb"] = round(rss.peak / 2**20)
    return result


def print_task_timeline(dag_run) -> None:
    """When each task started (seconds after the first) and how long it ran; mapped tasks as one line."""
    spans: dict[str, list] = {}
    for ti in dag_run.get_task_instances():
        if ti.start_date and ti.end_date:
            first, last, count = spans.get(ti.task_id, (ti.start_date, ti.end_date, 0))
            spans[ti.task_id] = [min(first, ti.start_date), max(last, ti.end_date), count + 1]
    if not spans:
        return
    origin = min(first for first, _, _ in spans.values())
    print("task timeline (start after the first task, duration):")
    for task_id, (first, last, count) in sorted(spans.items(), key=lambda item: item[1][0]):
        mapped = f" ({count} mapped)" if count > 1 else ""
        offset, duration = (first - origin).total_seconds(), (last - first).total_seconds()
        print(f"  {offset:6.1f} s  {duration:6.1f} s  {task_id}{mapped}")


def run_backfill(start: str, end: str) -> dict:
    from local import airflow_local
    from local.stack import running_daemon

    state = Path(tempfile.mkdtemp(prefix="covid19-lake-bench-"))
    with running_daemon(state, "--spark-master", "local[2]") as stack:
        env = airflow_local.airflow_env(stack, state / "airflow")
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        os.environ.update(env)
        airflow_local.ensure_metadata_db(env)
        with PeakRss([os.getpid(), stack.pid]) as rss:
            began = time.monotonic()
            run = airflow_local.run_dag("jhu_backfill", conf={"start_date": start, "end_date": end})
            wall = time.monotonic() - began
        print_task_timeline(run)
        summaries = list((Path(stack.lake_dir) / "job_summaries" / "jhu_daily_reports").rglob("*.json"))
        summary = json.loads(summaries[0].read_text())
    return {"state": str(run.state), "wall_seconds": round(wall, 1), "peak_rss_mb": round(rss.peak / 2**20),
            "spark_seconds": summary["duration_seconds"], "totals": summary["totals"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2020-01-22")
    parser.add_argument("--end", default="2021-05-30")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    backfill = run_backfill(args.start, args.end)
    rows = backfill["totals"]["rows_read"]
    print(f"jhu_backfill {args.start}..{args.end} through Airflow on the local stack: {backfill['state']}")
    print(f"  whole backfill: {backfill['wall_seconds']:.1f} s, {rows / backfill['wall_seconds']:,.0f} rows/s, "
          f"peak RSS {backfill['peak_rss_mb']} MB (Airflow + local stack + Spark)")
    print(f"  Spark job alone: {backfill['spark_seconds']:.1f} s, {rows / backfill['spark_seconds']:,.0f} rows/s; "
          f"rows read {rows:,}, written {backfill['totals']['rows_written']:,}, "
          f"quarantined {backfill['totals']['rows_quarantined']:,}")
    result = {"backfill": backfill}
    if not args.skip_reference:
        reference = run_reference()
        result["pandas_reference"] = reference
        per_second = reference["rows_read"] / reference["wall_seconds"]
        print(f"pandas reference (single process): {reference['wall_seconds']:.1f} s, {per_second:,.0f} rows/s, "
              f"peak RSS {reference['peak_rss_mb']} MB")
        print(f"  ratio Spark job / pandas: {backfill['spark_seconds'] / reference['wall_seconds']:.2f}; "
              f"whole backfill / pandas: {backfill['wall_seconds'] / reference['wall_seconds']:.2f}")
    print("RESULT " + json.dumps(result))
    return 0 if backfill["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
