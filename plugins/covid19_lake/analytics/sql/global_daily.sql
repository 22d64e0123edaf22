-- The whole world per report day, summed over analytics_country_daily, with its own 7-day averages.
WITH world AS (
    SELECT
        report_date,
        SUM(confirmed) AS confirmed,
        SUM(deaths) AS deaths,
        SUM(new_cases) AS new_cases,
        SUM(new_deaths) AS new_deaths,
        COUNT(*) AS countries,
        COUNT_IF(cases_corrected OR deaths_corrected) AS countries_with_corrections
    FROM analytics_country_daily
    GROUP BY report_date
)
SELECT
    report_date,
    confirmed,
    deaths,
    new_cases,
    new_deaths,
    {{ avg_7d('new_cases') }} AS new_cases_avg_7d,
    {{ avg_7d('new_deaths') }} AS new_deaths_avg_7d,
    {{ ratio_pct('deaths', 'confirmed') }} AS case_fatality_ratio,
    countries,
    countries_with_corrections
FROM world
