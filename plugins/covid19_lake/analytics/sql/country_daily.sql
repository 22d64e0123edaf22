-- Per country and report day: cumulative totals, daily changes, 7-day averages and case fatality ratio.
-- One source for Athena (Trino) and DuckDB; the double-brace calls are dialect macros (dialect.py), table names are
-- the Glue tables of the covid19 database (bound to the local lake's Parquet by the DuckDB engine).
--
-- new_cases / new_deaths: difference from the country's previous report day. A country's first row is a
-- difference from zero unless it is the lake's first report day (there the history is unknown: NULL).
-- Negative differences are JHU corrections: they are kept and flagged, never clipped.
-- Per 100,000 people: JHU's own population of the country (reference/jhu_population.csv, from its UID lookup
-- table); NULL where JHU has none (ships, Olympics, Antarctica, names later than the table), never zero.
-- new_cases_7d_per_100k: the last 7 report days' new cases (7 x the 7-day average, NULL until there are 7).
WITH by_country AS (
    SELECT
        country_region,
        {{ as_date('report_date') }} AS report_date,
        max_by(iso3, confirmed) AS iso3,
        SUM(confirmed) AS confirmed,
        SUM(deaths) AS deaths,
        COUNT(*) AS locations
    FROM jhu_daily_reports
    WHERE country_region IS NOT NULL AND country_region <> ''
    GROUP BY country_region, {{ as_date('report_date') }}
),
changes AS (
    SELECT
        b.*,
        b.confirmed - COALESCE(
            LAG(b.confirmed) OVER (PARTITION BY b.country_region ORDER BY b.report_date),
            CASE WHEN b.report_date > s.first_report_date THEN 0 END
        ) AS new_cases,
        b.deaths - COALESCE(
            LAG(b.deaths) OVER (PARTITION BY b.country_region ORDER BY b.report_date),
            CASE WHEN b.report_date > s.first_report_date THEN 0 END
        ) AS new_deaths
    FROM by_country AS b
    CROSS JOIN (SELECT MIN(report_date) AS first_report_date FROM by_country) AS s
),
averaged AS (
    SELECT
        c.*,
        p.population,
        {{ avg_7d('c.new_cases', 'c.country_region') }} AS new_cases_avg_7d,
        {{ avg_7d('c.new_deaths', 'c.country_region') }} AS new_deaths_avg_7d
    FROM changes AS c
    LEFT JOIN {{ country_population() }} AS p ON p.country_region = c.country_region
)
SELECT
    country_region,
    iso3,
    report_date,
    confirmed,
    deaths,
    new_cases,
    new_deaths,
    new_cases_avg_7d,
    new_deaths_avg_7d,
    {{ ratio_pct('deaths', 'confirmed') }} AS case_fatality_ratio,
    COALESCE(new_cases < 0, FALSE) AS cases_corrected,
    COALESCE(new_deaths < 0, FALSE) AS deaths_corrected,
    locations,
    population,
    CAST(confirmed AS double) * 100000 / population AS confirmed_per_100k,
    CAST(deaths AS double) * 100000 / population AS deaths_per_100k,
    new_cases_avg_7d * 7 * 100000 / population AS new_cases_7d_per_100k
FROM averaged
