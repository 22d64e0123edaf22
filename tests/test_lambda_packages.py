"""The Lambdas the template deploys are the packages `make package` builds, and those packages run.

For every AWS::Lambda::Function in infra/covid19-lake.yaml: its code is the zip infra/package.py builds
for the key the template names (no inline code anywhere), and its Handler, imported from the unzipped
package alone (python -S: no site-packages, only a stand-in for what the Lambda runtime provides), answers
an event with the environment the template gives it (resolved by local/cfn.py), against local stand-ins:
moto's server for DynamoDB and Secrets Manager, a loopback QuickSight endpoint for the embed API.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra.package import build
from local.cfn import Resolver, load_template, parameter_values
from tests.fixtures.notifier.events import event, item, record
from tests.lambda_runtime import link_runtime

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "infra" / "covid19-lake.yaml"
REGION, ACCOUNT, PROJECT = "us-east-1", "123456789012", "covid19-lake"
DASHBOARD = "covid-overview"
# What the Lambda Python runtime ships beside the function's code (boto3 and what it needs).
# Property that names a resource, by type (what Ref returns for the ones the functions' environments use).
_NAME_PROPERTY = {"AWS::DynamoDB::Table": "TableName", "AWS::SecretsManager::Secret": "Name",
                  "AWS::SQS::Queue": "QueueName", "AWS::Lambda::Function": "FunctionName"}

PROBE = r"""
import importlib, json, sys
task, runtime, handler, events, arn = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
sys.path[:0] = [task, runtime]
module_name, function_name = handler.rsplit(".", 1)
module = importlib.import_module(module_name)

class Context:
    function_name = arn.rsplit(":", 1)[1]
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = arn
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self):
        return 30000

results = [getattr(module, function_name)(e, Context()) for e in events]
files = {name: importlib.import_module(name).__file__ for name in ("aws_lambda_powertools", "boto3", module_name)}
print("RESULT " + json.dumps({"results": results, "files": files,
                              "site": [p for p in sys.path if "site-packages" in p]}))
"""


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resolver(template: dict[str, Any]) -> Resolver:
    """The template on AWS with the embed API on: each Ref/GetAtt a function's environment uses."""
    parameters = parameter_values(template, {"ProjectName": PROJECT, "ArtifactsBucket": "artifacts",
                                             "EnableQuickSightEmbed": "true", "QuickSightDashboardId": DASHBOARD})
    resources = template["Resources"]
    holder: dict[str, Resolver] = {}

    def ref(logical_id: str) -> str:
        resource = resources[logical_id]
        name = _NAME_PROPERTY.get(resource["Type"])
        if name is None or name not in resource.get("Properties", {}):
            raise AssertionError(f"the test cannot name {logical_id} ({resource['Type']})")
        return holder["r"].resolve(resource["Properties"][name], where=logical_id)

    def get_att(logical_id: str, attribute: str) -> str:
        return f"{logical_id.lower()}-{attribute.lower()}.example"

    holder["r"] = Resolver(template, parameters, {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                                                  "AWS::Partition": "aws", "AWS::StackName": PROJECT,
                                                  "AWS::URLSuffix": "amazonaws.com"}, ref, get_att)
    return holder["r"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory, template: dict[str, Any]) -> dict[str, Path]:
    """Lambda logical id -> its zip, built by infra/package.py (offline: dependencies from this venv)."""
    built = build(offline=True, dist=tmp_path_factory.mktemp("dist"))
    packages = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            code = resource["Properties"]["Code"]
            assert "ZipFile" not in code, f"{logical_id}: inline code"
            key = template["Parameters"][code["S3Key"]["Ref"]]["Default"]
            assert key in built, f"{logical_id}: the template deploys {key}, which infra/package.py does not build"
            packages[logical_id] = built[key]
    assert set(packages) == {"NotifierFunction", "QuickSightEmbedFunction"}
    return packages


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    return link_runtime(tmp_path_factory.mktemp("var-runtime"))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def invoke(logical_id: str, events: list[dict[str, Any]], *, packages: dict[str, Path], template: dict[str, Any],
           resolver: Resolver, runtime: Path, tmp_path: Path, endpoints: dict[str, str]) -> dict[str, Any]:
    """Run the function's Handler from its unzipped package, with the template's environment."""
    props = template["Resources"][logical_id]["Properties"]
    task = tmp_path / "var-task"
    zipfile.ZipFile(packages[logical_id]).extractall(task)
    name = resolver.resolve(props["FunctionName"], where=logical_id)
    env = {
        **{k: str(v) for k, v in resolver.resolve(props["Environment"]["Variables"], where=logical_id).items()},
        **endpoints,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_LAMBDA_FUNCTION_NAME": name,
    }
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-c", PROBE, str(task), str(runtime), props["Handler"], json.dumps(events), arn],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    report = json.loads(lines[-1].removeprefix("RESULT "))
    # Everything came from the package or the runtime stand-in, nothing from this checkout or a venv.
    assert report["site"] == []
    module = props["Handler"].rsplit(".", 1)[0]
    assert report["files"][module].startswith(str(task)) and report["files"]["aws_lambda_powertools"].startswith(
        str(task))
    assert report["files"]["boto3"].startswith(str(runtime))
    return report


