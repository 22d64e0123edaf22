"""The local stack's pure pieces, without starting a stack."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from local.cfn import Resolver, TemplateError, load_template, references
from local.emr_runner import StepRejected, build_spark_submit, summarize_failure
from local.stream_bridge import first_failed_index, to_lambda_record
from local.webhook_sink import WebhookSink, read_sink_log


def test_spark_submit_drops_yarn_and_cluster_mode_and_makes_paths_local(tmp_path):
    (tmp_path / "job.py").write_text("print(1)")
    command = build_spark_submit(
        ["spark-submit", "--deploy-mode", "cluster", "--master=yarn", "--py-files", "spark_common.py",
         "--conf", "spark.ui.enabled=true", "job.py", "--lake", "file:///lake"],
        spark_jobs_dir=tmp_path, master="local[2]", spark_submit=Path("/bin/spark-submit"),
    )
    assert command[:3] == ["/bin/spark-submit", "--master", "local[2]"]
    assert "cluster" not in command and "yarn" not in command and "--master=yarn" not in command
    assert command[command.index("--py-files") + 1] == str(tmp_path / "spark_common.py")
    assert "spark.ui.enabled=false" not in command  # the step's own setting wins
    assert command[command.index("spark.driver.memory=2g") - 1] == "--conf"
    # Nothing else: Hadoop's stock local file system and the JVM's own options, as on EMR.
    assert [c for c in command if c.startswith("spark.")] == [
        "spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1", "spark.driver.memory=2g",
        "spark.ui.enabled=true"]
    assert command[-3:] == [str(tmp_path / "job.py"), "--lake", "file:///lake"]


def test_a_step_of_the_spark_jobs_folder_runs_the_staged_upload_with_lib_zip_and_nothing_else(tmp_path):
    from infra.package import stage_spark_jobs

    repo_jobs = Path(__file__).resolve().parent.parent / "spark_jobs"
    staged = []

    def stage() -> Path:
        staged.append(stage_spark_jobs(repo_jobs, tmp_path / "staged"))
        return staged[-1]

    (tmp_path / "other.py").write_text("print(1)")
    command = build_spark_submit(
        ["spark-submit", "--py-files", f"{repo_jobs}/lib.zip", f"{repo_jobs}/jhu_daily_reports.py", "--lake", "x"],
        spark_jobs_dir=repo_jobs, master="local[1]", spark_submit=Path("spark-submit"), stage=stage)
    assert len(staged) == 1  # one copy per step
    assert command[command.index("--py-files") + 1] == str(tmp_path / "staged" / "lib.zip")
    assert command[-3:] == [str(tmp_path / "staged" / "jhu_daily_reports.py"), "--lake", "x"]
    # a script outside the folder runs where it is; a module that ships only inside lib.zip is no script
    outside = build_spark_submit(["spark-submit", str(tmp_path / "other.py")], spark_jobs_dir=repo_jobs,
                                 master="local[1]", spark_submit=Path("spark-submit"), stage=stage)
    assert outside[-1] == str(tmp_path / "other.py") and len(staged) == 1
    with pytest.raises(StepRejected, match="does not exist"):
        build_spark_submit(["spark-submit", f"{repo_jobs}/jhu/transform.py"], spark_jobs_dir=repo_jobs,
                           master="local[1]", spark_submit=Path("spark-submit"), stage=stage)


@pytest.mark.parametrize("args, expected", [
    (["spark-submit", "s3://bucket/jobs/job.py"], "S3 URI"),
    (["spark-submit", "--py-files", "s3://b/common.py", "job.py"], "S3 URI"),
    (["spark-submit", "missing.py"], "does not exist"),
    (["bash", "-c", "echo"], "start with 'spark-submit'"),
    (["spark-submit", "--conf"], "has no value"),
])
def test_unrunnable_steps_are_rejected_with_a_clear_message(tmp_path, args, expected):
    (tmp_path / "job.py").write_text("print(1)")
    with pytest.raises(StepRejected, match=expected):
        build_spark_submit(args, spark_jobs_dir=tmp_path, master="local[1]", spark_submit=Path("spark-submit"))


def test_failure_summary_prefers_the_python_traceback_over_spark_log_lines():
    stdout = "row 1\nTraceback (most recent call last):\n  File \"job.py\", line 3\nKeyError: 'Confirmed'\n"
    stderr = "26/11/28 06:55:46 INFO ShutdownHookManager: Shutdown hook called\n"
    reason, message, source = summarize_failure(stdout, stderr)
    assert (reason, source) == ("KeyError: 'Confirmed'", "stdout")
    assert message.startswith("Traceback") and "Shutdown hook" not in message
    jvm = "26/11/28 06:55:46 INFO x\nException in thread \"main\" java.io.FileNotFoundException: /lake\n"
    assert summarize_failure("", jvm)[0].endswith("FileNotFoundException: /lake")
    assert summarize_failure("", "")[0] == "Unknown Error."


def _records(*sequence_numbers: str) -> list[dict]:
    return [{"dynamodb": {"SequenceNumber": s}} for s in sequence_numbers]


@pytest.mark.parametrize("result, expected", [
    (None, None),
    ({"batchItemFailures": []}, None),
    ({"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}, 1),
    ({"batchItemFailures": [{"itemIdentifier": "99"}]}, 0),  # unknown identifier: whole batch
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, 0),
    ("not a dict", 0),
])
def test_batch_item_failures_retry_from_the_lowest_failed_record(result, expected):
    assert first_failed_index(result, _records("10", "11", "12"))[0] == expected


def test_lambda_record_has_epoch_seconds_base64_binary_and_the_stream_arn():
    record = {
        "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": datetime(2024, 1, 2, tzinfo=UTC), "SequenceNumber": "1",
                     "Keys": {"id": {"B": b"\x00\x01"}}, "NewImage": {"id": {"B": b"\x00\x01"}},
                     "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    converted = to_lambda_record(record, "arn:stream")
    assert converted["eventSourceARN"] == "arn:stream"
    assert converted["dynamodb"]["ApproximateCreationDateTime"] == 1704153600
    assert converted["dynamodb"]["Keys"] == {"id": {"B": "AAE="}}


def test_resolver_handles_sub_if_getatt_and_novalue(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "Parameters: {Env: {Type: String, Default: local}, Lake: {Type: String, Default: ''}}\n"
        "Conditions:\n  IsAws: !Equals [!Ref Env, aws]\n  HasLake: !Not [!Equals [!Ref Lake, '']]\n"
        "Resources:\n  B: {Type: AWS::S3::Bucket}\n"
        "  T:\n    Type: X\n    Properties:\n"
        "      Location: !Sub ['${L}/raw/', {L: !If [HasLake, !Ref Lake, !Sub 's3://${B}']}]\n"
        "      Arn: !GetAtt B.Arn\n      Gone: !If [IsAws, x, !Ref AWS::NoValue]\n"
        "      Name: !Sub '${AWS::Region}-${B.Arn}-${!Literal}'\n"
    )
    template = load_template(path)
    resolver = Resolver(template, {"Env": "local", "Lake": ""}, {"AWS::Region": "us-east-1"},
                        ref=lambda name: "bucket", get_att=lambda name, attr: f"arn:{name}.{attr}")
    props = resolver.resolve(template["Resources"]["T"]["Properties"])
    assert props == {"Location": "s3://bucket/raw/", "Arn": "arn:B.Arn", "Name": "us-east-1-arn:B.Arn-${Literal}"}
    assert references(template["Resources"]["T"]["Properties"]) == {"B", "Lake"}
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        resolver.resolve({"Fn::ImportValue": "x"})


def test_sink_records_posts_and_can_answer_an_error_status(tmp_path):
    with WebhookSink(tmp_path / "hooks.jsonl") as sink:
        request = urllib.request.Request(f"{sink.url}/status/503/slack", data=b'{"a": 1}', method="POST",
                                         headers={"Authorization": "secret", "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=5)
        assert error.value.code == 503
        urllib.request.urlopen(urllib.request.Request(f"{sink.url}/teams", data=b"not json", method="POST"),
                               timeout=5)
    first, second = read_sink_log(tmp_path / "hooks.jsonl")
    assert first["path"] == "/status/503/slack" and first["body"] == {"a": 1}
    assert "Authorization" not in first["headers"] and "secret" not in json.dumps(first)
    assert second["body"] is None and second["body_text"] == "not json"
