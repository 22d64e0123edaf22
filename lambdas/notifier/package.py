"""Build dist/notifier.zip: the handler package plus its dependencies, for the CloudFormation stack.

    python -m lambdas.notifier.package                      # pip --target for python3.12 manylinux (x86_64)
    python -m lambdas.notifier.package --arch arm64         # for an arm64 (Graviton) function
    python -m lambdas.notifier.package --from-site-packages # offline: copy from the running interpreter

The Lambda handler is ``lambdas.notifier.app.handler``. boto3 and botocore come with the Lambda Python
runtime and are left out; aws-lambda-powertools is pure Python, so the manylinux/3.12 pin only stops pip from
picking a wheel for the build machine. The zip is reproducible (sorted entries, fixed timestamps), so an
unchanged function uploads byte-identical code.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO_ROOT / "dist" / "notifier.zip"
POWERTOOLS_PIN = "aws-lambda-powertools==3.37.0"
# The pin's install requirements (no extras). The test checks this list against the installed metadata.
BUNDLED_DISTRIBUTIONS = ("aws-lambda-powertools", "jmespath", "typing-extensions")
# Shipped by the Lambda Python runtime; bundling them would only grow the zip.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six")
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_SKIP_PARTS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}
HANDLER_SOURCES = ("lambdas/__init__.py", "lambdas/notifier")
_NOT_SHIPPED = {"package.py"}  # the builder itself


def _wanted(relative: PurePosixPath) -> bool:
    return not (_SKIP_PARTS.intersection(relative.parts) or relative.suffix in _SKIP_SUFFIXES)


def handler_files(repo_root: Path = REPO_ROOT) -> dict[str, Path]:
    """Archive name -> source file for the handler package."""
    files: dict[str, Path] = {}
    for entry in HANDLER_SOURCES:
        source = repo_root / entry
        paths = [source] if source.is_file() else sorted(p for p in source.rglob("*.py"))
        for path in paths:
            relative = PurePosixPath(path.relative_to(repo_root).as_posix())
            if _wanted(relative) and relative.name not in _NOT_SHIPPED:
                files[str(relative)] = path
    return files


def site_packages_files(distributions: Iterable[str] = BUNDLED_DISTRIBUTIONS) -> dict[str, Path]:
    """Archive name -> installed file, for each distribution as its RECORD lists it (scripts excluded)."""
    files: dict[str, Path] = {}
    for name in distributions:
        dist = importlib.metadata.distribution(name)
        if name == "aws-lambda-powertools" and f"{name}=={dist.version}" != POWERTOOLS_PIN:
            raise SystemExit(f"installed aws-lambda-powertools is {dist.version}; the zip pins {POWERTOOLS_PIN}")
        for record in dist.files or ():
            relative = PurePosixPath(str(record))
            if ".." in relative.parts or not _wanted(relative):
                continue  # console scripts live outside site-packages; bytecode is rebuilt by Lambda
            source = Path(str(dist.locate_file(record)))
            if source.is_file():
                files[str(relative)] = source
    return files


def pip_target_files(target: Path, *, arch: str = "x86_64", python_version: str = "3.12") -> dict[str, Path]:
    """pip install the pin into ``target`` for Lambda's platform; archive name -> file."""
    platform = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}[arch]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(target), "--platform", platform, "--implementation", "cp",
         "--python-version", python_version, "--only-binary=:all:", POWERTOOLS_PIN],
        check=True,
    )
    files: dict[str, Path] = {}
    for path in sorted(target.rglob("*")):
        relative = PurePosixPath(path.relative_to(target).as_posix())
        if path.is_file() and _wanted(relative) and relative.parts[0] != "bin":
            top = relative.parts[0].split("-")[0].lower()
            if top not in {"boto3", "botocore", "s3transfer"}:
                files[str(relative)] = path
    return files


def write_zip(files: dict[str, Path], output: Path) -> Path:
    """Deterministic zip: sorted names, one fixed date, 0644 files."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(output.suffix + ".tmp")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            archive.writestr(info, files[name].read_bytes())
    partial.replace(output)  # a half-written zip never sits at the output path
    return output


def build(output: Path = DEFAULT_OUTPUT, *, from_site_packages: bool = False, arch: str = "x86_64") -> Path:
    files = handler_files()
    if from_site_packages:
        dependencies = site_packages_files()
        return write_zip({**dependencies, **files}, output)
    with tempfile.TemporaryDirectory(prefix="notifier-deps-") as tmp:
        dependencies = pip_target_files(Path(tmp), arch=arch)
        clash = sorted(set(dependencies) & set(files))
        if clash:
            raise SystemExit(f"dependency files would overwrite the handler: {clash}")
        return write_zip({**dependencies, **files}, output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--from-site-packages", action="store_true",
                        help="copy the dependencies from this interpreter instead of running pip (offline)")
    parser.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    args = parser.parse_args(argv)
    path = build(args.output, from_site_packages=args.from_site_packages, arch=args.arch)
    with zipfile.ZipFile(path) as archive:
        count = len(archive.infolist())
    print(f"{path}: {path.stat().st_size:,} bytes, {count} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
