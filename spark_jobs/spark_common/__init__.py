"""What every Spark job shares: the session settings the transformations rely on, small Hadoop file helpers,
small literal frames, scoped SQL settings, and the run summary (spark_common.summary).

Jobs import this package by its top-level name (`from spark_common import ...`). It ships to EMR inside
spark_jobs/lib.zip, passed with `--py-files` (infra/package.py builds it; the local step runner runs the
same zip): the folder tests put on sys.path, spark_jobs/, is the zip's root.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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


def as_uri(location: str) -> str:
    """`s3://b/k` and `file:///x` stay; a plain path becomes an absolute file:// URI."""
    return location if urlparse(location).scheme else Path(location).resolve().as_uri()


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


@contextmanager
def sql_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """These SQL settings inside the block, the previous ones after it (the session may be shared, as in tests)."""
    previous = {key: spark.conf.get(key) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            spark.conf.set(key, value)


def literal_frame(spark: SparkSession, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence]) -> DataFrame:
    """A small DataFrame of these rows (`columns`: name and SQL type), parsed in the JVM from one JSON literal.

    `createDataFrame` of Python rows would start Python workers to unpickle them where the frame is computed
    (about a second per broadcast of a few hundred rows on a 2-core machine, for workers the job needs nowhere
    else), and a literal Column per value would be thousands of py4j round trips.
    """
    names = [name for name, _ in columns]
    payload = json.dumps([dict(zip(names, [value.isoformat() if isinstance(value, dt.date) else value
                                           for value in row], strict=True)) for row in rows])
    schema = "array<struct<" + ", ".join(f"`{name}`: {kind}" for name, kind in columns) + ">>"
    return spark.range(1, numPartitions=1).select(F.inline(F.from_json(F.lit(payload), schema)))
