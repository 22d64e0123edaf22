# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint install check-java clean

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

lint: install
	$(PY) -m ruff check .

test: install check-java lint
	$(PY) -m pytest

demo: install check-java
	$(PY) -m local.demo

clean:
	rm -rf .local
