"""covid19-lake: the importable package behind the DAGs (MWAA puts plugins/ on sys.path)."""
