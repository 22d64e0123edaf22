# Airflow as MWAA runs it: the same Airflow and constraints, plus requirements.txt (what MWAA installs).
FROM apache/airflow:3.3.1-python3.12

COPY requirements.txt /tmp/requirements.txt
# Naming apache-airflow keeps pip from moving Airflow while it resolves our requirements.
RUN pip install --no-cache-dir --disable-pip-version-check "apache-airflow==3.3.1" -r /tmp/requirements.txt
