"""Task code of the `analytics` DAG (the DAG file only wires these together)."""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from covid19_lake import config
from covid19_lake.analytics import extracts
from covid19_lake.analytics.dialect import ATHENA, iso2_by_iso3
from covid19_lake.analytics.views import VIEWS, View

log = logging.getLogger(__name__)


def athena_statement(view: View) -> str:
    """The CREATE OR REPLACE VIEW statement submitted by the view's AthenaOperator."""
    return view.create_statement(ATHENA)


def local_dashboard() -> ModuleType:
    """The development-only site builder (``local/analytics``, DuckDB), imported only for the duckdb engine."""
    try:
        return importlib.import_module("local.analytics.dashboard")
    except ModuleNotFoundError as error:
        raise RuntimeError(
            f"covid19_lake.analytics.engine is 'duckdb', but the local engine cannot be imported ({error}): it is "
            "development code (local/analytics, needs duckdb) that is not part of plugins.zip. Use the "
            "'athena' engine on MWAA, or run from a checkout with the repository root on PYTHONPATH and "
            "requirements-dev.txt installed."
        ) from error


def replace_data_dir(site: Path, files: dict[str, Any]) -> None:
    """Swap in a complete data/ folder next to the site's bundle (no half-written or stale extracts)."""
    dashboard = local_dashboard()
    site.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".data-", dir=site))
    try:
        dashboard.write_files(staging, {k.removeprefix(f"{extracts.DATA_DIR}/"): v for k, v in files.items()})
        dashboard.swap_in(staging, site / extracts.DATA_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_dashboard_extracts() -> dict[str, Any]:
    """Write the dashboard's JSON extracts next to the site, with the configured engine."""
    cfg = config.load()
    analytics, aws_conn_id = cfg.analytics, cfg.lake.aws_conn_id
    if analytics.engine == "duckdb":
        # DuckDB is imported only here: MWAA workers (Athena engine) do not have it installed.
        dashboard = local_dashboard()
        files = dashboard.local_extracts(cfg.lake.local_path)
        site = Path(analytics.local_site)
        if not (site / "index.html").is_file() and (dashboard.DEFAULT_BUNDLE / "index.html").is_file():
            shutil.copytree(dashboard.DEFAULT_BUNDLE, site, dirs_exist_ok=True)
        replace_data_dir(site, files)
        log.info("wrote %d extracts to %s", len(files), site / extracts.DATA_DIR)
    else:
        from airflow.providers.amazon.aws.hooks.athena import AthenaHook
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from covid19_lake.analytics import athena_extracts

        fetch = athena_extracts.athena_fetch(AthenaHook(aws_conn_id=aws_conn_id, log_query=False),
                                             cfg.lake.glue_database, analytics.athena_workgroup,
                                             analytics.athena_output)
        files = extracts.build(fetch, iso2_by_iso3(), engine="athena")
        stale = athena_extracts.upload(S3Hook(aws_conn_id=aws_conn_id), analytics.site_bucket,
                                       analytics.site_prefix, files)
        log.info("wrote %d extracts to s3://%s/%s (removed %d stale)", len(files), analytics.site_bucket,
                 analytics.site_prefix, len(stale))
    return files[f"{extracts.DATA_DIR}/meta.json"]


__all__ = ["VIEWS", "athena_statement", "write_dashboard_extracts"]
