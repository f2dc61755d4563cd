"""Submit: every events/submit_job file through the handler (as `sam local invoke -e` passes it),
the CLI twin `batchops submit`, and the http target signed against the API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from batchops.api.auth import SignatureVerifier
from batchops.api.create_job import parse_create_job
from batchops.api.routes import ApiRequest, ApiResponse, JobsApi
from batchops.cos_signature import expected_signature, parse_authorization
from batchops.jobs.service import JobService
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.sqlite import SQLiteJobStore
from batchops.submit.rules import parse_rule
from batchops.submit.service import Submitter
from batchops.submit.targets import Credentials, HttpTarget
from batchops.submit.token import client_request_token
from batchops.submit.triggers import LandedObject, parse_event
from tests.conftest import EVENTS, create_jobs_table, run_server
from tests.helpers import restore_environment, set_environment
from tests.integration.deployed_harness import Context, load
from tests.integration.jobs_harness import land_inventory

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

S3_BUCKET = "example-inventory-bucket"
S3_PREFIX = "inventory/example-source-bucket/daily-copy/2026-11-24T01-00Z/"
COS_BUCKET = "example-inventory-1250000000"
COS_PREFIX = "cos_bucket_inventory/1250000000/examplebucket/inventory01/20261124/"
RULES = json.loads(json.loads((EVENTS / "env.json").read_text())["SubmitJobFunction"]["BATCHOPS_RULES"])


@dataclass
class Deployment:
    handler: ModuleType
    service: JobService


@pytest.fixture
def submit_function(moto_endpoint: str) -> Iterator[Deployment]:
    # GIVEN the table and queue of the stack, and the function imported with events/env.json's rules
    suffix = uuid.uuid4().hex[:8]
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    table = create_jobs_table(dynamodb, f"jobs-{suffix}")
    queue = boto3.client("sqs", endpoint_url=moto_endpoint).create_queue(QueueName=f"work-{suffix}")[
        "QueueUrl"
    ]
    env = json.loads((EVENTS / "env.json").read_text())["SubmitJobFunction"]
    env.update(JOBS_TABLE=table, WORK_QUEUE_URL=queue, AWS_ENDPOINT_URL=moto_endpoint)
    saved = set_environment(env)
    try:
        yield Deployment(
            load(f"submit_job_{suffix}", "functions/submit_job/app.py"),
            JobService(DynamoDBJobStore(table, dynamodb), max_active_jobs=100),
        )
    finally:
        restore_environment(saved)


def invoke(deployment: Deployment, name: str) -> dict[str, Any]:
    event = json.loads((EVENTS / "submit_job" / name).read_text())
    result: dict[str, Any] = deployment.handler.lambda_handler(
        event, Context(function_name="SubmitJobFunction")
    )
    return result


def expected_spec(rule: dict[str, Any], bucket: str, key: str, etag: str) -> Any:
    parsed = parse_rule(rule, 0, "1250000000")
    token = client_request_token(bucket, key, etag, parsed.name)
    return parse_create_job(
        f"""<CreateJobRequest><ClientRequestToken>{token}</ClientRequestToken>
        <ConfirmationRequired>false</ConfirmationRequired>
        <Description>{parsed.describe(bucket, key, etag, __import__("datetime").datetime.now())}</Description>
        <Manifest><Location><ETag>{etag}</ETag><ObjectArn>arn:aws:s3:::{bucket}/{key}</ObjectArn></Location>
        <Spec><Format>COSInventoryReport_CSV_V1</Format></Spec></Manifest>
        <Operation>{parsed.operation_xml}</Operation><Priority>{parsed.priority}</Priority>
        <Report>{"".join(f"<{k}>{v}</{k}>" for k, v in parsed.report.items() if v is not None)}</Report>
        <RoleArn>{parsed.role_arn}</RoleArn></CreateJobRequest>""".encode()
    )


@pytest.mark.parametrize("name", ["s3_manifest_checksum.json", "eventbridge_object_created.json"])
def test_a_landed_inventory_makes_one_job_per_rule_once(
    submit_function: Deployment, s3: S3Client, name: str
) -> None:
    # GIVEN a complete S3 inventory where the event says it landed
    etag = land_inventory(s3, S3_BUCKET, S3_PREFIX)
    # WHEN the event is handled
    first = invoke(submit_function, name)
    # THEN the matching rule made one job, with the CreateJob request the rule describes
    (submitted,) = first["submitted"]
    assert (submitted["rule"], submitted["duplicate"]) == ("copy-to-backup", False)
    job = submit_function.service.describe("1250000000", submitted["jobId"])
    assert job.spec == expected_spec(RULES[0], S3_BUCKET, f"{S3_PREFIX}manifest.json", etag)
    assert job.spec.description == "copy-to-backup: inventory of 2026-11-24"
    # AND handling it again makes none
    again = invoke(submit_function, name)
    assert again["submitted"] == [{**submitted, "duplicate": True}]
    assert len(submit_function.service.list("1250000000", None, 100, None)[0]) == 1


def test_the_cos_trigger(submit_function: Deployment, s3: S3Client) -> None:
    etag = land_inventory(s3, COS_BUCKET, COS_PREFIX, cos=True)
    (submitted,) = invoke(submit_function, "cos_trigger.json")["submitted"]
    job = submit_function.service.describe("1250000000", submitted["jobId"])
    assert job.spec == expected_spec(RULES[1], COS_BUCKET, f"{COS_PREFIX}manifest.json", etag)
    assert invoke(submit_function, "cos_trigger.json")["submitted"][0]["duplicate"] is True


def test_test_events_and_unmatched_keys_are_skipped(submit_function: Deployment, s3: S3Client) -> None:
    assert invoke(submit_function, "s3_test_event.json") == {"submitted": [], "skipped": [": s3:TestEvent"]}
    event = json.loads((EVENTS / "submit_job" / "s3_manifest_checksum.json").read_text())
    event["Records"][0]["s3"]["object"]["key"] = "elsewhere/manifest.checksum"
    result = submit_function.handler.lambda_handler(event, Context())
    assert result == {"submitted": [], "skipped": ["elsewhere/manifest.checksum: no rule matches this key"]}


def test_an_inventory_whose_checksum_disagrees_is_not_submitted(
    submit_function: Deployment, s3: S3Client
) -> None:
    land_inventory(s3, S3_BUCKET, S3_PREFIX)
    s3.put_object(Bucket=S3_BUCKET, Key=f"{S3_PREFIX}manifest.checksum", Body=b"0" * 32)
    result = invoke(submit_function, "s3_manifest_checksum.json")
    assert result["submitted"] == []
    assert "does not match manifest.checksum" in result["skipped"][0]


@pytest.mark.parametrize("name", ["scheduled.json", "scf_timer.json"])
def test_a_schedule_sweeps_for_the_newest_inventory(
    submit_function: Deployment, s3: S3Client, name: str
) -> None:
    # GIVEN two inventories landed (their notifications lost)
    land_inventory(s3, S3_BUCKET, "inventory/example-source-bucket/daily-copy/2026-11-23T01-00Z/")
    newest = land_inventory(s3, S3_BUCKET, S3_PREFIX)
    # WHEN the schedule fires THEN the newest one is submitted, once
    first = invoke(submit_function, name)["submitted"]
    job = submit_function.service.describe("1250000000", first[0]["jobId"])
    assert job.spec.manifest.location.etag == newest
    assert invoke(submit_function, name)["submitted"][0]["duplicate"] is True


def test_the_http_target_is_signed_and_round_trips(s3: S3Client, tmp_path: Path) -> None:
    # GIVEN the jobs API server, recording what it receives
    etag = land_inventory(s3, S3_BUCKET, S3_PREFIX)
    received: list[ApiRequest] = []

    class Recording(JobsApi):
        def handle(self, request: ApiRequest) -> ApiResponse:
            received.append(request)
            return super().handle(request)

    store = SQLiteJobStore(tmp_path / "jobs.db")
    service = JobService(store, max_active_jobs=10)
    from batchops.cli.server import make_server, serve_in_thread

    verifier = SignatureVerifier({"AKIDbatchops": "secret-key-for-tests"})
    server = make_server(Recording(service, verifier=verifier), "127.0.0.1", 0)
    thread = serve_in_thread(server)
    try:
        rules = [parse_rule(RULES[0], 0, "1250000000")]
        target = HttpTarget(server.url, Credentials("AKIDbatchops", "secret-key-for-tests"))
        submitter = Submitter(rules, s3, target)
        event = json.loads((EVENTS / "submit_job" / "s3_manifest_checksum.json").read_text())
        # WHEN the event is submitted over HTTP, twice
        (first,) = submitter.handle(parse_event(event))
        (second,) = submitter.handle(parse_event(event))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    # THEN one job exists, the second answer named it, and the request carried a valid signature
    assert (first.duplicate, second.duplicate, first.job_id == second.job_id) == (False, True, True)  # type: ignore[union-attr]
    assert service.describe("1250000000", first.job_id).spec.manifest.location.etag == etag  # type: ignore[union-attr]
    request = received[0]
    auth = parse_authorization(request.headers["authorization"])
    assert {"host", "x-cos-appid", "content-md5"} <= set(auth.header_list)
    signature = expected_signature(
        method="POST",
        path=request.path,
        params={k: v[0] for k, v in request.query.items()},
        headers=request.headers,
        secret_key="secret-key-for-tests",
        key_time=auth.key_time,
        header_list=auth.header_list,
        url_param_list=auth.url_param_list,
    )
    assert signature == auth.signature
    store.close()


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("s3_manifest_checksum.json", "copy-to-backup"),
        ("eventbridge_object_created.json", "copy-to-backup"),
        ("cos_trigger.json", "cos-restore"),
        ("scheduled.json", "copy-to-backup"),
    ],
)
def test_batchops_submit_is_the_cli_twin(
    s3: S3Client, moto_endpoint: str, tmp_path: Path, name: str, rule: str
) -> None:
    # GIVEN `batchops serve`'s API on a free port, the rules in the environment, inventories landed
    etag = land_inventory(s3, S3_BUCKET, S3_PREFIX)
    cos_etag = land_inventory(s3, COS_BUCKET, COS_PREFIX, cos=True)
    store = SQLiteJobStore(tmp_path / "jobs.db")
    service = JobService(store, max_active_jobs=10)
    for running in run_server(service):
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "BATCHOPS_RULES": json.dumps(RULES),
            "BATCHOPS_S3_ADDRESSING_STYLE": "path",
        }
        command = [
            str(Path(sys.executable).parent / "batchops"),
            "submit",
            "--event",
            str(EVENTS / "submit_job" / name),
            "--endpoint",
            running.url,
        ]
        # WHEN it submits the event twice
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        # THEN one job, and the second run says it was already submitted
        assert first.returncode == 0, first.stderr
        (line,) = [line for line in first.stdout.splitlines() if f"rule {rule}" in line]
        job_id = line.split()[0]
        assert "  submitted  " in line
        assert f"{job_id}  already submitted  rule {rule}" in second.stdout
        expected = cos_etag if rule == "cos-restore" else etag
        assert service.describe("1250000000", job_id).spec.manifest.location.etag == expected
    store.close()


def test_a_filtered_rule_submits_a_job_on_the_filtered_manifest(s3: S3Client, tmp_path: Path) -> None:
    # GIVEN an inventory of 5 objects (sizes 0-4) and a rule keeping objects larger than 2 bytes
    from batchops.manifest.csv_manifest import iter_csv_tasks
    from batchops.submit.targets import DirectTarget

    land_inventory(s3, S3_BUCKET, S3_PREFIX)
    filtered_bucket = f"filtered-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=filtered_bucket)
    rule = parse_rule(
        {**RULES[0], "filters": {"sizeGreaterThan": 2}, "filteredManifest": {"bucket": filtered_bucket}},
        0,
        "1250000000",
    )
    store = SQLiteJobStore(tmp_path / "jobs.db")
    service = JobService(store, max_active_jobs=10)
    event = json.loads((EVENTS / "submit_job" / "s3_manifest_checksum.json").read_text())
    # WHEN the inventory lands
    (submitted,) = Submitter([rule], s3, DirectTarget(service)).handle(parse_event(event))
    # THEN the job runs on a CSV manifest of exactly the kept objects
    job = service.describe("1250000000", submitted.job_id)  # type: ignore[union-attr]
    assert job.spec.manifest.spec.format.value == "COSBatchOperations_CSV_V1"
    location = job.spec.manifest.location
    bucket, _, key = location.object_arn.removeprefix("arn:aws:s3:::").partition("/")
    assert bucket == filtered_bucket
    body = s3.get_object(Bucket=bucket, Key=key, IfMatch=location.etag)["Body"]
    tasks = list(iter_csv_tasks(body, [f.value for f in job.spec.manifest.spec.fields]))
    assert [t.key for t in tasks] == ["obj/3", "obj/4"]
    store.close()


def sqlite_submitter(
    tmp_path: Path, s3: S3Client, rules: list[Any], **kwargs: Any
) -> tuple[Submitter, JobService]:
    from batchops.submit.targets import DirectTarget

    service = JobService(SQLiteJobStore(tmp_path / f"{uuid.uuid4().hex}.db"), max_active_jobs=100)
    return Submitter(rules, s3, DirectTarget(service), **kwargs), service


def test_the_sweep_covers_each_configuration_and_leaves_old_inventories_alone(
    s3: S3Client, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from batchops.submit.triggers import Sweep

    # GIVEN two inventory configurations under one rule, and a rule whose bucket is gone
    bucket = f"inv-{uuid.uuid4().hex[:8]}"
    land_inventory(s3, bucket, "inv/src/config-a/2026-11-24T01-00Z/")
    land_inventory(s3, bucket, "inv/src/config-b/2026-11-24T01-00Z/")
    rule = parse_rule({**RULES[0], "match": {"bucket": bucket, "prefix": "inv/"}}, 0, "1")
    gone = parse_rule(
        {**RULES[0], "name": "gone", "match": {"bucket": "no-such-bucket-here", "prefix": "x/"}}, 1, "1"
    )
    submitter, _ = sqlite_submitter(tmp_path, s3, [gone, rule])
    # WHEN the schedule fires THEN each configuration is submitted, and the missing bucket is reported
    outcomes = submitter.handle(Sweep())
    assert sorted(o.manifest for o in outcomes if hasattr(o, "manifest")) == [
        f"{bucket}/inv/src/config-a/2026-11-24T01-00Z/manifest.json",
        f"{bucket}/inv/src/config-b/2026-11-24T01-00Z/manifest.json",
    ]
    assert any("sweep failed" in getattr(o, "reason", "") for o in outcomes)
    # AND three days later those inventories are too old to sweep again
    later, _ = sqlite_submitter(tmp_path, s3, [rule], clock=lambda: datetime.now(UTC) + timedelta(days=3))
    assert later.handle(Sweep()) == []


def test_a_multipart_manifest_json_is_checked_by_its_content(s3: S3Client, tmp_path: Path) -> None:
    # GIVEN a manifest.json uploaded in parts (its ETag is not its MD5)
    bucket = f"inv-{uuid.uuid4().hex[:8]}"
    prefix = "inv/src/cfg/2026-11-24T01-00Z/"
    land_inventory(s3, bucket, prefix)
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}manifest.json")["Body"].read()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=f"{prefix}manifest.json")
    part = s3.upload_part(
        Bucket=bucket, Key=f"{prefix}manifest.json", UploadId=upload["UploadId"], PartNumber=1, Body=body
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=f"{prefix}manifest.json",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    assert "-" in s3.head_object(Bucket=bucket, Key=f"{prefix}manifest.json")["ETag"]
    rule = parse_rule({**RULES[0], "match": {"bucket": bucket, "prefix": "inv/"}}, 0, "1")
    submitter, _ = sqlite_submitter(tmp_path, s3, [rule])
    # WHEN its checksum lands THEN it counts as complete
    (outcome,) = submitter.submit(LandedObject(bucket, f"{prefix}manifest.checksum"))
    assert hasattr(outcome, "job_id"), outcome


def test_a_filtered_manifest_is_written_once(s3: S3Client, tmp_path: Path) -> None:
    from tests.faults import count_only, inject

    bucket = f"inv-{uuid.uuid4().hex[:8]}"
    land_inventory(s3, bucket, "inv/src/cfg/2026-11-24T01-00Z/")
    rule = parse_rule(
        {
            **RULES[0],
            "match": {"bucket": bucket, "prefix": "inv/"},
            "filters": {"modifiedAfter": "30d"},
            "filteredManifest": {"bucket": bucket, "prefix": "filtered/"},
        },
        0,
        "1",
    )
    submitter, _ = sqlite_submitter(tmp_path, s3, [rule])
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": "inv/src/cfg/2026-11-24T01-00Z/manifest.checksum"},
                },
            }
        ]
    }
    (first,) = submitter.handle(parse_event(event))
    writes = inject(s3, "PutObject", count_only())
    (second,) = submitter.handle(parse_event(event))
    assert (second.job_id, second.duplicate) == (first.job_id, True)  # type: ignore[union-attr]
    assert writes.seen == []  # the job's pinned manifest was not rewritten


def test_a_cos_style_duplicate_answer_is_success(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Cos(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"<Error><Code>InvalidRequest</Code><Message>Duplicate request</Message><RequestId>x</RequestId></Error>"
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Cos)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        submitted = HttpTarget(f"http://127.0.0.1:{server.server_address[1]}").submit(
            "1", b"<CreateJobRequest/>"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (submitted.job_id, submitted.duplicate) == ("", True)


def test_the_copy_rule_makes_exactly_this_request(s3: S3Client) -> None:
    from datetime import UTC, datetime

    rule = parse_rule(RULES[0], 0, "1250000000")
    xml = rule.request_xml(
        token="tok",
        bucket="inv",
        key="p/2026-11-24T01-00Z/manifest.json",
        etag='"e"',
        version_id=None,
        when=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert parse_create_job(xml) == parse_create_job(
        b"""<CreateJobRequest><ClientRequestToken>tok</ClientRequestToken>
        <ConfirmationRequired>false</ConfirmationRequired><Description>copy-to-backup: inventory of 2026-11-24</Description>
        <Manifest><Location><ETag>"e"</ETag><ObjectArn>arn:aws:s3:::inv/p/2026-11-24T01-00Z/manifest.json</ObjectArn></Location>
        <Spec><Format>COSInventoryReport_CSV_V1</Format></Spec></Manifest>
        <Operation><COSPutObjectCopy><TargetResource>arn:aws:s3:::example-backup-bucket</TargetResource>
        <StorageClass>STANDARD_IA</StorageClass></COSPutObjectCopy></Operation><Priority>20</Priority>
        <Report><Bucket>arn:aws:s3:::example-report-bucket</Bucket><Enabled>true</Enabled><Format>Report_CSV_V1</Format>
        <Prefix>batchops</Prefix><ReportScope>FailedTasksOnly</ReportScope></Report>
        <RoleArn>arn:aws:iam::123456789012:role/batchops-jobs</RoleArn></CreateJobRequest>"""
    )


def test_two_rules_on_one_manifest_make_two_jobs_with_their_own_tokens(s3: S3Client, tmp_path: Path) -> None:
    bucket = f"inv-{uuid.uuid4().hex[:8]}"
    land_inventory(s3, bucket, "inv/src/cfg/2026-11-24T01-00Z/")
    copy = parse_rule({**RULES[0], "match": {"bucket": bucket}}, 0, "1")
    restore = parse_rule({**RULES[1], "appid": "1", "match": {"bucket": bucket}}, 1, "1")
    submitter, service = sqlite_submitter(tmp_path, s3, [copy, restore])
    landed = LandedObject(bucket, "inv/src/cfg/2026-11-24T01-00Z/manifest.checksum")
    first = submitter.submit(landed)
    assert [o.rule for o in first] == ["copy-to-backup", "cos-restore"]  # type: ignore[union-attr]
    assert len({o.token for o in first}) == 2  # type: ignore[union-attr]
    assert all(o.duplicate for o in submitter.submit(landed))  # type: ignore[union-attr]
    assert len(service.list("1", None, 10, None)[0]) == 2
