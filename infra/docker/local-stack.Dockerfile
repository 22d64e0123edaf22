# The embedded local AWS stack (moto server, EMR step runner with Spark, stream bridge, webhook sink)
# as one docker-compose service. Python 3.11 and Java 17, like EMR 7.x and the development venv.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/covid19-lake
COPY constraints/ constraints/
COPY requirements.txt requirements-dev.txt ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements-dev.txt

# The source (local/, spark_jobs/, lambdas/, infra/, plugins/) is mounted at run time, so edits apply
# on restart without a rebuild.
ENV PYTHONPATH=/opt/covid19-lake:/opt/covid19-lake/plugins \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
