#!/usr/bin/env bash
# MWAA startup script: MWAA sources this on every Airflow component (scheduler, dag-processor, worker,
# api-server, triggerer) before Airflow starts; what it exports is in Airflow's environment.
# Keep it to exports: it runs on every start and update, and a failure here fails the environment.

# Parse-time settings read by plugins/covid19_lake/config.py (ParseTimeSettings). On MWAA the EMR step
# sensors defer to the triggerer (no worker slot held, no reschedule race) and ask EMR every minute.
export COVID19_LAKE_SENSOR_MODE="${COVID19_LAKE_SENSOR_MODE:-deferrable}"
export COVID19_LAKE_SENSOR_POKE_SECONDS="${COVID19_LAKE_SENSOR_POKE_SECONDS:-60}"
export COVID19_LAKE_LAND_RETRY_MINUTES="${COVID19_LAKE_LAND_RETRY_MINUTES:-30}"

# boto3 inside tasks: regional STS endpoints, and standard retries for throttled control-plane calls.
export AWS_STS_REGIONAL_ENDPOINTS=regional
export AWS_RETRY_MODE="${AWS_RETRY_MODE:-standard}"
export AWS_MAX_ATTEMPTS="${AWS_MAX_ATTEMPTS:-5}"

echo "covid19-lake startup: component=${MWAA_AIRFLOW_COMPONENT:-unknown} sensor_mode=${COVID19_LAKE_SENSOR_MODE}" >&2
