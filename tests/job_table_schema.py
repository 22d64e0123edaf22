"""The job table as the template defines it, created in moto for the unit tests of its readers/writers."""

from __future__ import annotations

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
