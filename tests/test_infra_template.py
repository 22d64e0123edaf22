"""The CloudFormation templates: cfn-lint, static security rules, the contract, and a moto deploy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode
from moto import mock_aws

REPO_ROOT = Path(__file__).resolve().parent.parent
INFRA = REPO_ROOT / "infra"
MAIN = INFRA / "covid19-lake.yaml"
TEMPLATES = sorted(INFRA.glob("*.yaml"))
REGION = "us-east-1"
PROJECT = "covid19-lake"

# Actions whose only resource form is "*" (no resource-level permissions), each with the reason.
STAR_RESOURCE_ACTIONS = {
    "logs:DescribeLogGroups",
    "cloudwatch:PutMetricData",
    "elasticmapreduce:RunJobFlow",  # the cluster does not exist yet
    "elasticmapreduce:ListClusters",
}
# Resources that need real AWS and must not be created by DeploymentTarget=local.
AWS_ONLY_TYPES = {
    "AWS::MWAA::Environment", "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::SecurityGroup",
    "AWS::EC2::NatGateway", "AWS::EMR::SecurityConfiguration", "AWS::IAM::InstanceProfile",
    "AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::CloudFront::Distribution",
    "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Route", "AWS::KMS::Key",
    "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::CloudWatch::Alarm", "AWS::Events::Rule",
}


def _load(path: Path) -> dict[str, Any]:
    template, matches = decode(str(path))
    assert not matches, f"{path}: {matches}"
    return template


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return _load(MAIN)


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement: inline role policies, managed/standalone policies, bucket and key policies."""
    for lid, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        for key in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument"):
            if key in props:
                documents.append(props[key])
        for document in documents:
            for statement in _as_list(document["Statement"]):
                yield lid, statement


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_reports_nothing(path: Path) -> None:
    matches = lint_file(path, config=ManualArgs(regions=[REGION]))
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_no_star_action_on_star_resource(path: Path) -> None:
    template = _load(path)
    offenders = []
    for lid, statement in _statements(template):
        if statement.get("Effect") != "Allow" or ("Principal" in statement and "Resource" not in statement):
            continue  # denials, and trust policies (no Resource)
        actions = _as_list(statement.get("Action", []))
        resources = _as_list(statement.get("Resource", []))
        assert "*" not in actions, f"{lid}: Action '*' is never allowed"
        if "*" in resources and "Principal" not in statement:
            broad = sorted(set(actions) - STAR_RESOURCE_ACTIONS)
            if broad:
                offenders.append((lid, statement.get("Sid"), broad))
    assert offenders == [], f"actions on Resource '*' without a documented reason: {offenders}"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_bucket_is_encrypted_and_private(path: Path) -> None:
    buckets = _resources(_load(path), "AWS::S3::Bucket")
    assert buckets
    for lid, bucket in buckets.items():
        props = bucket["Properties"]
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms"), lid
        block = props["PublicAccessBlockConfiguration"]
        assert all(block[k] is True for k in
                   ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")), lid
        assert props["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced", lid


def test_data_stores_are_encrypted(main: dict[str, Any]) -> None:
    for lid, table in _resources(main, "AWS::DynamoDB::Table").items():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True, lid
    for lid, queue in _resources(main, "AWS::SQS::Queue").items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, lid
    stream = main["Resources"]["TweetsDeliveryStream"]["Properties"]
    assert stream["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "AWS_OWNED_CMK"
    athena = main["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert athena["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"
    emr = main["Resources"]["EmrSecurityConfiguration"]["Properties"]["SecurityConfiguration"]
    assert emr["EncryptionConfiguration"]["EnableAtRestEncryption"] is True


def test_aws_only_resources_are_conditioned(main: dict[str, Any]) -> None:
    conditions = main["Conditions"]
    aws_conditions = {"IsAws", "CreateVpc", "EnableQuickSight", "EmbedJwtAuth", "HasAlarmEmail"}
    assert conditions["IsAws"] == {"Fn::Equals": [{"Ref": "DeploymentTarget"}, "aws"]}
    for lid, resource in main["Resources"].items():
        if resource["Type"] in AWS_ONLY_TYPES:
            assert resource.get("Condition") in aws_conditions, f"{lid} ({resource['Type']}) needs an AWS condition"
    quicksight = [r for r in main["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert quicksight and all(r["Condition"] == "EnableQuickSight" for r in quicksight)


def test_job_table_contract(main: dict[str, Any]) -> None:
    props = main["Resources"]["JobTable"]["Properties"]
    assert props["TableName"] == {"Fn::Sub": "${ProjectName}-jobs"}
    assert props["KeySchema"] == [{"AttributeName": "job_date", "KeyType": "HASH"},
                                  {"AttributeName": "job_name", "KeyType": "RANGE"}]
    assert props["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    idempotency = main["Resources"]["NotifierIdempotencyTable"]["Properties"]
    assert idempotency["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idempotency["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_notifier_and_event_source_mapping(main: dict[str, Any]) -> None:
    function = main["Resources"]["NotifierFunction"]["Properties"]
    assert (function["Runtime"], function["Handler"]) == ("python3.12", "lambdas.notifier.app.handler")
    assert set(function["Environment"]["Variables"]) >= {
        "WEBHOOKS_SECRET_NAME", "IDEMPOTENCY_TABLE_NAME", "AIRFLOW_BASE_URL", "POWERTOOLS_SERVICE_NAME"}
    mapping = main["Resources"]["NotifierEventSourceMapping"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["JobTable", "StreamArn"]}
    assert (mapping["StartingPosition"], mapping["BatchSize"]) == ("LATEST", 10)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True and mapping["MaximumRetryAttempts"] >= 1
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["NotifierDeadLetterQueue", "Arn"]}
    # The notifier may send to its on-failure queue and read exactly the job table's stream.
    sids = {s["Sid"]: s for _, s in _statements({"Resources": {"R": main["Resources"]["NotifierRole"]}})
            if "Sid" in s}
    assert sids["ReadJobStream"]["Resource"] == {"Fn::GetAtt": ["JobTable", "StreamArn"]}
    assert sids["OnFailureDestination"]["Action"] == ["sqs:SendMessage", "sqs:GetQueueAttributes"]


def test_mwaa_environment(main: dict[str, Any]) -> None:
    mwaa = main["Resources"]["MwaaEnvironment"]
    props = mwaa["Properties"]
    assert mwaa["Condition"] == "IsAws"
    assert props["AirflowVersion"] == "3.3.1"
    options = props["AirflowConfigurationOptions"]
    assert options["secrets.backend"] == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    assert options["operators.default_deferrable"] == "true"
    kwargs = json.loads(options["secrets.backend_kwargs"]["Fn::Sub"].replace("${ProjectName}", "p"))
    # connection x_api resolves to the secret the template creates for it
    x_api = main["Resources"]["XApiConnectionSecret"]["Properties"]["Name"]["Fn::Sub"].replace("${ProjectName}", "p")
    assert x_api == f"{kwargs['connections_prefix']}/x_api"
    assert _secret_name(main, "AirflowLakeVariable") == f"{kwargs['variables_prefix']}/covid19_lake"
    for path, version in (("RequirementsS3Path", "RequirementsS3ObjectVersion"),
                          ("PluginsS3Path", "PluginsS3ObjectVersion"),
                          ("StartupScriptS3Path", "StartupScriptS3ObjectVersion")):
        assert props[path] and "Fn::If" in props[version]


def test_mwaa_role_passes_only_the_emr_roles(main: dict[str, Any]) -> None:
    role = {"Resources": {"MwaaExecutionRole": main["Resources"]["MwaaExecutionRole"]}}
    passes = [s for _, s in _statements(role) if "iam:PassRole" in _as_list(s.get("Action", []))]
    assert len(passes) == 1
    assert passes[0]["Resource"] == [{"Fn::GetAtt": ["EmrServiceRole", "Arn"]},
                                     {"Fn::GetAtt": ["EmrInstanceRole", "Arn"]}]


def _sids(main: dict[str, Any], logical_id: str) -> dict[str, dict[str, Any]]:
    role = {"Resources": {logical_id: main["Resources"][logical_id]}}
    return {s["Sid"]: s for _, s in _statements(role) if "Sid" in s}


def _secret_name(main: dict[str, Any], logical_id: str) -> str:
    return main["Resources"][logical_id]["Properties"]["Name"]["Fn::Sub"].replace("${ProjectName}", "p")


def test_mwaa_reads_only_the_airflow_secrets(main: dict[str, Any]) -> None:
    from fnmatch import fnmatch

    mwaa = _sids(main, "MwaaExecutionRole")
    patterns = [r["Fn::Sub"].split(":secret:", 1)[1].replace("${ProjectName}", "p")
                for r in mwaa["AirflowSecrets"]["Resource"]]
    assert patterns == ["p/airflow/connections/*", "p/airflow/variables/*"]
    secretsmanager = [s for s in mwaa.values() if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))]
    assert len(secretsmanager) == 1
    readable = {lid for lid in _resources(main, "AWS::SecretsManager::Secret")
                if any(fnmatch(_secret_name(main, lid), p) for p in patterns)}
    assert readable == {"XApiConnectionSecret", "AirflowLakeVariable"}
    # The webhook URLs are the notifier's alone.
    notifier = _sids(main, "NotifierRole")["Webhooks"]
    assert notifier["Resource"] == {"Ref": "WebhooksSecret"}


def test_mwaa_emr_actions_are_scoped_to_the_project_tag(main: dict[str, Any]) -> None:
    from covid19_lake.config import DEFAULT_JOB_FLOW_OVERRIDES

    mwaa = _sids(main, "MwaaExecutionRole")
    emr = {sid: s for sid, s in mwaa.items()
           if any(a.startswith("elasticmapreduce:") for a in _as_list(s["Action"]))}
    assert set(emr) == {"EmrProjectClusters", "EmrCreateTagged", "EmrFind"}
    clusters = emr["EmrProjectClusters"]
    assert {"elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:CancelSteps",
            "elasticmapreduce:TerminateJobFlows"} <= set(clusters["Action"])
    assert clusters["Condition"] == {"StringEquals": {"aws:ResourceTag/project": {"Ref": "ProjectName"}}}
    assert emr["EmrCreateTagged"]["Action"] == "elasticmapreduce:RunJobFlow"
    assert emr["EmrCreateTagged"]["Condition"] == {"StringEquals": {"aws:RequestTag/project": {"Ref": "ProjectName"}}}
    assert emr["EmrFind"]["Action"] == "elasticmapreduce:ListClusters"  # no resource-level form, no tag key
    # The clusters the DAGs create carry that tag: the stack's Variable and the config's default overrides.
    overrides = _variable(main, "aws")["emr"]["job_flow_overrides"]
    assert {"Key": "project", "Value": PROJECT} in overrides["Tags"] and overrides["Name"].startswith(PROJECT)
    assert {"Key": "project", "Value": main["Parameters"]["ProjectName"]["Default"]} in \
        DEFAULT_JOB_FLOW_OVERRIDES["Tags"]


def test_emr_service_role_may_use_the_disk_key_for_ebs_volumes(main: dict[str, Any]) -> None:
    key = {"Fn::GetAtt": ["EmrLocalDiskKey", "Arn"]}
    service = _sids(main, "EmrServiceRole")
    use = service["UseKeyForEbsVolumes"]
    assert set(use["Action"]) == {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                  "kms:DescribeKey"}
    assert use["Resource"] == key
    grants = service["GrantsForAttachedVolumes"]
    assert "kms:CreateGrant" in grants["Action"] and grants["Resource"] == key
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert _sids(main, "EmrInstanceRole")["LocalDiskKey"]["Resource"] == key
    security = main["Resources"]["EmrSecurityConfiguration"]["Properties"]["SecurityConfiguration"]
    disks = security["EncryptionConfiguration"]["AtRestEncryptionConfiguration"]["LocalDiskEncryptionConfiguration"]
    assert disks["EnableEbsEncryption"] is True and disks["AwsKmsKey"] == key


def test_mwaa_writes_the_site_and_queries_in_the_project_workgroup(main: dict[str, Any]) -> None:
    from covid19_lake.config import AnalyticsSettings

    mwaa = _sids(main, "MwaaExecutionRole")
    assert mwaa["SiteExtracts"]["Resource"] == {"Fn::Sub": "${SiteBucket.Arn}/*"}
    assert {"s3:PutObject", "s3:DeleteObject"} <= set(mwaa["SiteExtracts"]["Action"])
    assert mwaa["SiteList"]["Resource"] == {"Fn::GetAtt": ["SiteBucket", "Arn"]}
    assert mwaa["Athena"]["Resource"]["Fn::Sub"].endswith(":workgroup/${AthenaWorkGroup}")
    assert main["Resources"]["AthenaWorkGroup"]["Properties"]["Name"] == {"Ref": "ProjectName"}
    # The analytics DAG's default workgroup is the one the stack creates (and the role allows).
    assert AnalyticsSettings.athena_workgroup == main["Parameters"]["ProjectName"]["Default"]
    assert _variable(main, "aws")["analytics"]["athena_workgroup"] == "x-AthenaWorkGroup"


def test_every_lambda_is_packaged_from_lambdas(main: dict[str, Any]) -> None:
    functions = _resources(main, "AWS::Lambda::Function")
    assert set(functions) == {"NotifierFunction", "QuickSightEmbedFunction"}
    for lid, function in functions.items():
        code = function["Properties"]["Code"]
        assert "ZipFile" not in code, f"{lid}: inline code is never the tested code"
        assert code["S3Bucket"] == {"Ref": "ArtifactsBucket"} and set(code["S3Key"]) == {"Ref"}, lid
        module = function["Properties"]["Handler"].rsplit(".", 1)[0]
        assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file(), lid


def test_embed_api_is_throttled_capped_and_optionally_authorized(main: dict[str, Any]) -> None:
    resources = main["Resources"]
    function = resources["QuickSightEmbedFunction"]["Properties"]
    assert function["Handler"] == "lambdas.quicksight_embed.app.lambda_handler"
    assert function["ReservedConcurrentExecutions"] == {"Ref": "QuickSightEmbedReservedConcurrency"}
    assert resources["QuickSightEmbedApi"]["Properties"]["ProtocolType"] == "HTTP"
    assert resources["QuickSightEmbedIntegration"]["Properties"]["PayloadFormatVersion"] == "2.0"
    stage = resources["QuickSightEmbedStage"]["Properties"]
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "QuickSightEmbedRateLimit"}
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "QuickSightEmbedBurstLimit"}
    route = resources["QuickSightEmbedRoute"]["Properties"]
    assert route["RouteKey"] == "GET /embed-url"
    assert route["AuthorizationType"] == {"Fn::If": ["EmbedJwtAuth", "JWT",
                                                     {"Fn::If": ["EmbedIamAuth", "AWS_IAM", "NONE"]}]}
    assert resources["QuickSightEmbedJwtAuthorizer"]["Condition"] == "EmbedJwtAuth"
    assert main["Parameters"]["QuickSightEmbedAuthorizer"]["AllowedValues"] == ["NONE", "AWS_IAM", "JWT"]
    permission = resources["QuickSightEmbedPermission"]["Properties"]["SourceArn"]["Fn::Sub"]
    assert permission.endswith("${QuickSightEmbedApi}/*/GET/embed-url")


def test_alarms_reach_the_topic_and_its_email(main: dict[str, Any]) -> None:
    resources = main["Resources"]
    topic = {"Ref": "AlarmTopic"}
    alarms = _resources(main, "AWS::CloudWatch::Alarm")
    watched = {(a["Properties"]["Namespace"], a["Properties"]["MetricName"]): a["Properties"] for a in alarms.values()}
    assert set(watched) == {("AWS/Lambda", "Errors"), ("AWS/Lambda", "IteratorAge"),
                            ("AWS/SQS", "ApproximateNumberOfMessagesVisible")}
    for props in watched.values():
        assert props["AlarmActions"] == [topic] and props["TreatMissingData"] == "notBreaching"
        assert props["AlarmName"]["Fn::Sub"].startswith("${ProjectName}-")
    assert watched[("AWS/Lambda", "Errors")]["Dimensions"] == [{"Name": "FunctionName",
                                                                "Value": {"Ref": "NotifierFunction"}}]
    assert watched[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["NotifierDeadLetterQueue", "QueueName"]}
    rules = _resources(main, "AWS::Events::Rule")
    assert {r["Properties"]["EventPattern"]["detail-type"][0] for r in rules.values()} == {
        "EMR Step Status Change", "EMR Cluster State Change"}
    assert all(r["Properties"]["Targets"][0]["Arn"] == topic for r in rules.values())
    published_by = resources["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert {s["Principal"]["Service"] for s in published_by} == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {"TopicArn": topic, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}


def test_log_prefixes_expire(main: dict[str, Any]) -> None:
    rules = main["Resources"]["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "Prefix" in r}
    assert set(expiring) == {"athena-results/", "emr-logs/", "raw/tweets-errors/"}
    assert all(0 < days <= 90 for days in expiring.values())
    assert _variable(main, "aws")["emr"]["job_flow_overrides"]["LogUri"] == "s3://x-LakeBucket/emr-logs/"


def _variable(main: dict[str, Any], target: str) -> dict[str, Any]:
    """The Variable the template writes for ``target`` (the local stack's parameters for local), with every
    resource's Ref as ``x-<LogicalId>``: resolved by the local stack's own resolver."""
    from local.cfn import Resolver, parameter_values

    given = {"DeploymentTarget": target, "ProjectName": PROJECT}
    given.update({"ArtifactsBucket": "artifacts"} if target == "aws" else
                 {"LakeUri": "file:///srv/lake", "SparkJobsUri": "/srv/repo/spark_jobs"})
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
              "AWS::StackName": PROJECT, "AWS::URLSuffix": "amazonaws.com"}
    resolver = Resolver(main, parameter_values(main, given), pseudo, lambda lid: f"x-{lid}",
                        lambda lid, attribute: f"x-{lid}.{attribute}")
    secret = main["Resources"]["AirflowLakeVariable"]["Properties"]["SecretString"]
    return json.loads(resolver.resolve(secret, "AirflowLakeVariable.SecretString"))


def test_the_stack_writes_the_one_variable_from_its_own_resources_on_aws(main: dict[str, Any]) -> None:
    """The Variable CloudFormation writes loads with the DAGs' own loader, and names the stack's resources."""
    from covid19_lake.config import Config

    config = Config.from_mapping(_variable(main, "aws"))
    assert (config.lake.uri, config.lake.spark_jobs_uri) == ("s3://x-LakeBucket", "s3://artifacts/spark_jobs")
    assert (config.lake.job_table, config.lake.glue_database) == ("x-JobTable", "covid19")
    assert (config.emr.cluster_mode, config.emr.spark_deploy_mode) == ("transient", "cluster")
    overrides = config.emr.job_flow_overrides
    assert overrides["JobFlowRole"] == "x-EmrInstanceProfile" and overrides["ServiceRole"] == "x-EmrServiceRole"
    assert overrides["SecurityConfiguration"] == "x-EmrSecurityConfiguration"
    assert overrides["Instances"]["Ec2SubnetId"] == "x-PrivateSubnet1"
    assert (config.tweets.sink, config.tweets.delivery_stream, config.tweets.x_conn_id) == (
        "firehose", "x-TweetsDeliveryStream", "x_api")
    assert (config.analytics.engine, config.analytics.site_bucket, config.analytics.athena_workgroup) == (
        "athena", "x-SiteBucket", "x-AthenaWorkGroup")
    # MWAA may use the site bucket and the workgroup the Variable names (and only those).
    mwaa = _sids(main, "MwaaExecutionRole")
    assert mwaa["SiteExtracts"]["Resource"] == {"Fn::Sub": "${SiteBucket.Arn}/*"}
    assert mwaa["Athena"]["Resource"]["Fn::Sub"].endswith(":workgroup/${AthenaWorkGroup}")


def test_the_local_target_writes_the_same_variable_for_the_local_stack(main: dict[str, Any]) -> None:
    from covid19_lake.config import Config

    resource = main["Resources"]["AirflowLakeVariable"]
    assert "Condition" not in resource  # both targets: the local stack reads this secret
    config = Config.from_mapping(_variable(main, "local"))
    assert (config.lake.uri, config.lake.spark_jobs_uri) == ("file:///srv/lake", "/srv/repo/spark_jobs")
    assert (config.emr.cluster_mode, config.emr.cluster_name, config.emr.spark_deploy_mode) == (
        "existing", PROJECT, "client")
    assert (config.analytics.engine, config.tweets.delivery_stream) == ("duckdb", "x-TweetsDeliveryStream")
    outputs = main["Outputs"]
    assert "Condition" not in outputs["AirflowLakeVariableSecretName"]
    assert outputs["AirflowLakeVariableSecretName"]["Value"] == resource["Properties"]["Name"]


def _variable_reads() -> list[tuple[str, str]]:
    """Every ``Variable.get(...)`` in plugins/ and dags/: (file, the source of its first argument)."""
    import ast

    found = []
    for path in sorted([*(REPO_ROOT / "plugins").rglob("*.py"), *(REPO_ROOT / "dags").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "Variable"):
                found.append((path.relative_to(REPO_ROOT).as_posix(), ast.unparse(node.args[0])))
    return found


def test_every_variable_and_connection_a_dag_reads_is_created_by_the_stack(main: dict[str, Any]) -> None:
    """The DAGs read one configuration Variable (and the tweets checkpoint, state their task writes itself);
    the template creates that Variable, and the connections the configuration names, where MWAA's
    Secrets Manager backend looks for them."""
    from covid19_lake import config
    from covid19_lake.config import TweetsSettings

    assert _variable_reads() == [("plugins/covid19_lake/config.py", "VARIABLE_KEY"),
                                 ("plugins/covid19_lake/tweets/checkpoint.py", "self.key")]
    checkpoint = (REPO_ROOT / "plugins/covid19_lake/tweets/checkpoint.py").read_text(encoding="utf-8")
    assert "Variable.set(self.key" in checkpoint  # written by tweets_ingest before it is ever read
    options = main["Resources"]["MwaaEnvironment"]["Properties"]["AirflowConfigurationOptions"]
    prefixes = json.loads(options["secrets.backend_kwargs"]["Fn::Sub"].replace("${ProjectName}", "p"))
    secrets = {_secret_name(main, lid) for lid in _resources(main, "AWS::SecretsManager::Secret")}
    assert f"{prefixes['variables_prefix']}/{config.VARIABLE_KEY}" in secrets
    # Connections: x_api from Secrets Manager; aws_default is MWAA's own (the execution role).
    assert f"{prefixes['connections_prefix']}/{TweetsSettings.x_conn_id}" in secrets
    variable = _variable(main, "aws")
    assert "x_conn_id" not in variable["tweets"] and "aws_conn_id" not in variable["lake"]


GLUE_SCHEMAS = {
    "JhuDailyReportsTable": ("jhu_daily_reports", [("report_date", "date")], [
        ("country_region", "string"), ("province_state", "string"), ("admin2", "string"), ("fips", "string"),
        ("iso3", "string"), ("combined_key", "string"), ("last_update", "timestamp"), ("latitude", "double"),
        ("longitude", "double"), ("confirmed", "bigint"), ("deaths", "bigint"), ("recovered", "bigint"),
        ("active", "bigint"), ("incident_rate", "double"), ("case_fatality_ratio", "double"),
        ("source_file", "string")]),
    "JhuFieldIssuesTable": ("jhu_field_issues", [("report_date", "date")], [
        ("source_file", "string"), ("line", "bigint"), ("field", "string"), ("original_value", "string"),
        ("reason", "string")]),
    "TweetsTable": ("tweets", [("created_date", "date")], [
        ("tweet_id", "string"), ("created_at", "timestamp"), ("lang", "string"), ("author_id", "string"),
        ("author_username", "string"), ("text", "string"), ("hashtags", "array<string>"),
        ("mentions", "array<string>"), ("country_code", "string"), ("retweet_count", "bigint"),
        ("reply_count", "bigint"), ("like_count", "bigint"), ("quote_count", "bigint"), ("sentiment", "double"),
        ("sentiment_label", "string")]),
    "TweetDailyStatsTable": ("tweet_daily_stats", [("date", "date")], [
        ("country_code", "string"), ("tweet_count", "bigint"), ("top_hashtags", "array<string>"),
        ("top_words", "array<string>"), ("mean_sentiment", "double")]),
}


@pytest.mark.parametrize("logical_id", sorted(GLUE_SCHEMAS))
def test_glue_table_schemas(main: dict[str, Any], logical_id: str) -> None:
    name, partitions, columns = GLUE_SCHEMAS[logical_id]
    table = main["Resources"][logical_id]["Properties"]["TableInput"]
    assert table["Name"] == name and table["TableType"] == "EXTERNAL_TABLE"
    assert [(c["Name"], c["Type"]) for c in table["PartitionKeys"]] == partitions
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == columns
    assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    area = "quarantine" if name == "jhu_field_issues" else "processed"
    assert descriptor["Location"]["Fn::Sub"][0] == f"${{Lake}}/{area}/{name}/"


def test_firehose_writes_raw_tweets_as_json_lines(main: dict[str, Any]) -> None:
    props = main["Resources"]["TweetsDeliveryStream"]["Properties"]
    assert props["DeliveryStreamType"] == "DirectPut"
    s3 = props["ExtendedS3DestinationConfiguration"]
    assert s3["BucketARN"] == {"Fn::GetAtt": ["LakeBucket", "Arn"]}
    assert (s3["Prefix"], s3["CompressionFormat"]) == ("raw/tweets/", "UNCOMPRESSED")
    assert s3["BufferingHints"] == {"IntervalInSeconds": 60, "SizeInMBs": 5}
    assert s3["ErrorOutputPrefix"] and not s3["ErrorOutputPrefix"].startswith("raw/tweets/")


@pytest.fixture(scope="module")
def local_stack() -> Iterator[dict[str, Any]]:
    """The template deployed into moto with DeploymentTarget=local, the way the local stack does it:
    moto's CloudFormation for the types it models, API calls built from the same Properties for the
    rest (Glue, Firehose, Athena, Secrets Manager)."""
    from local.cfn import load_template
    from local.deploy import deploy

    with mock_aws():
        deployment = deploy(
            load_template(MAIN), {"DeploymentTarget": "local", "LakeUri": "file:///tmp/covid19-lake/lake"},
            lambda service: boto3.client(service, region_name=REGION),
            stack_name="covid19-lake", account_id="123456789012", region=REGION,
        )
        cfn = boto3.client("cloudformation", region_name=REGION)
        stack = cfn.describe_stacks(StackName=deployment.stack_id)["Stacks"][0]
        yield {"stack": stack, "outputs": deployment.outputs, "created_by": deployment.created_by}


def test_local_deploy_creates_every_data_resource(local_stack: dict[str, Any], main: dict[str, Any]) -> None:
    created_by = local_stack["created_by"]
    for lid, resource in main["Resources"].items():
        if resource.get("Condition") is None:
            assert created_by[lid] in ("cloudformation", "api"), f"{lid}: {created_by[lid]}"
        else:
            assert created_by[lid] == "condition-false", lid
    glue = boto3.client("glue", region_name=REGION)
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="covid19")["TableList"]}
    assert sorted(tables) == ["jhu_daily_reports", "jhu_field_issues", "tweet_daily_stats", "tweets"]
    assert (tables["jhu_field_issues"]["StorageDescriptor"]["Location"]
            == "file:///tmp/covid19-lake/lake/quarantine/jhu_field_issues/")
    assert tables["tweets"]["StorageDescriptor"]["Location"] == "file:///tmp/covid19-lake/lake/processed/tweets/"
    secrets = boto3.client("secretsmanager", region_name=REGION)
    webhooks_secret = secrets.get_secret_value(SecretId=local_stack["outputs"]["WebhooksSecretName"])
    webhooks = json.loads(webhooks_secret["SecretString"])
    assert webhooks == {"chime": "", "slack": "", "teams": ""}
    firehose = boto3.client("firehose", region_name=REGION)
    description = firehose.describe_delivery_stream(
        DeliveryStreamName=local_stack["outputs"]["TweetsDeliveryStreamName"])["DeliveryStreamDescription"]
    destination = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert destination["BucketARN"] == f"arn:aws:s3:::{local_stack['outputs']['LakeBucketName']}"
    assert destination["Prefix"] == "raw/tweets/"


def test_local_deploy_outputs(local_stack: dict[str, Any]) -> None:
    assert local_stack["stack"]["StackStatus"] == "CREATE_COMPLETE"
    outputs = local_stack["outputs"]
    assert set(outputs) >= {"LakeBucketName", "LakeUri", "JobTableName", "JobTableStreamArn", "IdempotencyTableName",
                            "GlueDatabaseName", "WebhooksSecretName", "XBearerTokenSecretName",
                            "TweetsDeliveryStreamName", "AthenaWorkGroupName"}
    assert not {"MwaaWebserverUrl", "EmrServiceRoleName", "SiteUrl"} & set(outputs)
    assert outputs["LakeUri"] == "file:///tmp/covid19-lake/lake"
    assert outputs["JobTableName"] == "covid19-lake-jobs"
    assert outputs["WebhooksSecretName"] == "covid19-lake/notifier/webhooks"


def test_local_deploy_job_table(local_stack: dict[str, Any]) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    table = ddb.describe_table(TableName=local_stack["outputs"]["JobTableName"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "job_date", "KeyType": "HASH"},
                                  {"AttributeName": "job_name", "KeyType": "RANGE"}]
    assert {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]} == {
        "job_date": "S", "job_name": "S"}
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["LatestStreamArn"] == local_stack["outputs"]["JobTableStreamArn"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=local_stack["outputs"]["IdempotencyTableName"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expiration"


def test_local_deploy_lake_bucket(local_stack: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    bucket = local_stack["outputs"]["LakeBucketName"]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # moto's CloudFormation does not apply PublicAccessBlockConfiguration or versioning: those are
    # checked on the template itself (test_every_bucket_is_encrypted_and_private).


def test_local_deploy_roles_and_queue(local_stack: dict[str, Any]) -> None:
    iam = boto3.client("iam", region_name=REGION)
    names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert "covid19-lake-firehose-tweets" in names
    # AWS-only roles are not created locally.
    assert not {"covid19-lake-mwaa-execution", "covid19-lake-emr-service-role"} & names
    trust = iam.get_role(RoleName="covid19-lake-firehose-tweets")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "firehose.amazonaws.com"}
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName="covid19-lake-notifier-dlq")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert attributes["MessageRetentionPeriod"] == "1209600"
