"""Analytics over the processed lake: one SQL source per view, run by Athena on AWS and DuckDB locally.

- `dialect`: renders the SQL sources for an engine (the only place the two SQL dialects differ);
- `views`: the views, in dependency order, and their CREATE OR REPLACE statements;
- `duck`: the embedded engine (DuckDB over the lake's Hive-partitioned Parquet);
- `extracts`: the dashboard's JSON extracts, computed by either engine;
- `dashboard` / `serve`: write a site (bundle + extracts) and serve it on the loopback interface.
"""
