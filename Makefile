# The two commands a new user needs: `make demo` and `make test`. Everything else is a step of those
# or of deploying to AWS (docs/deploy.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NPM_INSTALLED := dashboard/node_modules/.package-lock.json

.PHONY: demo airflow airflow-down test lint docs install venvs check-java check-chromium check-postgres dashboard package deploy clean

$(INSTALLED): requirements.txt requirements-dev.txt constraints/constraints-airflow-3.3.1-python-3.12.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(INSTALLED)

check-java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "Spark needs Java 17, and 'java' is not on PATH."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "  macOS:         brew install openjdk@17"; \
	  exit 1; }
	@java -version 2>&1 | grep -Eq 'version "(17|21)' || { \
	  echo "Spark 3.5 needs Java 17 (found: $$(java -version 2>&1 | head -n1))."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless"; \
	  exit 1; }

# The dashboard's browser test uses Debian's Chromium (never a downloaded browser).
check-chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The dashboard browser test needs Chromium: sudo apt-get install -y chromium"; exit 1; fi; }

# The local Airflow's metadata DB runs on the machine's PostgreSQL server binaries (local/postgres.py).
check-postgres:
	@$(PY) -c "from local.postgres import binary; binary('initdb'); binary('pg_ctl')" 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else $(PY) -c "from local.postgres import INSTALL_HINT; print(INSTALL_HINT)"; exit 1; fi; }

$(NPM_INSTALLED): dashboard/package.json dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund
	@touch $@

dashboard: $(NPM_INSTALLED)
	cd dashboard && npm run build

lint: install
	$(PY) -m ruff check .

# docs/configuration.md from the loader (plugins/covid19_lake/config.py); tests/test_config_docs.py checks it.
docs: install
	$(PY) -m local.config_docs

# Isolated venvs the tests reuse (tests/venvs.py, cached in .local/venvs by requirements hash):
# `mwaa` holds only MWAA's packages, for tests/test_mwaa_package.py; `checkov` the pinned scanner
# (infra/checkov/requirements.txt) that tests/test_checkov.py runs over infra/*.yaml.
venvs: install
	$(PY) -m tests.venvs mwaa checkov

test: install check-java check-chromium check-postgres dashboard lint venvs
	$(PY) -m pytest

demo: install check-java check-postgres dashboard
	$(PY) -m local.demo $(DEMO_ARGS)

# The real Airflow UI on the local stack, without Docker (api-server on 127.0.0.1:$${AIRFLOW_PORT:-8080},
# scheduler, dag-processor, triggerer); returns once it answers. `make airflow-down` stops all of it.
airflow: install check-java check-postgres
	$(PY) -m local.airflow_server up

airflow-down:
	@test -x $(PY) && $(PY) -m local.airflow_server down || true

# Real AWS (docs/deploy.md): build plugins.zip, the Lambda zips and the Spark jobs; then deploy.
package: install
	$(PY) -m infra.package $(if $(ARTIFACTS_BUCKET),--bucket $(ARTIFACTS_BUCKET))

deploy: install
	$(PY) -m infra.deploy deploy $(if $(AWS_REGION),--region $(AWS_REGION)) $(DEPLOY_ARGS)

clean:
	rm -rf .local dist dashboard/dist
