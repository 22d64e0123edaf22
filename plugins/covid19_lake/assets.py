"""Airflow Assets for the lake's processed tables.

Producers list them as task outlets; the `analytics` DAG is scheduled on them. The URIs name the
table, not the storage location, so they are the same on AWS and in the local stack.
"""

from __future__ import annotations

from airflow.sdk import Asset

JHU_DAILY_REPORTS = Asset(name="jhu_daily_reports", uri="covid19-lake://processed/jhu_daily_reports")
TWEETS = Asset(name="tweets", uri="covid19-lake://processed/tweets")
TWEET_DAILY_STATS = Asset(name="tweet_daily_stats", uri="covid19-lake://processed/tweet_daily_stats")
