"""Build what MWAA, Lambda and EMR run, into dist/: ``plugins.zip``, the Lambda zips, the Spark jobs' lib.zip.

    python -m infra.package                          # build dist/
    python -m infra.package --offline                # Lambda deps from this interpreter (no pip download)
    python -m infra.package --bucket B               # build, then upload spark_jobs/ to s3://B/spark_jobs/

The Spark jobs ship as spark_jobs/*.py (the scripts), spark_jobs/lib.zip (their packages, for ``--py-files``)
and spark_jobs/reference/**; the local stack's step runner runs the same tree (``stage_spark_jobs``).

plugins.zip holds plugins/ only: production code that imports on MWAA's packages (development code such as
the local DuckDB engine lives in local/). Each Lambda zip holds its handler package from lambdas/ plus
aws-lambda-powertools: the code the template deploys is the code the tests import.

Archives are reproducible (sorted names, fixed timestamps): an unchanged tree yields byte-identical
zips, so the deploy step can skip the upload and MWAA keeps its object versions (no environment update).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lambdas.notifier.package import pip_target_files, site_packages_files, write_zip

REPO_ROOT = Path(__file__).resolve().parent.parent
DIST = REPO_ROOT / "dist"
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}
SPARK_JOBS_PREFIX = "spark_jobs/"


@dataclass(frozen=True)
class Artifact:
    """A file to upload: its S3 key (relative to the artifacts bucket) and local path."""

    key: str
    path: Path

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _shipped(relative: PurePosixPath) -> bool:
    return not (_SKIP_DIRS.intersection(relative.parts) or relative.suffix in _SKIP_SUFFIXES)


def tree_files(root: Path) -> dict[str, Path]:
    """Archive name (relative to ``root``, POSIX) -> file, without caches and bytecode."""
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if path.is_file() and _shipped(relative):
            files[str(relative)] = path
    return files


def build_plugins_zip(plugins_dir: Path = REPO_ROOT / "plugins", output: Path = DIST / "plugins.zip") -> Path:
    """MWAA unpacks plugins.zip into its plugins folder (on sys.path): packages sit at the zip root."""
    files = tree_files(plugins_dir)
    if not any(name.endswith("/__init__.py") for name in files):
        raise SystemExit(f"{plugins_dir}: no Python package found (expected e.g. covid19_lake/__init__.py)")
    return write_zip(files, output)


def build_notifier_zip(output: Path = DIST / "notifier.zip", *, offline: bool = False) -> Path:
    """The notifier's own builder (lambdas/notifier/package.py) decides what goes in its zip."""
    command = [sys.executable, "-m", "lambdas.notifier.package", "--output", str(output)]
    if offline:
        command.append("--from-site-packages")
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    return output


QUICKSIGHT_EMBED_SOURCES = ("lambdas/__init__.py", "lambdas/quicksight_embed")


def lambda_handler_files(sources: Iterable[str], repo_root: Path = REPO_ROOT) -> dict[str, Path]:
    """Archive name -> file for a handler package (``lambdas/...``), without caches and builders."""
    files: dict[str, Path] = {}
    for entry in sources:
        source = repo_root / entry
        paths = [source] if source.is_file() else sorted(source.rglob("*.py"))
        for path in paths:
            relative = PurePosixPath(path.relative_to(repo_root).as_posix())
            if _shipped(relative) and relative.name != "package.py":
                files[str(relative)] = path
    return files


def build_quicksight_embed_zip(output: Path = DIST / "quicksight_embed.zip", *, offline: bool = False) -> Path:
    """lambdas/quicksight_embed plus aws-lambda-powertools (the notifier's pin; boto3 comes with Lambda)."""
    files = lambda_handler_files(QUICKSIGHT_EMBED_SOURCES)
    if offline:
        return write_zip({**site_packages_files(), **files}, output)
    with tempfile.TemporaryDirectory(prefix="quicksight-embed-deps-") as tmp:
        dependencies = pip_target_files(Path(tmp))
        return write_zip({**dependencies, **files}, output)


SPARK_LIBRARY = "lib.zip"


def spark_library_files(spark_dir: Path = REPO_ROOT / "spark_jobs") -> dict[str, Path]:
    """Archive name -> file of the jobs' library: every package under spark_jobs/ (a folder with an
    ``__init__.py``: spark_common/, jhu/), at the zip's root as the tests import them from spark_jobs/."""
    files: dict[str, Path] = {}
    for package in sorted(init.parent for init in spark_dir.glob("*/__init__.py")):
        files.update({f"{package.name}/{name}": path for name, path in tree_files(package).items()})
    return files


