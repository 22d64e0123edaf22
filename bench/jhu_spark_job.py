"""Benchmark the JHU daily-reports Spark job on all 495 mirror files, the way spark-submit runs it.

    .venv/bin/python bench/jhu_spark_job.py [--master local[2]] [--driver-memory 2g] [--copy] [--repeat N]
                                             [--pandas-seconds S | --skip-pandas] [--keep] [--conf K=V ...]
                                             [--job PATH]

Links (or copies) the mirror into a temporary lake's raw layout, runs `spark-submit spark_jobs/jhu_daily_reports.py`
over 2020-01-22..2021-05-30 in a subprocess, samples the RSS of the whole process tree (JVM + Python), and prints
wall time, rows/s, peak memory, the per-era row counts and totals from the job's summary JSON, and the ratio
to bench/jhu_pandas_reference.py (run first in its own subprocess unless given or skipped).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent

JOB = REPO / "spark_jobs" / "jhu_daily_reports.py"
MIRROR = REPO.parent / "shared" / "data" / "jhu" / "daily_reports"
START, END = "2020-01-22", "2021-05-30"


def build_lake(mirror: Path, lake: Path, copy: bool) -> int:
    """raw/jhu/daily_reports/report_date=YYYY-MM-DD/MM-DD-YYYY.csv for every mirror file."""
    files = sorted(mirror.glob("*.csv"))
    for source in files:
        day = dt.datetime.strptime(source.stem, "%m-%d-%Y").date()
        target = lake / "raw" / "jhu" / "daily_reports" / f"report_date={day.isoformat()}" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy:
            shutil.copyfile(source, target)
        else:
            target.symlink_to(source)
    return len(files)


def own_rss(proc: psutil.Process) -> int:
    """proc's RSS, or 0 for a child not yet exec'd: one with its parent's command line shares or copies the
    parent's memory (the JVM starts each `chmod` of Hadoop's local file system through vfork, and such a
    child shows the whole JVM's RSS), so counting it would count the parent twice."""
    parent = proc.parent()
    if parent is not None and proc.cmdline() == parent.cmdline():
        return 0
    return proc.memory_info().rss


class TreeMemorySampler(threading.Thread):
    """Peak summed RSS of a process and all its descendants, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.peak = psutil.Process(pid), interval, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        total += own_rss(proc)
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self.done.wait(self.interval)


def children_cpu_seconds() -> float:
    """User + system CPU of every finished child process (the JVM and the Python driver included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spark_env() -> dict[str, str]:
    import pyspark

    env = dict(os.environ)
    env["SPARK_HOME"] = str(Path(pyspark.__file__).parent)
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_pandas_reference() -> float:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "jhu_pandas_reference.py")], check=True,
                          capture_output=True, text=True)
    print(proc.stdout.strip())
    result = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    return float(result["wall_seconds"])


def run_spark(lake: Path, master: str, driver_memory: str, log: Path,
              conf: list[str] | None = None, job: Path = JOB) -> tuple[float, float, int, int]:
    env = spark_env()
    command = [
        str(Path(env["SPARK_HOME"]) / "bin" / "spark-submit"), "--master", master,
        "--driver-memory", driver_memory, "--conf", "spark.ui.enabled=false",
        *[arg for setting in conf or [] for arg in ("--conf", setting)],
        str(job), "--lake", str(lake), "--start-date", START, "--end-date", END,
        "--summary-uri", str(lake / "summary.json"),
    ]
    started, cpu_before = time.perf_counter(), children_cpu_seconds()
    with log.open("w") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        sampler = TreeMemorySampler(proc.pid)
        sampler.start()
        code = proc.wait()
    wall, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu_before
    sampler.done.set()
    sampler.join()
    return wall, cpu, code, sampler.peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=MIRROR)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--copy", action="store_true", help="copy the files instead of symlinking them")
    parser.add_argument("--pandas-seconds", type=float, help="the reference's wall time, if already measured")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="extra spark-submit --conf (repeatable), e.g. "
                             "spark.driver.extraJavaOptions=-XX:+UseSerialGC")
    parser.add_argument("--keep", action="store_true", help="keep the temporary lake and the Spark log")
    parser.add_argument("--job", type=Path, default=JOB, help="the job script to run (to compare a variant)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternate the reference and the job this many times and compare medians (a shared "
                             "machine's noise is +-10 %% per run)")
    args = parser.parse_args(argv)

    conf = list(args.conf)

    spark_walls: list[float] = []
    pandas_walls: list[float] = [args.pandas_seconds] if args.pandas_seconds else []
    for round_number in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"-- round {round_number} of {args.repeat}")
        if args.pandas_seconds is None and not args.skip_pandas:
            pandas_walls.append(run_pandas_reference())
        wall = run_spark_once(args, conf)
        if wall is None:
            return 1
        spark_walls.append(wall)
    if pandas_walls:
        spark_median, pandas_median = statistics.median(spark_walls), statistics.median(pandas_walls)
        print(f"spark job wall times {', '.join(f'{w:.1f}' for w in spark_walls)} s; pandas reference "
              f"{', '.join(f'{w:.1f}' for w in pandas_walls)} s")
        print(f"ratio spark / pandas wall time (medians): {spark_median / pandas_median:.2f} "
              f"({spark_median:.1f} s vs {pandas_median:.1f} s)")
    return 0


def run_spark_once(args: argparse.Namespace, conf: list[str]) -> float | None:
    """One spark-submit run in a fresh lake; prints its numbers and returns its wall time (None: it failed)."""
    lake = Path(tempfile.mkdtemp(prefix="jhu-bench-lake-"))
    keep = args.keep
    try:
        files = build_lake(args.mirror, lake, args.copy)
        log = lake / "spark-submit.log"
        wall, cpu, code, peak = run_spark(lake, args.master, args.driver_memory, log, conf, args.job)
        if code != 0 or not (lake / "summary.json").exists():
            print(f"spark-submit exited {code}; log: {log}")
            keep = True
            return None
        summary = json.loads((lake / "summary.json").read_text())
        totals = summary["totals"]
        per_era: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for entry in summary["dates"].values():
            per_era[entry["era"]]["files"] += 1
            for counter in ("rows_read", "rows_written", "rows_quarantined", "exact_duplicates_dropped",
                            "key_duplicates_resolved"):
                per_era[entry["era"]][counter] += entry[counter]

        print(f"spark job ({args.master}, driver {args.driver_memory}): {files} files, {totals['rows_read']} rows in "
              f"{wall:.1f} s wall ({summary['duration_seconds']:.1f} s inside the job, {cpu:.1f} s CPU), "
              f"{totals['rows_read'] / wall:.0f} rows/s, peak RSS of the process tree {peak / 2**20:.0f} MB")
        print(f"  written {totals['rows_written']}, quarantined {totals['rows_quarantined']}, exact duplicates "
              f"{totals['exact_duplicates_dropped']}, key duplicates {totals['key_duplicates_resolved']}, "
              f"dates completed {totals['dates_completed']}, failed {totals['dates_failed']}")
        for era, counts in sorted(per_era.items(), key=lambda item: str(item[0])):
            print(f"  {era}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))
        return wall
    finally:
        if keep:
            print(f"lake kept at {lake}")
        else:
            shutil.rmtree(lake, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
