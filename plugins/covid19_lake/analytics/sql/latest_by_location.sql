-- Every located row (country, province or county) of the latest report day, for a map or table.
-- Rows without coordinates (Unassigned, Out of <State>, cruise ships) or at (0, 0) cannot be placed.
SELECT
    r.combined_key,
    r.country_region,
    r.province_state,
    r.admin2,
    r.iso3,
    r.latitude,
    r.longitude,
    r.confirmed,
    r.deaths,
    {{ ratio_pct('r.deaths', 'r.confirmed') }} AS case_fatality_ratio,
    r.last_update,
    {{ as_date('r.report_date') }} AS report_date
FROM jhu_daily_reports AS r
WHERE {{ as_date('r.report_date') }} = (SELECT MAX({{ as_date('report_date') }}) FROM jhu_daily_reports)
    AND r.latitude IS NOT NULL
    AND r.longitude IS NOT NULL
    AND NOT (r.latitude = 0 AND r.longitude = 0)
