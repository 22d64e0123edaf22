"""A class-data-sharing (AppCDS) archive for the local stack's Spark driver JVMs.

Every spark-submit starts a JVM that loads, parses and verifies some 15,000 classes of Spark, Hadoop,
Parquet and Scala before and while the job runs: on a 2-core machine that is several seconds of CPU per
step. A dynamic CDS archive (JDK 13+) holds those classes already parsed and verified; a JVM started with
it maps the file and skips that work.

The first step on a machine records the archive as its JVM exits (`-XX:ArchiveClassesAtExit`, some
seconds longer, once) under a temporary name, which the runner moves into place when the step succeeds;
later steps map it (`-XX:SharedArchiveFile`). The archive's name carries a hash of the JVM and of the class
path, so a new JDK, pyspark or jar records a new one, and the JVM itself ignores an archive that does not
match (CDS is on its default `-Xshare:auto`). The options go into `spark.driver.defaultJavaOptions`, which
Spark puts before a step's own `spark.driver.extraJavaOptions`. EMR's JVMs are EMR's: this is local only.
Set COVID19_LAKE_SPARK_CDS=off to run without it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE_DIR = Path(__file__).resolve().parents[2] / ".local" / "cds"
JAVA_OPTIONS_KEY = "spark.driver.defaultJavaOptions"
DISABLE_ENV = "COVID19_LAKE_SPARK_CDS"
# The JVM warns about every class it cannot archive (signed jars, old class versions): noise in step logs.
QUIET = "-Xlog:cds*=off"


def java_executable() -> str | None:
    """The java spark-submit starts: JAVA_HOME's, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


@functools.lru_cache(maxsize=8)
def _java_identity(java: str) -> str:
    """The JVM's real path and version banner: an archive only fits the build that wrote it."""
    try:
        banner = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f"{os.path.realpath(java)}\n{banner}"


def _spark_jars() -> list[str]:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    return [f"{jar.name}:{jar.stat().st_size}" for jar in sorted(jars.glob("*.jar"))]


def archive_path(extra_classpath: Iterable[str | Path] = (),
                 archive_dir: Path = DEFAULT_ARCHIVE_DIR) -> Path | None:
    """Where this JVM's and class path's archive lives; None when it is switched off or there is no java."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return None
    java = java_executable()
    identity = _java_identity(java) if java else ""
    if not identity:
        return None
    digest = hashlib.sha256("\n".join([identity, *_spark_jars(), *map(str, extra_classpath)]).encode())
    return archive_dir / f"spark-driver-{digest.hexdigest()[:16]}.jsa"


def archive_for(spark_conf: Mapping[str, str]) -> Path | None:
    """The archive of drivers started with these spark-submit settings: their extra class path is part of
    the class path an archive must match."""
    classpath = spark_conf.get("spark.driver.extraClassPath", "")
    return archive_path([classpath] if classpath else [])


def driver_java_options(archive: Path | None) -> tuple[dict[str, str], Path | None]:
    """(spark-submit settings, the temporary file this JVM records into or None).

    With an archive in place the JVM maps it; without one it records a new one at exit.
    """
    if archive is None:
        return {}, None
    if archive.is_file():
        return {JAVA_OPTIONS_KEY: f"-XX:SharedArchiveFile={archive} {QUIET}"}, None
    archive.parent.mkdir(parents=True, exist_ok=True)
    recording = archive.with_name(f".{archive.stem}.{uuid.uuid4().hex[:12]}.recording")
    return {JAVA_OPTIONS_KEY: f"-XX:ArchiveClassesAtExit={recording} {QUIET}"}, recording


def adopt_recording(recording: Path, archive: Path, succeeded: bool) -> bool:
    """Move a finished recording into place (atomically: a parallel reader never maps half a file).

    Only a JVM that exited normally wrote the whole archive; any other recording is removed.
    """
    if succeeded and recording.is_file() and recording.stat().st_size > 0:
        os.replace(recording, archive)
        log.info("recorded the Spark driver's class-data-sharing archive %s", archive)
        return True
    recording.unlink(missing_ok=True)
    return False