def test_each_package_holds_its_handler_and_nothing_from_tests(packages: dict[str, Path],
                                                               template: dict[str, Any]) -> None:
    for logical_id, path in packages.items():
        names = zipfile.ZipFile(path).namelist()
        handler_file = template["Resources"][logical_id]["Properties"]["Handler"].rsplit(".", 1)[0].replace(".", "/")
        assert f"{handler_file}.py" in names, logical_id
        assert "aws_lambda_powertools/__init__.py" in names, logical_id
        assert not {n.split("/")[0] for n in names} & {"boto3", "botocore", "tests", "local", "covid19_lake"}
        assert not [n for n in names if n.endswith("/package.py") or "__pycache__" in n], logical_id


def test_packaged_notifier_reads_the_template_s_secret_and_table(packages, template, resolver, runtime,
                                                                 moto_endpoint, tmp_path) -> None:
    env = resolver.resolve(template["Resources"]["NotifierFunction"]["Properties"]["Environment"]["Variables"])
    table = template["Resources"]["NotifierIdempotencyTable"]["Properties"]
    aws = {"endpoint_url": moto_endpoint, "region_name": REGION, "aws_access_key_id": "testing",
           "aws_secret_access_key": "testing"}
    boto3.client("dynamodb", **aws).create_table(
        TableName=env["IDEMPOTENCY_TABLE_NAME"], AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"], BillingMode=table["BillingMode"])
    batch = [event(record("MODIFY", new=item("COMPLETED"), old=item("RUNNING"), sequence="11"))]
    run = {"packages": packages, "template": template, "resolver": resolver, "runtime": runtime,
           "endpoints": {"AWS_ENDPOINT_URL": moto_endpoint}}

    # Before the webhooks secret exists the record fails (and would be retried): the secret is really read.
    missing = invoke("NotifierFunction", batch, tmp_path=tmp_path / "first", **run)
    assert missing["results"] == [{"batchItemFailures": [{"itemIdentifier": "11"}]}]

    webhooks = template["Resources"]["WebhooksSecret"]["Properties"]
    boto3.client("secretsmanager", **aws).create_secret(Name=env["WEBHOOKS_SECRET_NAME"],
                                                        SecretString=webhooks["SecretString"])
    delivered = invoke("NotifierFunction", batch, tmp_path=tmp_path / "second", **run)
    assert delivered["results"] == [{"batchItemFailures": []}]  # every destination is disabled in the placeholder


class _QuickSight(http.server.BaseHTTPRequestHandler):
    """GenerateEmbedUrlForAnonymousUser on the loopback interface: records each request, answers like AWS."""

    requests: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        answer = json.dumps({"EmbedUrl": "https://us-east-1.quicksight.aws.amazon.com/embed/abc", "Status": 200,
                             "RequestId": "q-1", "AnonymousUserArn": f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/x"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def quicksight() -> Iterator[str]:
    _QuickSight.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuickSight)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _http_api_event(path: str, origin: str) -> dict[str, Any]:
    """What the template's HTTP API (payload format 2.0) passes for GET <path>."""
    return {"version": "2.0", "routeKey": f"GET {path}", "rawPath": path, "rawQueryString": "",
            "headers": {"origin": origin}, "isBase64Encoded": False,
            "requestContext": {"accountId": ACCOUNT, "apiId": "api1", "http": {"method": "GET", "path": path,
                                                                              "protocol": "HTTP/1.1",
                                                                              "sourceIp": "203.0.113.7",
                                                                              "userAgent": "test"},
                               "requestId": "r-1", "routeKey": f"GET {path}", "stage": "$default"}}


def test_packaged_embed_handler_answers_the_http_api(packages, template, resolver, runtime, quicksight,
                                                    tmp_path) -> None:
    props = template["Resources"]["QuickSightEmbedFunction"]["Properties"]
    origin = resolver.resolve(props["Environment"]["Variables"]["ALLOWED_DOMAINS"])
    route = template["Resources"]["QuickSightEmbedRoute"]["Properties"]["RouteKey"]
    assert route == "GET /embed-url"
    report = invoke("QuickSightEmbedFunction", [_http_api_event("/embed-url", origin),
                                                _http_api_event("/elsewhere", origin)],
                    packages=packages, template=template, resolver=resolver, runtime=runtime, tmp_path=tmp_path,
                    endpoints={"AWS_ENDPOINT_URL_QUICKSIGHT": quicksight})
    found, missing = report["results"]
    assert found["statusCode"] == 200, found
    assert json.loads(found["body"])["embedUrl"] == "https://us-east-1.quicksight.aws.amazon.com/embed/abc"
    assert found["headers"]["Access-Control-Allow-Origin"] == origin
    assert missing["statusCode"] == 404
    ((path, request),) = _QuickSight.requests
    assert path == f"/accounts/{ACCOUNT}/embed-url/anonymous-user"
    assert request["AuthorizedResourceArns"] == [f"arn:aws:quicksight:{REGION}:{ACCOUNT}:dashboard/{DASHBOARD}"]
    assert request["AllowedDomains"] == [origin] and request["Namespace"] == "default"
    assert request["SessionLifetimeInMinutes"] == int(props["Environment"]["Variables"]["SESSION_LIFETIME_MINUTES"])
