"""Development-only analytics: DuckDB over the local lake, the dashboard site builder and its server.

Not shipped to MWAA (plugins.zip holds only production code; MWAA has no DuckDB):

- `duck`: the embedded engine (DuckDB over the lake's Hive-partitioned Parquet), the local stand-in for Athena;
- `fixture_lake`: a processed jhu_daily_reports table from the raw JHU mirror, for tests and the demo;
- `dashboard` / `serve` / `demo`: write a site (bundle + extracts) and serve it on the loopback interface;
- `headless`: headless Chromium over the DevTools protocol, for the dashboard's browser test.
"""
