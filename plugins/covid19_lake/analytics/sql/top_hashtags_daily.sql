-- The ten most used hashtags per country and day (case-insensitive, without the leading '#').
-- country_region comes from the country codes reference joined on the JHU iso3 of analytics_country_daily.
WITH tags AS (
    SELECT
        t.country_code,
        {{ as_date('t.created_date') }} AS day,
        lower(regexp_replace(u.tag, '^#', '')) AS hashtag
    FROM tweets AS t
    CROSS JOIN UNNEST(t.hashtags) AS u (tag)
    WHERE t.country_code IS NOT NULL AND t.country_code <> ''
),
counted AS (
    SELECT country_code, day, hashtag, COUNT(*) AS tweet_count
    FROM tags
    WHERE hashtag <> ''
    GROUP BY country_code, day, hashtag
),
ranked AS (
    SELECT
        counted.*,
        ROW_NUMBER() OVER (PARTITION BY country_code, day ORDER BY tweet_count DESC, hashtag) AS hashtag_rank
    FROM counted
)
SELECT
    ranked.country_code,
    names.country_region,
    ranked.day,
    ranked.hashtag_rank,
    ranked.hashtag,
    ranked.tweet_count
FROM ranked
LEFT JOIN (
    SELECT DISTINCT cc.alpha_2, c.country_region
    FROM (SELECT DISTINCT country_region, iso3 FROM analytics_country_daily) AS c
    JOIN {{ country_codes() }} AS cc ON cc.alpha_3 = c.iso3
) AS names ON names.alpha_2 = ranked.country_code
WHERE ranked.hashtag_rank <= 10
