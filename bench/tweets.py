"""Benchmark of spark_jobs/tweets.py: N synthetic tweets for one day, tweets per second and peak memory.

    .venv/bin/python bench/tweets.py [--tweets 1000000] [--master local[2]] [--driver-memory 4g]

Generates stream-shaped lines (5% duplicates, 1% malformed, 20% with a place) over 24 arrival hours into
a temporary lake, runs the job once for that day and prints rows, seconds, tweets/s, the Spark JVM's CPU
seconds over the job (tweets per CPU-second holds up better than wall time on a shared machine; the load
average is printed next to it) and the peak RSS of the Spark JVM (VmHWM) and of this Python process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "spark_jobs"), str(ROOT / "plugins")]

WORDS = ["covid", "vaccine", "cases", "lockdown", "mask", "hospital", "deaths", "variant", "booster",
         "test", "positive", "negative", "great", "terrible", "happy", "sad", "safe", "stay", "home",
         "nurses", "doctors", "thank", "you", "not", "very", "good", "bad", "worst", "best", "news",
         "today", "again", "pandemic", "quarantine", "symptoms", "fever", "recovered", "hope", "fear",
         "scared", "grateful", "angry", "tired"]
TAGS = ["COVID19", "Covid", "vaccine", "StayHome", "lockdown", "Omicron", "Delta", "masks"]
PLACES = [("p_us", "US"), ("p_gb", "GB"), ("p_in", "IN"), ("p_br", "BR"), ("p_pt", "PT"), ("p_es", "ES")]


def synth_line(rng: random.Random, tweet_id: int, hour: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 30)))
    tags = rng.sample(TAGS, rng.randint(0, 3))
    text += "".join(f" #{t}" for t in tags) + (" https://t.co/x1y2z3" if rng.random() < 0.3 else "")
    if rng.random() < 0.1:
        text += "!!"
    place = rng.choice(PLACES) if rng.random() < 0.2 else None
    data = {"id": str(tweet_id), "text": text, "created_at": f"2021-03-02T{hour:02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}.000Z", "lang": "en", "author_id": str(rng.randint(1, 50_000)),
            "public_metrics": {"retweet_count": rng.randint(0, 50), "reply_count": rng.randint(0, 5),
                               "like_count": rng.randint(0, 500), "quote_count": 0},
            "entities": {"hashtags": [{"tag": t} for t in tags], "mentions": [{"username": "who"}]}}
    includes = {"users": [{"id": data["author_id"], "username": f"user{data['author_id']}"}], "places": []}
    if place:
        data["geo"] = {"place_id": place[0]}
        includes["places"] = [{"id": place[0], "country_code": place[1]}]
    return json.dumps({"data": data, "includes": includes, "matching_rules": []}, separators=(",", ":"))


def generate(lake: Path, count: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    per_hour = count // 24
    lines_written = 0
    for hour in range(24):
        folder = lake / "raw" / "tweets" / f"2021/03/02/{hour:02d}"
        folder.mkdir(parents=True)
        with open(folder / "bench", "w") as out:
            for k in range(per_hour):
                tweet_id = 1366000000000000000 + hour * per_hour + k
                out.write(synth_line(rng, tweet_id, hour) + "\n")
                if rng.random() < 0.05:  # fetched twice
                    out.write(synth_line(rng, tweet_id, hour) + "\n")
                if rng.random() < 0.01:
                    out.write('{"data": {"id": "broken\n')
                lines_written += 1
    return lines_written


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads: Spark's local executors are JVM threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tweets", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    opts = parser.parse_args()

    import tweets as job

    from spark_common import build_spark_session

    work = Path(tempfile.mkdtemp(prefix="bench-tweets-"))
    try:
        t0 = time.monotonic()
        generated = generate(work / "lake", opts.tweets)
        print(f"generated {generated} distinct tweets in {time.monotonic() - t0:.1f}s")
        spark = build_spark_session("bench-tweets", master=opts.master, extra_conf={
            "spark.driver.memory": opts.driver_memory, "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "8"})
        spark.sparkContext.setLogLevel("ERROR")
        args = job.parse_args(["--lake", str(work / "lake"), "--start-date", "2021-03-02"])
        jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        load_before, cpu_before = os.getloadavg()[0], cpu_seconds(jvm_pid)
        t1 = time.monotonic()
        summary = job.run(spark, args)
        seconds = time.monotonic() - t1
        cpu = cpu_seconds(jvm_pid) - cpu_before
        day = summary["dates"]["2021-03-02"]
        print(json.dumps(day, indent=1))
        print(f"master={opts.master} driver_memory={opts.driver_memory}")
        print(f"rows_read={day['rows_read']} rows_written={day['rows_written']} seconds={seconds:.1f}")
        print(f"tweets_per_second={day['rows_read'] / seconds:.0f}")
        print(f"jvm_cpu_seconds={cpu:.1f} tweets_per_cpu_second={day['rows_read'] / cpu:.0f} "
              f"load_average_1m before={load_before:.1f} after={os.getloadavg()[0]:.1f} cores={os.cpu_count()}")
        print(f"peak_jvm_rss_mib={vm_hwm_mib(jvm_pid):.0f} "
              f"peak_python_rss_mib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
