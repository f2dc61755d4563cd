"""The fault suite: each scenario of reliability-security.md §4.3 runs a real job under its fault,
then the four invariants (tests/integration/invariants.py) are asserted on what a user sees: the
job as DescribeJob shows it, the report it wrote, the objects in S3.

Faults come from botocore's before-send hook (the real retry and parsing code runs), moto in
server mode, a SQLite file locked by another connection, DynamoDB answering 500, a Lambda context
whose deadline comes mid-chunk, and SIGKILL of worker processes. Hostile input and signatures
have their own files (test_hostile_inputs.py, test_api_signatures.py); the random interleavings
are the Hypothesis model in test_fault_model.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

import pytest
from botocore.awsrequest import AWSPreparedRequest

from batchops.api.create_job import parse_create_job
from batchops.cli.main import local_service
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import EVENTS, new_bucket
from tests.faults import first, inject, response, s3_error
from tests.helpers import APPID
from tests.integration.deployed_harness import Context, Deployment, load
from tests.integration.invariants import (
    JobView,
    Row,
    assert_invariants,
    copied_to,
    deleted,
    listed_nowhere,
    restore_initiated,
)
from tests.integration.jobs_harness import (
    Service,
    csv_manifest,
    engine_settings,
    land_inventory,
    put_manifest,
    request,
)
from tests.integration.test_submit import S3_BUCKET, S3_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

BATCHOPS = str(Path(sys.executable).parent / "batchops")
SLOW_DOWN = "Please reduce your request rate."


def copy_op(target: str, extra: str = "") -> str:
    return (
        f"<COSPutObjectCopy>{extra}<TargetResource>arn:aws:s3:::{target}</TargetResource></COSPutObjectCopy>"
    )


def objects(s3: S3Client, bucket: str, keys: list[str], **extra: Any) -> list[Row]:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=f"body of {key}".encode(), **extra)
    return [(bucket, key, "") for key in keys]


def run_embedded(
    svc: Service, manifest: list[Row], operation: str, *, statuses: tuple[str, ...] = ("Complete",)
) -> JobView:
    """Create the job over HTTP with a CSV manifest of ``manifest``; wait until it ends."""
    bucket = manifest[0][0] if manifest else new_bucket(svc.s3)
    etag = put_manifest(svc.s3, bucket, "manifests/m.csv", csv_manifest([(b, k) for b, k, _ in manifest]))
    job_id = svc.create(request(bucket, "manifests/m.csv", etag, operation, bucket))
    job = svc.wait(job_id, "Complete", "Failed", "Cancelled")
    view = JobView.from_xml(job)
    assert view.status in statuses, (view, statuses)
    return view


def key_of(request: AWSPreparedRequest) -> str:
    """The key a path-style request names."""
    return unquote(request.url.split("?")[0].split("/", 4)[-1])


# --- S3 answering badly -----------------------------------------------------------------------


def test_transient_slowdown_is_retried_and_every_task_succeeds(make_service: Callable[..., Service]) -> None:
    # GIVEN S3 answering 503 SlowDown to the first two copies (fewer than botocore's attempts)
    svc = make_service()
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    manifest = objects(svc.s3, src, [f"t/{n}" for n in range(12)])
    inject(svc.s3, "CopyObject", first(2, lambda: s3_error(503, "SlowDown", SLOW_DOWN)))
    # WHEN a copy job runs
    job = run_embedded(svc, manifest, copy_op(dst))
    # THEN every task succeeded, once
    assert_invariants(svc.s3, job, manifest, copied_to(svc.s3, dst), report_bucket=src)
    assert job.succeeded == 12


def test_persistent_slowdown_fails_those_tasks_with_their_code(make_service: Callable[..., Service]) -> None:
    # GIVEN S3 answering 503 SlowDown to every copy of two keys, however often they are retried
    svc = make_service(engine_settings(transient_retries=1, retry_backoff_seconds=0.01), s3_attempts=2)
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    manifest = objects(svc.s3, src, [f"t/{n}" for n in range(10)])
    slow = {"t/3", "t/7"}
    throttled = inject(
        svc.s3,
        "CopyObject",
        lambda req, _n: s3_error(503, "SlowDown", SLOW_DOWN) if key_of(req) in slow else None,
    )
    # WHEN a copy job runs
    job = run_embedded(svc, manifest, copy_op(dst))
    # THEN the job completes; those two tasks are failed rows saying SlowDown, the rest copied
    report = assert_invariants(svc.s3, job, manifest, copied_to(svc.s3, dst), report_bucket=src)
    assert sorted((r[1], r[4], r[5]) for r in report.rows["failed"]) == [
        ("t/3", "503", "SlowDown"),
        ("t/7", "503", "SlowDown"),
    ]
    # AND each was sent 1 + 2 times by botocore (max_attempts counts retries), for each of the
    # engine's 2 attempts
    assert sum(key_of(r) in slow for r in throttled.seen) == len(slow) * 2 * 3


def test_a_200_with_an_error_body_is_retried_and_never_counted_a_success(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN CopyObject answering 200 with an InternalError body: twice for one key, always for another
    svc = make_service(engine_settings(transient_retries=1, retry_backoff_seconds=0.01), s3_attempts=2)
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    manifest = objects(svc.s3, src, ["once", "always", "fine"])
    broken = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
    answered: dict[str, int] = {}

    def decide(req: AWSPreparedRequest, _n: int) -> Any:
        key = key_of(req)
        answered[key] = answered.get(key, 0) + 1
        if key == "always" or (key == "once" and answered[key] == 1):
            return response(200, broken, {"Content-Type": "application/xml"})
        return None

    inject(svc.s3, "CopyObject", decide)
    # WHEN a copy job runs
    job = run_embedded(svc, manifest, copy_op(dst))
    # THEN the retried one succeeded, the persistent one is a failed InternalError row with no copy
    report = assert_invariants(svc.s3, job, manifest, copied_to(svc.s3, dst), report_bucket=src)
    assert [(r[1], r[5]) for r in report.rows["failed"]] == [("always", "InternalError")]
    assert "Contents" not in svc.s3.list_objects_v2(Bucket=dst, Prefix="always")


def test_a_manifest_etag_mismatch_fails_the_job_before_anything_runs(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN a manifest overwritten after the job named its ETag
    svc = make_service()
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    manifest = objects(svc.s3, src, ["a", "b"])
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, "a")]))
    put_manifest(svc.s3, src, "m.csv", csv_manifest([(b, k) for b, k, _ in manifest]))
    # WHEN the job is created with the old ETag
    job_id = svc.create(request(src, "m.csv", etag, copy_op(dst), src))
    job = JobView.from_xml(svc.wait(job_id, "Complete", "Failed", "Cancelled"))
    # THEN it failed in Preparing, naming the mismatch; nothing was copied
    assert_invariants(
        svc.s3, job, manifest, copied_to(svc.s3, dst), report_bucket=src, statuses=frozenset({"Failed"})
    )
    assert job.failures[0][0] == "ManifestETagMismatch"
    assert "Contents" not in svc.s3.list_objects_v2(Bucket=dst)


SPECIAL_KEYS = [
    "with space",
    "plus+sign",
    "percent%41",
    "literal%2B",
    "carriage\rreturn",
    'quote"d',
    "comma,key",
    unicodedata.normalize("NFC", "caf\u00e9"),
    unicodedata.normalize("NFD", "caf\u00e9"),
    "/leading-slash",
    "./dot-slash",
    "trailing/",
    "=SUM(A1:A2)",
    "k" * 1024,
]


def test_special_keys_are_decoded_once_and_reported_back_exactly(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN objects with every awkward key, plus a 1,025-byte key and a newline key (moto's server
    # cannot store a newline key; that task fails and must still be reported exactly)
    svc = make_service()
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    manifest = [*objects(svc.s3, src, SPECIAL_KEYS), (src, "k" * 1025, ""), (src, "new\nline", "")]
    # WHEN a copy job runs
    job = run_embedded(svc, manifest, copy_op(dst))
    # THEN each key was copied under itself (NFC and NFD apart) and reported once
    report = assert_invariants(svc.s3, job, manifest, copied_to(svc.s3, dst), report_bucket=src)
    failed = {unquote_plus(r[1]): (r[4], r[5]) for r in report.rows["failed"]}
    assert set(failed) == {"k" * 1025, "new\nline"}
    assert failed["k" * 1025] == ("400", "KeyTooLongError")
    assert failed["new\nline"][0] == "404"
    # AND a key that looks like a formula reaches the report URL-encoded, never as a formula
    assert any(r[1] == "%3DSUM%28A1%3AA2%29" for r in report.rows["succeeded"])


def test_a_multipart_copy_retries_a_failing_part_and_aborts_one_that_keeps_failing(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN two 11 MiB objects copied in 5 MiB parts; one part of "flaky" fails once, every part
    # of "broken" fails
    from dataclasses import replace

    base = engine_settings(transient_retries=0)
    copy = replace(base.copy, multipart_threshold=5 * 1024 * 1024, part_size=5 * 1024 * 1024)
    svc = make_service(replace(base, copy=copy), s3_attempts=2)
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    body = os.urandom(11 * 1024 * 1024)
    for key in ("flaky", "broken"):
        svc.s3.put_object(Bucket=src, Key=key, Body=body)
    manifest: list[Row] = [(src, "flaky", ""), (src, "broken", "")]
    seen: dict[str, int] = {}

    def decide(req: AWSPreparedRequest, _n: int) -> Any:
        key = key_of(req)
        seen[key] = seen.get(key, 0) + 1
        if key == "broken":
            return s3_error(403, "AccessDenied", "part refused")
        if key == "flaky" and seen[key] == 2:
            return s3_error(500, "InternalError")
        return None

    inject(svc.s3, "UploadPartCopy", decide)
    # WHEN a copy job runs
    job = run_embedded(svc, manifest, copy_op(dst))
    # THEN "flaky" is copied whole; "broken" is a failed row and its upload was aborted
    report = assert_invariants(svc.s3, job, manifest, copied_to(svc.s3, dst), report_bucket=src)
    assert [r[1] for r in report.rows["failed"]] == ["broken"]
    assert svc.s3.list_multipart_uploads(Bucket=dst).get("Uploads", []) == []
    assert seen["flaky"] == 4  # three parts, one of them twice


def test_restore_counts_409_as_success_and_reports_a_refusal(make_service: Callable[..., Service]) -> None:
    # GIVEN archived objects, one whose restore is already running (S3 answers 409 to a redelivered
    # task), and one STANDARD object S3 refuses to restore
    svc = make_service()
    bucket = new_bucket(svc.s3)
    manifest = objects(svc.s3, bucket, ["cold/1", "cold/2"], StorageClass="GLACIER")
    svc.s3.restore_object(Bucket=bucket, Key="cold/2", RestoreRequest={"Days": 1})
    manifest += objects(svc.s3, bucket, ["warm"])
    inject(
        svc.s3,
        "RestoreObject",
        lambda req, _n: (
            s3_error(409, "RestoreAlreadyInProgress", "in progress") if key_of(req) == "cold/2" else None
        ),
    )
    restore = "<COSInitiateRestoreObject><ExpirationInDays>1</ExpirationInDays><JobTier>Standard</JobTier></COSInitiateRestoreObject>"
    # WHEN a restore job runs
    job = run_embedded(svc, manifest, restore)
    # THEN both archived objects count as restored, the STANDARD one is a failed row with S3's code
    report = assert_invariants(svc.s3, job, manifest, restore_initiated(svc.s3), report_bucket=bucket)
    assert sorted((r[1], r[4]) for r in report.rows["succeeded"]) == [("cold/1", "202"), ("cold/2", "409")]
    assert [(r[1], r[4]) for r in report.rows["failed"]] == [("warm", "403")]


def test_a_cancelled_job_reports_exactly_what_ran(make_service: Callable[..., Service]) -> None:
    # GIVEN a delete job whose DeleteObjects calls are slow
    svc = make_service(engine_settings(chunk_max_tasks=5, workers=1))
    bucket = new_bucket(svc.s3)
    manifest = objects(svc.s3, bucket, [f"d/{n:02d}" for n in range(60)])
    inject(svc.s3, "DeleteObjects", lambda _r, _n: time.sleep(0.15))
    etag = put_manifest(svc.s3, bucket, "m.csv", csv_manifest([(b, k) for b, k, _ in manifest]))
    job_id = svc.create(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket))
    # WHEN it is cancelled while it runs
    svc.wait(job_id, "Active")
    time.sleep(0.4)
    assert svc.status(job_id, "Cancelled").status == 200
    job = JobView.from_xml(svc.wait(job_id, "Complete", "Failed", "Cancelled"))
    # THEN it ended Cancelled; what ran is reported once and deleted, what did not run is still there
    report = assert_invariants(
        svc.s3, job, manifest, deleted(svc.s3), report_bucket=bucket, statuses=frozenset({"Cancelled"})
    )
    ran = {r[1] for r in report.rows.get("succeeded", [])}
    assert 0 < len(ran) < 60
    remaining = {o["Key"] for o in svc.s3.list_objects_v2(Bucket=bucket, Prefix="d/").get("Contents", [])}
    assert remaining == {k for _, k, _ in manifest} - ran


# --- the store failing ---------------------------------------------------------------------------


def test_the_sqlite_store_locked_mid_job_loses_and_duplicates_nothing(
    make_service: Callable[..., Service], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a copy job running on embedded workers with short leases and a short busy timeout
    svc = make_service(engine_settings(chunk_max_tasks=5, lease_seconds=1.0, workers=2), busy_timeout=0.2)
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    manifest = objects(svc.s3, src, [f"s/{n:02d}" for n in range(40)])
    inject(svc.s3, "CopyObject", lambda _r, _n: time.sleep(0.02))
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(b, k) for b, k, _ in manifest]))
    job_id = svc.create(request(src, "m.csv", etag, copy_op(dst), src))
    svc.wait(job_id, "Active")
    # WHEN another process holds the database's write lock for 1.5 s mid-job
    locker = sqlite3.connect(tmp_path / "jobs-0.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    time.sleep(1.5)
    locker.execute("COMMIT")
    locker.close()
    # THEN the workers met the lock, and the job still completes, every task counted once
    job = JobView.from_xml(svc.wait(job_id, "Complete", "Failed", "Cancelled"))
    assert "database is locked" in caplog.text
    assert_invariants(svc.s3, job, manifest, copied_to(svc.s3, dst), report_bucket=src)


# --- deployed: Lambda, SQS and DynamoDB ------------------------------------------------------------


def deployed_copy_job(s3: S3Client, count: int) -> tuple[bytes, list[Row], str]:
    src, dst = new_bucket(s3), new_bucket(s3)
    manifest = objects(s3, src, [f"o {n:03d}" for n in range(count)])
    etag = put_manifest(s3, src, "m.csv", csv_manifest([(b, k) for b, k, _ in manifest]))
    return request(src, "m.csv", etag, copy_op(dst), src), manifest, dst


def drive_to_end(deployment: Deployment, job_id: str, **options: Any) -> JobView:
    terminal = ("Complete", "Failed", "Cancelled")
    deployment.drive(lambda: deployment.job(job_id).status.value in terminal, **options)
    return JobView.from_job(deployment.job(job_id))


@pytest.mark.parametrize("delivery", ["duplicate", "concurrent"])
def test_duplicate_and_concurrent_delivery_count_each_task_once(
    deployment: Deployment, s3: S3Client, delivery: str
) -> None:
    # GIVEN a job of 30 copies in 3 chunks
    body, manifest, dst = deployed_copy_job(s3, 30)
    job_id = deployment.create_job(body)
    # WHEN SQS delivers every chunk message twice, one after the other, or two invocations run
    # the same chunk messages at the same time
    job = drive_to_end(
        deployment,
        job_id,
        duplicate_chunks=delivery == "duplicate",
        concurrent_chunks=delivery == "concurrent",
    )
    # THEN every task counts once
    assert_invariants(s3, job, manifest, copied_to(s3, dst), report_bucket=manifest[0][0])


def test_a_deadline_mid_chunk_hands_the_rest_on(deployment: Deployment, s3: S3Client) -> None:
    # GIVEN slow copies and invocations with about 0.3 s to go before their deadline
    body, manifest, dst = deployed_copy_job(s3, 20)
    inject(deployment.run_job.s3, "CopyObject", lambda _request, _count: time.sleep(0.2))
    job_id = deployment.create_job(body)
    # WHEN the queue is driven
    job = drive_to_end(deployment, job_id, context=lambda: Context(remaining_ms=1_300))
    # THEN chunks were handed on part-way, and every task counts once
    assert any(m.get("kind") == "chunk" and m.get("start", 0) > 0 for m in deployment.received)
    assert_invariants(s3, job, manifest, copied_to(s3, dst), report_bucket=manifest[0][0])


def create_event(body: bytes) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "jobs_api" / "create_job.json").read_text())
    event["body"] = body.decode()
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Content-MD5")
    return event


def test_the_store_down_at_create_job_leaves_nothing_and_the_same_token_succeeds_once(
    deployment: Deployment, s3: S3Client
) -> None:
    # GIVEN DynamoDB answering 500 to every write for now
    body, manifest, dst = deployed_copy_job(s3, 12)
    down = True
    inject(
        deployment.api.dynamodb,
        "*",
        lambda _r, _n: s3_error(500, "InternalServerError", "injected") if down else None,
    )
    # WHEN CreateJob is called
    refused = deployment.api.lambda_handler(create_event(body), Context(function_name="JobsApiFunction"))
    # THEN ServiceUnavailable in a COS error body, and no job exists
    assert refused["statusCode"] == 500 and "<Code>ServiceUnavailable</Code>" in refused["body"]
    down = False
    assert deployment.run_job.service.list("1250000000", None, 100, None)[0] == []
    # AND the same request (same token) later makes exactly one job, which runs to the end
    job_id = deployment.create_job(body)
    again = deployment.api.lambda_handler(create_event(body), Context(function_name="JobsApiFunction"))
    assert again["statusCode"] == 400 and "Duplicate request." in again["body"]
    assert [j.job_id for j in deployment.run_job.service.list("1250000000", None, 100, None)[0]] == [job_id]
    job = drive_to_end(deployment, job_id)
    assert_invariants(s3, job, manifest, copied_to(s3, dst), report_bucket=manifest[0][0])


def test_the_ledger_failing_mid_job_is_retried_without_double_counting(
    deployment: Deployment, s3: S3Client
) -> None:
    # GIVEN a created job, and then DynamoDB failing its next five transactions (more than one
    # call's retries: a chunk's S3 work is done and its record refused, so the message fails)
    body, manifest, dst = deployed_copy_job(s3, 30)
    job_id = deployment.create_job(body)
    failing = inject(
        deployment.run_job.dynamodb,
        "TransactWriteItems",
        first(5, lambda: s3_error(500, "InternalServerError", "injected")),
    )
    # WHEN the queue is driven (failed messages come back, as SQS brings them back)
    job = drive_to_end(deployment, job_id)
    # THEN the failures happened, and still every task counts once
    assert len(failing.seen) > 5
    assert_invariants(s3, job, manifest, copied_to(s3, dst), report_bucket=manifest[0][0])


def test_a_duplicated_trigger_event_makes_one_job_that_runs_once(
    deployment: Deployment, s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an inventory landed for a copy rule, and the submit function beside the stack
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="example-source-bucket")
    manifest = objects(s3, "example-source-bucket", [f"obj/{n}" for n in range(5)])
    target = new_bucket(s3)
    rule = {
        "name": f"fault-suite-{target}",
        "match": {"bucket": S3_BUCKET, "prefix": "inventory/example-source-bucket/daily-copy/"},
        "operation": {"COSPutObjectCopy": {"TargetResource": f"arn:aws:s3:::{target}"}},
        "report": {"bucket": f"arn:aws:s3:::{target}", "prefix": "reports", "scope": "AllTasks"},
        "roleArn": "arn:aws:iam::123456789012:role/batchops-jobs",
    }
    monkeypatch.setenv("BATCHOPS_TARGET", "direct")
    monkeypatch.setenv("BATCHOPS_RULES", json.dumps([rule]))
    submit = load(f"submit_job_{target}", "functions/submit_job/app.py")
    land_inventory(s3, S3_BUCKET, S3_PREFIX)
    event = json.loads((EVENTS / "submit_job" / "s3_manifest_checksum.json").read_text())
    # WHEN S3 delivers the event twice (at least once means sometimes twice)
    first_answer = submit.lambda_handler(event, Context(function_name="SubmitJobFunction"))
    second_answer = submit.lambda_handler(event, Context(function_name="SubmitJobFunction"))
    # THEN one job exists, the second submission was a duplicate of it
    (made,) = first_answer["submitted"]
    assert second_answer["submitted"] == [{**made, "duplicate": True}]
    assert [j.job_id for j in deployment.run_job.service.list("1250000000", None, 100, None)[0]] == [
        made["jobId"]
    ]
    # AND it runs once, to the end
    job = drive_to_end(deployment, made["jobId"])
    assert_invariants(s3, job, manifest, copied_to(s3, target), report_bucket=target)


# --- worker processes killed -----------------------------------------------------------------------


def worker_env(moto_endpoint: str, db: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "BATCHOPS_DB": str(db),
        "BATCHOPS_S3_ADDRESSING_STYLE": "path",
        "BATCHOPS_WORKERS": "1",
        "BATCHOPS_TASK_CONCURRENCY": "2",
        "BATCHOPS_CHUNK_SIZE": "25",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }


@pytest.fixture
def stored_copy_job(s3: S3Client, tmp_path: Path) -> Iterator[tuple[SQLiteJobStore, str, list[Row], str]]:
    src, dst = new_bucket(s3), new_bucket(s3)
    manifest = objects(s3, src, [f"obj/{n:04d}" for n in range(250)])
    etag = put_manifest(s3, src, "m.csv", csv_manifest([(b, k) for b, k, _ in manifest]))
    store = SQLiteJobStore(tmp_path / "jobs.db")
    service = local_service(store, max_active_jobs=10)
    job = service.create(APPID, parse_create_job(request(src, "m.csv", etag, copy_op(dst), src)))
    yield store, job.job_id, manifest, dst
    store.close()


def finish_and_check(
    s3: S3Client, moto_endpoint: str, tmp_path: Path, job: tuple[SQLiteJobStore, str, list[Row], str]
) -> None:
    store, job_id, manifest, dst = job
    service = local_service(store, max_active_jobs=10)
    assert service.describe(APPID, job_id).status.value == "Active"
    # another process takes over (it sees the dead worker's lease and releases it at once)
    env = worker_env(moto_endpoint, tmp_path / "jobs.db")
    finisher = subprocess.run([BATCHOPS, "run", "--until-idle"], env=env, timeout=120, check=False)
    assert finisher.returncode == 0
    view = JobView.from_job(service.describe(APPID, job_id))
    assert_invariants(s3, view, manifest, copied_to(s3, dst), report_bucket=manifest[0][0])


@pytest.mark.parametrize("recorded", [30, 140])
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    s3: S3Client,
    moto_endpoint: str,
    tmp_path: Path,
    stored_copy_job: tuple[SQLiteJobStore, str, list[Row], str],
    recorded: int,
) -> None:
    # GIVEN a `batchops run` worker on a 250-task copy job
    store, job_id = stored_copy_job[:2]
    worker = subprocess.Popen([BATCHOPS, "run"], env=worker_env(moto_endpoint, tmp_path / "jobs.db"))
    # WHEN it is killed with SIGKILL once this many tasks are recorded (mid-chunk, tasks in flight)
    deadline = time.monotonic() + 60
    while store.progress(job_id)[0] < recorded:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.005)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    # THEN another process completes the job: every task once, counted once, copied
    finish_and_check(s3, moto_endpoint, tmp_path, stored_copy_job)


@pytest.mark.parametrize("write", [1, 4])
def test_a_worker_killed_between_its_s3_calls_and_the_ledger_write_loses_and_duplicates_nothing(
    s3: S3Client,
    moto_endpoint: str,
    tmp_path: Path,
    stored_copy_job: tuple[SQLiteJobStore, str, list[Row], str],
    write: int,
) -> None:
    # GIVEN a worker that dies by SIGKILL at its Nth ledger write, its chunk's copies already made
    env = worker_env(moto_endpoint, tmp_path / "jobs.db")
    dying = subprocess.run(
        [sys.executable, "-m", "tests.integration.dying_worker", str(write)],
        env=env,
        timeout=120,
        check=False,
    )
    # WHEN it has died that way
    assert dying.returncode == -signal.SIGKILL
    assert stored_copy_job[0].progress(stored_copy_job[1])[0] == (write - 1) * 25
    # THEN another process completes the job: the unrecorded chunk is redone, nothing is doubled
    finish_and_check(s3, moto_endpoint, tmp_path, stored_copy_job)


# --- a big manifest --------------------------------------------------------------------------------


def delete_job_peak_rss(s3: S3Client, moto_endpoint: str, tmp_path: Path, rows: int) -> tuple[JobView, int]:
    """Run a delete job of ``rows`` keys in a fresh `batchops run --until-idle`; its peak RSS (KiB).

    The keys do not exist (S3 reports them deleted), so a million rows cost a thousand requests.
    """
    bucket = new_bucket(s3)
    lines = "".join(f"{bucket},gone/{n:09d}\n" for n in range(rows)).encode()
    etag = put_manifest(s3, bucket, "m.csv", lines)
    db = tmp_path / f"jobs-{rows}.db"
    store = SQLiteJobStore(db)
    try:
        job = local_service(store, 10).create(
            APPID, parse_create_job(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket))
        )
        run = subprocess.run(
            [sys.executable, "-m", "tests.integration.measured_run"],
            env={**worker_env(moto_endpoint, db), "BATCHOPS_CHUNK_SIZE": "1000"},
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        peak = int(run.stderr.strip().splitlines()[-1].split()[1])
        view = JobView.from_job(local_service(store, 10).describe(APPID, job.job_id))
    finally:
        store.close()
    manifest = [(bucket, f"gone/{n:09d}", "") for n in range(rows)]
    assert_invariants(s3, view, manifest, listed_nowhere(s3, bucket, "gone/"), report_bucket=bucket)
    return view, peak


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param((2_000, 40_000, 1.15), id="40k-rows"),
        pytest.param((100_000, 1_000_000, 1.10), id="1M-rows", marks=pytest.mark.soak),
    ],
)
def test_a_big_manifest_runs_in_flat_memory(
    s3: S3Client, moto_endpoint: str, tmp_path: Path, sizes: tuple[int, int, float]
) -> None:
    small, big, ratio = sizes
    # GIVEN delete jobs of a small and of a big manifest, each run by a fresh worker process
    _, small_peak = delete_job_peak_rss(s3, moto_endpoint, tmp_path, small)
    # WHEN the big one runs to the end (I1-I4 asserted on every row of its report)
    job, big_peak = delete_job_peak_rss(s3, moto_endpoint, tmp_path, big)
    # THEN it took no more memory than the small one, within noise
    assert job.total == big
    assert big_peak <= small_peak * ratio, (small_peak, big_peak)
