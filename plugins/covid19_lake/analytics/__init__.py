"""Analytics over the processed lake: one SQL source per view, run by Athena on AWS (DuckDB locally).

- `dialect`: renders the SQL sources for an engine (the only place the two SQL dialects differ);
- `views`: the views, in dependency order, and their CREATE OR REPLACE statements;
- `extracts`: the dashboard's JSON extracts, computed by either engine;
- `athena_extracts` / `tasks` / `settings`: the analytics DAG's Athena path and task code.

The local engine (DuckDB), the site builder and its server are development code in `local/analytics/`:
they are not part of plugins.zip, since MWAA has no DuckDB.
"""