def spark_job_files(spark_dir: Path = REPO_ROOT / "spark_jobs") -> dict[str, Path]:
    """Name under spark_jobs/ -> file, for what ships as it is: the job scripts (spark_jobs/*.py, the
    application spark-submit runs) and reference/** (mapping tables and word lists the jobs read)."""
    files = {path.name: path for path in sorted(spark_dir.glob("*.py")) if path.name != "__init__.py"}
    if not files:
        raise SystemExit(f"{spark_dir}: no Spark job scripts found")
    reference = spark_dir / "reference"
    if reference.is_dir():
        files.update({f"reference/{name}": path for name, path in tree_files(reference).items()})
    return files


def build_spark_library(spark_dir: Path, output: Path) -> Path:
    """lib.zip, which every EMR step passes with ``--py-files`` (reproducible like the other zips)."""
    return write_zip(spark_library_files(spark_dir), output)


def spark_job_artifacts(spark_dir: Path = REPO_ROOT / "spark_jobs", dist: Path | None = None) -> list[Artifact]:
    """Everything under s3://ARTIFACTS/spark_jobs/: the job scripts, lib.zip (built into ``dist``, by default
    the dist/ beside spark_jobs/) and reference/**. A step runs
    ``spark-submit --py-files .../spark_jobs/lib.zip .../spark_jobs/<job>.py`` (covid19_lake.emr)."""
    files = spark_job_files(spark_dir)
    dist = spark_dir.parent / "dist" if dist is None else dist
    files[SPARK_LIBRARY] = build_spark_library(spark_dir, dist / "spark_jobs" / SPARK_LIBRARY)
    return [Artifact(f"{SPARK_JOBS_PREFIX}{name}", path) for name, path in sorted(files.items())]


def stage_spark_jobs(spark_dir: Path, target: Path) -> Path:
    """Write the tree ``spark_job_artifacts`` uploads to ``target`` (replacing it): what the local stack's
    step runner runs, so the code tested end to end is the code deployed. Returns ``target``."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name, path in spark_job_files(spark_dir).items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / name)
    build_spark_library(spark_dir, target / SPARK_LIBRARY)
    return target


def build(*, offline: bool = False, dist: Path = DIST) -> dict[str, Path]:
    """Build every archive; returns artifact key -> local file (the keys the stack expects)."""
    return {
        "plugins.zip": build_plugins_zip(output=dist / "plugins.zip"),
        "lambdas/notifier.zip": build_notifier_zip(dist / "notifier.zip", offline=offline),
        "lambdas/quicksight_embed.zip": build_quicksight_embed_zip(dist / "quicksight_embed.zip", offline=offline),
    }


def upload_artifacts(s3_client, bucket: str, artifacts: Iterable[Artifact]) -> dict[str, str | None]:
    """Upload each artifact unless the bucket already holds the same bytes; key -> version id.

    The comparison uses a sha256 stored in the object's metadata, so an unchanged file keeps its S3
    object version, and MWAA/Lambda (which pin versions) see no change.
    """
    versions: dict[str, str | None] = {}
    for artifact in artifacts:
        digest = artifact.sha256()
        current = _head(s3_client, bucket, artifact.key)
        if current is not None and current.get("Metadata", {}).get("sha256") == digest:
            versions[artifact.key] = current.get("VersionId")
            continue
        with artifact.path.open("rb") as body:
            response = s3_client.put_object(
                Bucket=bucket, Key=artifact.key, Body=body, Metadata={"sha256": digest},
                ServerSideEncryption="AES256",
            )
        versions[artifact.key] = response.get("VersionId")
        print(f"uploaded s3://{bucket}/{artifact.key}")
    return versions


def _head(s3_client, bucket: str, key: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true",
                        help="bundle Lambda dependencies from this interpreter instead of pip-downloading them")
    parser.add_argument("--bucket", default="", help="artifacts bucket: upload spark_jobs/ there after building")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    for key, path in build(offline=args.offline).items():
        print(f"{key}: {path} ({path.stat().st_size:,} bytes)")
    spark_jobs = spark_job_artifacts()
    library = next(a for a in spark_jobs if a.key == f"{SPARK_JOBS_PREFIX}{SPARK_LIBRARY}")
    print(f"{library.key}: {library.path} ({library.path.stat().st_size:,} bytes)")
    if args.bucket:
        import boto3

        upload_artifacts(boto3.client("s3", region_name=args.region), args.bucket, spark_jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
