"""The analytics views, in dependency order, and the statements that create or replace them."""

from __future__ import annotations

from dataclasses import dataclass

from covid19_lake.analytics.dialect import Dialect, render

# Base tables of the Glue database the views read (the processed lake's data contracts).
BASE_TABLES = ("jhu_daily_reports", "tweets", "tweet_daily_stats")


@dataclass(frozen=True)
class View:
    name: str
    source: str  # sql/<source>.sql
    reads: tuple[str, ...]
    description: str

    def select(self, dialect: Dialect) -> str:
        return render(self.source, dialect)

    def create_statement(self, dialect: Dialect) -> str:
        return f"CREATE OR REPLACE VIEW {self.name} AS\n{self.select(dialect)}"


# Order matters: a view is created after the views it reads.
VIEWS: tuple[View, ...] = (
    View("analytics_country_daily", "country_daily", ("jhu_daily_reports",),
         "Per country and day: totals, new cases/deaths (corrections flagged), 7-day averages, CFR"),
    View("analytics_global_daily", "global_daily", ("analytics_country_daily",),
         "The world per day, with 7-day averages"),
    View("analytics_latest_by_location", "latest_by_location", ("jhu_daily_reports",),
         "Latest report day by coordinates, for the map"),
    View("analytics_top_hashtags_daily", "top_hashtags_daily", ("tweets", "analytics_country_daily"),
         "Top 10 hashtags per country and day"),
    View("analytics_weekly_tweets_vs_cases", "weekly_tweets_vs_cases",
         ("tweet_daily_stats", "analytics_country_daily"),
         "Weekly tweets next to weekly new cases and deaths per country"),
)
VIEWS_BY_NAME = {view.name: view for view in VIEWS}


def check_order(views: tuple[View, ...] = VIEWS) -> None:
    """Fail if a view reads a view defined after it (Athena would reject the CREATE VIEW)."""
    seen: set[str] = set(BASE_TABLES)
    for view in views:
        missing = [name for name in view.reads if name not in seen]
        if missing:
            raise ValueError(f"view {view.name} reads {missing}, which are not created before it")
        seen.add(view.name)
