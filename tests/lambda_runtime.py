"""A stand-in for Lambda's /var/runtime (what the Python runtime provides beside a package), for the tests
that run the deployed Lambda packages in a clean interpreter."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# What Lambda's Python 3.12 runtime ships: boto3 and its dependencies, nothing else.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six")


def link_runtime(directory: Path) -> Path:
    """`directory` with a link to each runtime module of this environment."""
    directory.mkdir(parents=True, exist_ok=True)
    for module in RUNTIME_MODULES:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, module
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (directory / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return directory
