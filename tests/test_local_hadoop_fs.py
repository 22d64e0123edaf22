"""The local stack's Hadoop file system (local/hadoop): built once, in use by local Spark, same results."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from local.emr_runner import build_spark_submit
from local.hadoop import build
from local.hadoop.build import FILE_SYSTEM_CLASS, ensure_jar, spark_conf


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_jar_is_built_once_per_source_version(tmp_path):
    jar = ensure_jar(tmp_path)
    assert jar is not None and jar.is_file() and jar.parent == tmp_path
    built_at = jar.stat().st_mtime_ns
    assert ensure_jar(tmp_path) == jar and jar.stat().st_mtime_ns == built_at
    assert [p.name for p in tmp_path.iterdir()] == [jar.name]  # no build leftovers
    assert spark_conf(jar) == {"spark.driver.extraClassPath": str(jar), "spark.hadoop.fs.file.impl": FILE_SYSTEM_CLASS}


def test_without_javac_spark_keeps_hadoops_file_system(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger=build.__name__):
        assert ensure_jar(tmp_path) is None
    assert "keeps Hadoop's default local file system" in caplog.text
    assert spark_conf(None) == {}


def test_emr_steps_get_the_local_conf_unless_the_step_sets_it(tmp_path):
    (tmp_path / "job.py").write_text("print(1)")
    local = {"spark.hadoop.fs.file.impl": FILE_SYSTEM_CLASS, "spark.driver.extraClassPath": "/x.jar"}
    command = build_spark_submit(["spark-submit", "--conf", "spark.driver.extraClassPath=/mine.jar", "job.py"],
                                 spark_jobs_dir=tmp_path, master="local[1]", spark_submit=Path("spark-submit"),
                                 local_conf=local)
    confs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    assert f"spark.hadoop.fs.file.impl={FILE_SYSTEM_CLASS}" in confs
    assert "spark.driver.extraClassPath=/mine.jar" in confs and "spark.driver.extraClassPath=/x.jar" not in confs


def test_spark_writes_partitions_without_crc_files_and_with_hadoops_modes(spark, tmp_path):
    jvm = spark._jvm
    hadoop_conf = spark._jsc.hadoopConfiguration()
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), hadoop_conf)
    assert fs.getClass().getName() == FILE_SYSTEM_CLASS
    # FileSystem.getLocal() casts to LocalFileSystem: Spark and Hadoop call it, so the class must stay one.
    assert jvm.org.apache.hadoop.fs.FileSystem.getLocal(hadoop_conf).getClass().getName() == FILE_SYSTEM_CLASS

    out = tmp_path / "table"
    df = spark.createDataFrame([(d, n) for d in ("2020-01-01", "2020-01-02") for n in range(3)], "day string, n int")
    df.write.partitionBy("day").parquet(out.as_uri())

    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".crc")]
    data = [p for p in files if p.suffix == ".parquet"]
    assert {p.parent.name for p in data} == {"day=2020-01-01", "day=2020-01-02"}
    assert {_mode(p) for p in data} == {0o644} and {_mode(p.parent) for p in data} == {0o755}
    assert sorted((r.n, str(r.day)) for r in spark.read.parquet(out.as_uri()).collect()) == sorted(
        (n, d) for d in ("2020-01-01", "2020-01-02") for n in range(3))


def test_set_permission_applies_the_exact_mode_in_process(spark, tmp_path):
    jvm = spark._jvm
    target = tmp_path / "f"
    target.write_text("x")
    os.chmod(target, 0o644)
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), spark._jsc.hadoopConfiguration())
    for mode in (0o600, 0o751, 0o000, 0o777):
        path, permission = jvm.org.apache.hadoop.fs.Path(target.as_uri()), jvm.org.apache.hadoop.fs.permission
        fs.setPermission(path, permission.FsPermission(mode))
        assert _mode(target) == mode
