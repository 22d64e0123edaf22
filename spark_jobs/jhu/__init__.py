"""The JHU daily-reports job's modules (its main is spark_jobs/jhu_daily_reports.py):

    eras       the five header eras, the canonical fields, value parsers (Column -> Column)
    checks     the row checks that quarantine a row and the field checks that null one field
    transform  the transformations, each DataFrame -> DataFrame
    storage    file access through Hadoop's FileSystem: raw headers and scans, the mapping, the writes

The rules are documented in docs/jhu-normalization.md.
"""
