#!/usr/bin/env bash
# Entry of every Airflow container in docker-compose: set the environment as MWAA would (startup.sh),
# then point AWS calls at the local stack (unless COVID19_LAKE_TARGET=aws), then exec the command.
set -euo pipefail

# shellcheck source=../mwaa/startup.sh
source "$(dirname "${BASH_SOURCE[0]}")/../mwaa/startup.sh"

if [[ "${COVID19_LAKE_TARGET:-local}" != "aws" ]]; then
  stack_file="${COVID19_LAKE_STATE_DIR:?}/stack.json"
  # The stack container writes stack.json (ports, endpoint, settings) once it is up; wait for it.
  for _ in $(seq 1 180); do
    if [[ -s "$stack_file" ]] && python -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])).get("status") != "running")' "$stack_file"; then
      break
    fi
    sleep 1
  done
  if [[ ! -s "$stack_file" ]]; then
    echo "with-stack-env: $stack_file did not appear; is the aws service running?" >&2
    exit 1
  fi
  # stack.json's "env": AWS endpoint, fake credentials, region, AIRFLOW_CONN_AWS_DEFAULT, the covid19_lake Variable.
  eval "$(python - "$stack_file" <<'PY'
import json, shlex, sys
record = json.load(open(sys.argv[1]))
for name, value in sorted(record.get("env", {}).items()):
    print(f"export {name}={shlex.quote(str(value))}")
PY
)"
fi

exec "$@"
