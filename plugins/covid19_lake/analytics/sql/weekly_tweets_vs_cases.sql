-- Tweets per country and ISO week (Monday start) next to that week's new cases and deaths.
-- Defined from the base tables (tweet_daily_stats and analytics_country_daily), so it does not depend on
-- the columns of the processed weekly_tweets_vs_cases table. A full outer join keeps weeks that have only
-- tweets or only cases; report_days tells how many report days a week's case sums cover.
WITH cases AS (
    SELECT
        c.country_region,
        c.iso3,
        cc.alpha_2 AS country_code,
        {{ week_start('c.report_date') }} AS week_start,
        SUM(c.new_cases) AS new_cases,
        SUM(c.new_deaths) AS new_deaths,
        COUNT(*) AS report_days
    FROM analytics_country_daily AS c
    LEFT JOIN {{ country_codes() }} AS cc ON cc.alpha_3 = c.iso3
    GROUP BY c.country_region, c.iso3, cc.alpha_2, {{ week_start('c.report_date') }}
),
tweets_weekly AS (
    SELECT
        country_code,
        {{ week_start(as_date('"date"')) }} AS week_start,
        SUM(tweet_count) AS tweet_count
    FROM tweet_daily_stats
    WHERE country_code IS NOT NULL AND country_code <> ''
    GROUP BY country_code, {{ week_start(as_date('"date"')) }}
)
SELECT
    COALESCE(c.week_start, t.week_start) AS week_start,
    COALESCE(c.country_code, t.country_code) AS country_code,
    c.country_region,
    c.iso3,
    COALESCE(t.tweet_count, 0) AS tweet_count,
    c.new_cases,
    c.new_deaths,
    COALESCE(c.report_days, 0) AS report_days
FROM cases AS c
FULL OUTER JOIN tweets_weekly AS t
    ON t.country_code = c.country_code AND t.week_start = c.week_start
