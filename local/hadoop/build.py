"""Build the local stack's Hadoop file-system jar from NioLocalFileSystem.java, once per source version.

The jar makes local Spark write the lake's partition files without a `chmod` process each; without it the
local stack still works, just slower. So a machine without `javac` (a JRE only) or a failed build gets
None and a warning, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "NioLocalFileSystem.java"
FILE_SYSTEM_CLASS = "covid19lake.hadoop.NioLocalFileSystem"
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parents[2] / ".local" / "jars"


def hadoop_client_jar() -> Path | None:
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    return jars[-1] if jars else None


def jar_path(output_dir: Path = DEFAULT_OUTPUT_DIR) -> Path:
    """Where the jar of the current source lives: its name carries the source's hash, so edits rebuild."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    return output_dir / f"covid19-lake-localfs-{digest}.jar"


def ensure_jar(output_dir: Path = DEFAULT_OUTPUT_DIR) -> Path | None:
    """The jar, built if missing; None (with a warning) when it cannot be built here."""
    target = jar_path(output_dir)
    if target.is_file():
        return target
    javac, jar_tool, hadoop = shutil.which("javac"), shutil.which("jar"), hadoop_client_jar()
    if not (javac and jar_tool and hadoop):
        log.warning("not building %s (javac %s, jar %s, hadoop-client-api %s): local Spark keeps Hadoop's "
                    "default local file system", target.name, javac, jar_tool, hadoop)
        return None
    output_dir.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: parallel builders never see half a jar.
    with tempfile.TemporaryDirectory(prefix=".build-", dir=output_dir) as build:
        classes = Path(build) / "classes"
        staged = Path(build) / target.name
        try:
            subprocess.run([javac, "-nowarn", "-cp", str(hadoop), "-d", str(classes), str(SOURCE)],
                           check=True, capture_output=True, text=True, timeout=120)
            subprocess.run([jar_tool, "cf", str(staged), "-C", str(classes), "."],
                           check=True, capture_output=True, text=True, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            log.warning("building %s failed, local Spark keeps Hadoop's default local file system: %s",
                        target.name, getattr(exc, "stderr", "") or exc)
            return None
        os.replace(staged, target)
    return target


def spark_conf(jar: Path | None) -> dict[str, str]:
    """spark-submit settings that put the file system in use, or nothing without a jar."""
    if jar is None:
        return {}
    return {"spark.driver.extraClassPath": str(jar), "spark.hadoop.fs.file.impl": FILE_SYSTEM_CLASS}
