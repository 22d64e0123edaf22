"""The local stack's class-data-sharing archive for Spark drivers (local/jvm): named, recorded, adopted."""

from __future__ import annotations

from pathlib import Path

from local.emr_runner import build_spark_submit
from local.jvm import class_data_sharing as cds
from local.jvm import collector


def test_the_archive_name_follows_the_jvm_and_the_class_path(tmp_path, monkeypatch):
    monkeypatch.delenv(cds.DISABLE_ENV, raising=False)
    plain = cds.archive_path([], archive_dir=tmp_path)
    assert plain is not None and plain.parent == tmp_path and plain.suffix == ".jsa"
    assert cds.archive_path([], archive_dir=tmp_path) == plain
    with_jar = cds.archive_path(["/some/extra.jar"], archive_dir=tmp_path)
    assert with_jar is not None and with_jar != plain

    monkeypatch.setattr(cds, "_java_identity", lambda java: f"{java}\nopenjdk version \"99\"")
    assert cds.archive_path([], archive_dir=tmp_path) not in (None, plain)  # another JVM build, another archive

    monkeypatch.setattr(cds, "java_executable", lambda: None)
    assert cds.archive_path([], archive_dir=tmp_path) is None


def test_it_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv(cds.DISABLE_ENV, "off")
    assert cds.archive_path([], archive_dir=tmp_path) is None
    assert cds.driver_java_options(None) == ({}, None)


def test_a_missing_archive_is_recorded_and_adopted_only_after_a_clean_exit(tmp_path):
    archive = tmp_path / "cds" / "spark-driver-0123.jsa"
    settings, recording = cds.driver_java_options(archive)
    assert recording is not None and recording.parent == archive.parent and recording != archive
    assert settings == {cds.JAVA_OPTIONS_KEY: f"-XX:ArchiveClassesAtExit={recording} {cds.QUIET}"}

    recording.write_bytes(b"partial")  # a JVM that failed or was killed part-way through its dump
    assert cds.adopt_recording(recording, archive, succeeded=False) is False
    assert not recording.exists() and not archive.exists()
    assert cds.adopt_recording(recording, archive, succeeded=True) is False  # nothing was recorded

    settings, recording = cds.driver_java_options(archive)
    recording.write_bytes(b"archive")
    assert cds.adopt_recording(recording, archive, succeeded=True) is True
    assert archive.read_bytes() == b"archive" and not recording.exists()
    assert cds.driver_java_options(archive) == (
        {cds.JAVA_OPTIONS_KEY: f"-XX:SharedArchiveFile={archive} {cds.QUIET}"}, None)
    assert [p.name for p in archive.parent.iterdir()] == [archive.name]


def test_steps_get_the_options_as_defaults_under_their_own_java_options(tmp_path):
    (tmp_path / "job.py").write_text("print(1)")
    settings, _ = cds.driver_java_options(tmp_path / "a.jsa")
    command = build_spark_submit(
        ["spark-submit", "--conf", "spark.driver.extraJavaOptions=-Dmine=1", "job.py"], spark_jobs_dir=tmp_path,
        master="local[1]", spark_submit=Path("spark-submit"), local_conf=settings)
    confs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    assert f"{cds.JAVA_OPTIONS_KEY}={settings[cds.JAVA_OPTIONS_KEY]}" in confs
    assert "spark.driver.extraJavaOptions=-Dmine=1" in confs


def test_the_runner_starts_steps_without_an_archive_it_cannot_write(tmp_path, monkeypatch, caplog):
    from local.emr_runner import EmrStepRunner

    runner = EmrStepRunner(account_id="123456789012", region="us-east-1", log_dir=tmp_path,
                           spark_jobs_dir=tmp_path, spark_master="local[1]", env={})
    runner._spark_conf = {}  # no file-system jar needed here

    def read_only(archive):
        raise PermissionError(f"cannot create {archive}")

    monkeypatch.setattr(cds, "driver_java_options", read_only)
    monkeypatch.delenv(collector.CHOICE_ENV, raising=False)
    assert runner._driver_java_options(["spark-submit", "job.py"]) == (
        {cds.JAVA_OPTIONS_KEY: collector.SERIAL}, None, None)  # still the local collector
    assert "without a class-data-sharing archive" in caplog.text


def test_local_drivers_get_the_serial_collector_unless_the_step_picks_one(tmp_path, monkeypatch):
    monkeypatch.delenv(collector.CHOICE_ENV, raising=False)
    settings, _ = cds.driver_java_options(tmp_path / "a.jsa")
    assert collector.with_collector(settings, ["spark-submit", "job.py"]) == {
        cds.JAVA_OPTIONS_KEY: f"{settings[cds.JAVA_OPTIONS_KEY]} {collector.SERIAL}"}
    assert collector.with_collector({}) == {cds.JAVA_OPTIONS_KEY: collector.SERIAL}

    # Two collectors stop the JVM from starting: a step's own choice wins.
    own = ["spark-submit", "--conf", "spark.driver.extraJavaOptions=-Xss4m -XX:+UseParallelGC", "job.py"]
    assert collector.with_collector(settings, own) == settings
    monkeypatch.setenv(collector.CHOICE_ENV, "jvm")
    assert collector.with_collector(settings, ["spark-submit", "job.py"]) == settings
