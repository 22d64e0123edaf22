"""What every Spark job shares: the session settings the transformations rely on.

Jobs import this module flat (`from spark_common import ...`): spark-submit puts the script's own folder
on sys.path locally, and EMR steps ship it with `--py-files`, so a job runs the same in both places.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

# Every timestamp in the lake is UTC; CORRECTED makes a non-matching pattern yield null instead of
# raising, which lets jobs try several formats with coalesce(); dynamic overwrite replaces only the
# partitions a run writes.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def build_spark_session(app_name: str, master: str | None = None, extra_conf: dict | None = None) -> SparkSession:
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in {**SESSION_CONF, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def path_exists(spark: SparkSession, uri: str) -> bool:
    """Through Hadoop's FileSystem, so s3:// (EMRFS) and local paths behave the same."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(path)


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Create or replace a small text object (a job summary) at ``uri``."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def run_with_summary(app_name: str, run: Callable[[SparkSession, Any], dict], args: Any) -> int:
    """A job's main(): run it, print and write its JSON summary, exit 1 when any date failed."""
    spark = build_spark_session(app_name)
    summary = run(spark, args)
    text = json.dumps(summary, indent=2, sort_keys=True)
    print(text)
    if args.summary_uri:
        write_text(spark, args.summary_uri, text)
    return 1 if summary["totals"]["failed_dates"] else 0
