"""The job table as the template defines it, created in moto for the unit tests of its readers/writers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local.cfn import load_template

TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "covid19-lake.yaml"


def create_job_table(client: Any, name: str = "jobs") -> None:
    """Keys, billing and stream of the template's JobTable (the unit tests then see what the stack has)."""
    properties = load_template(TEMPLATE)["Resources"]["JobTable"]["Properties"]
    stream = {"StreamEnabled": True, **properties["StreamSpecification"]}
    client.create_table(TableName=name, KeySchema=properties["KeySchema"],
                        AttributeDefinitions=properties["AttributeDefinitions"],
                        BillingMode=properties["BillingMode"], StreamSpecification=stream)


@contextmanager
def moto_job_table(monkeypatch: Any, name: str = "jobs") -> Iterator[str]:
    """Inside moto's in-process AWS: the job table `name`, and the Airflow AWS connection pointing at it."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}')
    with mock_aws():
        create_job_table(boto3.client("dynamodb", region_name="us-east-1"), name)
        yield name
