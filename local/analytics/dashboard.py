"""Write the dashboard site: the built bundle plus JSON extracts computed by DuckDB over the local lake.

    python -m local.analytics.dashboard --lake .local/lake --out .local/site [--bundle dashboard/dist]

The same extracts are written to the site bucket on AWS by the `analytics` DAG (see `athena_extracts`).
The output folder is replaced as a whole, so re-running leaves no stale country file behind.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from covid19_lake.analytics import extracts
from covid19_lake.analytics.dialect import iso2_by_iso3
from local.analytics import duck

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO_ROOT / "dashboard"
DEFAULT_BUNDLE = DASHBOARD_DIR / "dist"
BUNDLE_FILES = ("index.html", "app.js", "style.css")


def local_extracts(lake: Path) -> dict[str, Any]:
    """The extracts of the local lake, computed by DuckDB with the same views as Athena's."""
    with duck.session(lake) as con:
        return extracts.build(lambda sql: duck.query(con, sql), iso2_by_iso3(), engine="duckdb")


def build_bundle(out_dir: Path, dashboard_dir: Path = DASHBOARD_DIR) -> Path:
    """Bundle the site with the dashboard's pinned esbuild (needs `npm ci` to have run in dashboard/)."""
    if not (dashboard_dir / "node_modules" / "esbuild").is_dir():
        raise FileNotFoundError(f"{dashboard_dir}/node_modules is missing: run `npm ci` in {dashboard_dir}")
    subprocess.run(["node", "build.mjs", "--outdir", str(out_dir)], cwd=dashboard_dir, check=True,
                   capture_output=True, text=True)
    return out_dir


def check_bundle(bundle: Path) -> None:
    missing = [name for name in BUNDLE_FILES if not (bundle / name).is_file()]
    if missing:
        raise FileNotFoundError(f"dashboard bundle {bundle} lacks {missing}: build it with "
                                f"`npm ci && npm run build` in {DASHBOARD_DIR}")


def write_files(root: Path, files: dict[str, Any]) -> None:
    for relative, document in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(extracts.encode(document))


def write_site(lake: Path, out: Path, bundle: Path = DEFAULT_BUNDLE) -> dict[str, Any]:
    """Replace `out` with the bundle and the lake's extracts; returns the extracts' meta document."""
    check_bundle(bundle)
    files = local_extracts(lake)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        shutil.copytree(bundle, staging, dirs_exist_ok=True)
        shutil.rmtree(staging / extracts.DATA_DIR, ignore_errors=True)
        write_files(staging, files)
        swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files[f"{extracts.DATA_DIR}/meta.json"]


def swap_in(staging: Path, target: Path) -> None:
    """Replace directory ``target`` by ``staging`` with renames, so a reader never sees a half-written one."""
    previous = target.with_name(f".{target.name}-previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the dashboard site from the local lake")
    parser.add_argument("--lake", type=Path, required=True, help="local lake root (holds processed/)")
    parser.add_argument("--out", type=Path, required=True, help="site folder to (re)create")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="built dashboard bundle")
    args = parser.parse_args(argv)
    meta = write_site(args.lake, args.out, args.bundle)
    print(f"dashboard site written to {args.out}: {meta['countries']} countries, report days "
          f"{meta['first_report_date']} … {meta['latest_report_date']}")


if __name__ == "__main__":
    main()
