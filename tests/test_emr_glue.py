"""EMR and Glue building blocks against moto: cluster lookup, idempotent steps, partitions."""

from __future__ import annotations

import boto3
import pytest
from airflow.providers.amazon.aws.hooks.emr import EmrHook
from moto import mock_aws

from covid19_lake import emr, glue


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}')
    with mock_aws():
        yield


def run_cluster(name: str) -> str:
    return boto3.client("emr", region_name="us-east-1").run_job_flow(
        Name=name, ReleaseLabel="emr-7.9.0",
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]


def test_cluster_lookup_by_name_reads_every_page(aws):
    client = boto3.client("emr", region_name="us-east-1")
    for index in range(60):
        run_cluster(f"other-{index}")
    # moto orders clusters by id (random) and pages by 50: keep the wanted cluster only once it
    # lands beyond the first page, terminating the tries that don't (TERMINATED is not looked up).
    for _ in range(200):
        wanted = run_cluster("covid19-lake")
        first_page = client.list_clusters(ClusterStates=emr.CLUSTER_LOOKUP_STATES)
        if wanted not in {c["Id"] for c in first_page["Clusters"]}:
            break
        client.terminate_job_flows(JobFlowIds=[wanted])
    assert "Marker" in first_page and wanted not in {c["Id"] for c in first_page["Clusters"]}
    assert EmrHook().get_cluster_id_by_name("covid19-lake", emr.CLUSTER_LOOKUP_STATES) == wanted


def test_add_step_once_reuses_the_step_a_retry_finds_and_names_carry_dag_and_run(aws):
    cluster_id = run_cluster("covid19-lake")
    hook = EmrHook()
    name = emr.step_name("jhu", "2020-03-01", "2020-03-31", "jhu_backfill", "manual__1")
    assert name == "jhu 2020-03-01..2020-03-31 [jhu_backfill/manual__1]"
    step = emr.spark_submit_step(name, "s3://artifacts/spark_jobs", "jhu_daily_reports.py",
                                 ["--lake", "s3://lake", "--summary-uri", "s3://lake/s.json"])
    first, added = emr.add_step_once(hook, cluster_id, step)
    again, added_again = emr.add_step_once(hook, cluster_id, step)  # what a task retry does
    assert (again, added, added_again) == (first, True, False)
    steps = boto3.client("emr", region_name="us-east-1").list_steps(ClusterId=cluster_id)["Steps"]
    assert [s["Id"] for s in steps] == [first]
    args = steps[0]["Config"]["Args"]
    assert args[:5] == ["spark-submit", "--deploy-mode", "cluster", "--py-files",
                        "s3://artifacts/spark_jobs/lib.zip"]
    assert args[5:] == ["s3://artifacts/spark_jobs/jhu_daily_reports.py", "--lake", "s3://lake",
                        "--summary-uri", "s3://lake/s.json"]
    assert emr.step_argument(emr.describe_step(hook, cluster_id, first), "--summary-uri") == "s3://lake/s.json"
    assert emr.step_argument(emr.describe_step(hook, cluster_id, first), "--only-dates") is None

    # The same run id in another DAG is another run: another step.
    other = dict(step, Name=emr.step_name("jhu", "2020-03-01", "2020-03-31", "jhu_daily_reports", "manual__1"))
    assert emr.add_step_once(hook, cluster_id, other)[0] != first


def test_a_transient_cluster_is_found_again_by_its_run_tag(aws):
    hook = EmrHook(emr_conn_id=None)
    overrides = {"Name": "covid19-lake-transient", "ReleaseLabel": "emr-7.9.0",
                 "Instances": {"MasterInstanceType": "m5.xlarge", "InstanceCount": 1,
                               "KeepJobFlowAliveWhenNoSteps": True},
                 "JobFlowRole": "EMR_EC2_DefaultRole", "ServiceRole": "EMR_DefaultRole",
                 "Tags": [{"Key": "team", "Value": "lake"}]}
    tag = emr.run_tag("jhu_backfill", "manual__1")
    assert emr.find_run_cluster(hook, "covid19-lake-transient", tag) is None
    created = emr.create_run_cluster(hook, overrides, tag)
    assert emr.find_run_cluster(hook, "covid19-lake-transient", tag) == created
    assert emr.find_run_cluster(hook, "covid19-lake-transient", emr.run_tag("jhu_backfill", "manual__2")) is None
    tags = boto3.client("emr", region_name="us-east-1").describe_cluster(ClusterId=created)["Cluster"]["Tags"]
    assert {(t["Key"], t["Value"]) for t in tags} == {("team", "lake"), (emr.RUN_TAG, tag)}


def test_step_state_and_failure_reason(aws):
    cluster_id = run_cluster("covid19-lake")
    hook = EmrHook()
    assert emr.step_state(hook, cluster_id, "s-DOESNOTEXIST") is None
    step = {"Id": "s-1", "Status": {"State": "FAILED", "FailureDetails": {
        "Reason": "Unknown error.", "Message": "Exception in thread main: boom", "LogFile": "s3://logs/s-1/stderr.gz"}}}
    assert emr.failure_reason(step) == (
        "EMR step s-1 FAILED: Unknown error.; Exception in thread main: boom (log: s3://logs/s-1/stderr.gz)"
    )
    cancelled = {"Id": "s-2", "Status": {"State": "CANCELLED", "StateChangeReason": {"Message": "Cancelled by user"}}}
    assert emr.failure_reason(cancelled) == "EMR step s-2 CANCELLED: Cancelled by user"


def make_table(location: str) -> None:
    client = boto3.client("glue", region_name="us-east-1")
    client.create_database(DatabaseInput={"Name": "covid19"})
    client.create_table(DatabaseName="covid19", TableInput={
        "Name": "jhu_daily_reports",
        "PartitionKeys": [{"Name": "report_date", "Type": "date"}],
        "StorageDescriptor": {
            "Columns": [{"Name": "confirmed", "Type": "bigint"}], "Location": location,
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        },
        "TableType": "EXTERNAL_TABLE",
    })


def test_partitions_are_added_in_batches_and_only_once(aws):
    make_table("s3://lake/processed/jhu_daily_reports/")
    days = [f"2020-{m:02d}-{d:02d}" for m in range(1, 9) for d in range(1, 29)]  # 224 dates, 3 batches
    assert glue.add_partitions("covid19", "jhu_daily_reports", days) == {"created": 224, "existing": 0}
    assert glue.add_partitions("covid19", "jhu_daily_reports", [*days[:150], "2021-01-01"]) == {
        "created": 1, "existing": 150}
    client = boto3.client("glue", region_name="us-east-1")
    partition = client.get_partition(DatabaseName="covid19", TableName="jhu_daily_reports",
                                     PartitionValues=["2020-03-01"])["Partition"]
    assert partition["StorageDescriptor"]["Location"] == "s3://lake/processed/jhu_daily_reports/report_date=2020-03-01/"
    assert partition["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    pages = client.get_paginator("get_partitions").paginate(DatabaseName="covid19", TableName="jhu_daily_reports")
    assert sum(len(p["Partitions"]) for p in pages) == 225
