"""A deployed prepare too long for one invocation: it stops before its deadline with a checkpoint
in the ledger and hands on to a new message, however the messages are duplicated, raced, lost or
cut short, and ends with exactly the chunks and total a prepare in one go writes."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from batchops.engine.phases import Engine
from batchops.engine.sqs import WorkMessage
from batchops.jobs.service import JobService
from batchops.jobs.status import RequestedJobStatus
from batchops.store.base import ChunkRecord
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.dynamodb_ledger import DynamoDBLedger
from tests.conftest import EVENTS, new_bucket
from tests.faults import inject, response
from tests.integration.deployed_harness import Context, Deployment
from tests.integration.jobs_harness import csv_manifest, put_manifest, request

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from mypy_boto3_s3.client import S3Client

APPID = "1250000000"
COPY = "<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"


def no_time_left() -> Context:
    """An invocation already at its deadline (the harness's margin is 1 s): it plans one chunk."""
    return Context(remaining_ms=1000)


def csv_requests(s3: S3Client, tasks: int) -> tuple[bytes, bytes]:
    """Two CreateJob bodies (different tokens) for one CSV manifest; confirmation keeps both
    Suspended once prepared, so their ledgers stay to be compared."""
    src, dst = new_bucket(s3), new_bucket(s3)
    keys = [(src, f"dir/o {n:03d}+%{n}") for n in range(tasks)]
    etag = put_manifest(s3, src, "m.csv", csv_manifest(keys))
    return tuple(  # type: ignore[return-value]
        request(src, "m.csv", etag, COPY.format(dst=dst), src, token=token, confirm=True)
        for token in ("resumed", "in-one-go")
    )


def inventory_requests(s3: S3Client, rows_per_file: list[int]) -> tuple[bytes, bytes]:
    """The same for an S3 inventory of several gzip data files (the first with a header row)."""
    inv, dst = new_bucket(s3), new_bucket(s3)
    files = []
    row = 0
    for number, count in enumerate(rows_per_file):
        lines = ["Bucket,Key,VersionId"] if number == 0 else []
        for _ in range(count):
            lines.append(f'"src-bucket","inv/k+{row:04d}%2B","v{row}"')
            if row % 7 == 0:
                lines.append("")  # a blank line now and then
            row += 1
        data = gzip.compress(("\r\n".join(lines) + "\r\n").encode())
        key = f"inv/data/part-{number}.csv.gz"
        s3.put_object(Bucket=inv, Key=key, Body=data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {
        "sourceBucket": "src-bucket",
        "destinationBucket": f"arn:aws:s3:::{inv}",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId",
        "files": files,
    }
    etag = put_manifest(s3, inv, "inv/manifest.json", json.dumps(manifest).encode())
    return tuple(  # type: ignore[return-value]
        request(
            inv,
            "inv/manifest.json",
            etag,
            COPY.format(dst=dst),
            inv,
            token=token,
            fields=(),
            fmt="S3InventoryReport_CSV_20161130",
            confirm=True,
        )
        for token in ("resumed", "in-one-go")
    )


def ledger_of(deployment: Deployment, job_id: str) -> tuple[int, int, list[ChunkRecord | None]]:
    """(total, chunk count, every chunk and one past the last) of a prepared job."""
    job = deployment.job(job_id)
    ledger = deployment.run_job.ledger
    return (
        job.progress.total,
        job.chunk_count,
        [ledger.get_chunk(job_id, n) for n in range(job.chunk_count + 1)],
    )


def in_one_go(deployment: Deployment, body: bytes) -> tuple[int, int, list[ChunkRecord | None]]:
    """The reference: the same manifest prepared by one call with no deadline."""
    job_id = deployment.create_job(body)
    assert deployment.run_job.engine.prepare(APPID, job_id) is False
    assert deployment.job(job_id).status.value == "Suspended"
    return ledger_of(deployment, job_id)


def prepares(deployment: Deployment) -> int:
    return [m.get("kind") for m in deployment.received].count("prepare")


def queue_empty(deployment: Deployment) -> bool:
    found = deployment.sqs.get_queue_attributes(
        QueueUrl=deployment.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        found.get("ApproximateNumberOfMessages") == found.get("ApproximateNumberOfMessagesNotVisible") == "0"
    )


def suspended(deployment: Deployment, job_id: str) -> Any:
    return lambda: deployment.job(job_id).status.value == "Suspended"


def test_a_prepare_at_its_deadline_hands_on_and_plans_what_one_go_does(
    deployment: Deployment, s3: S3Client
) -> None:
    # GIVEN a CSV manifest of 45 tasks (5 chunks of 10)
    resumed, reference = csv_requests(s3, 45)
    job_id = deployment.create_job(resumed)
    # WHEN every invocation starts at its deadline
    deployment.drive(suspended(deployment, job_id), context=no_time_left)
    # THEN prepare planned a chunk and handed on, five times, the job Preparing until the last
    assert prepares(deployment) == 5
    # AND the ledger is exactly the one a prepare in one go writes
    total, chunks, records = ledger_of(deployment, job_id)
    assert (total, chunks) == (45, 5)
    assert (total, chunks, records) == in_one_go(deployment, reference)
    checkpoint = deployment.run_job.ledger.prepare_checkpoint(job_id)
    assert checkpoint is not None and (checkpoint.next_index, checkpoint.next_ordinal, checkpoint.done) == (
        5,
        45,
        True,
    )


def test_the_job_stays_preparing_until_the_last_chunk_is_planned(
    deployment: Deployment, s3: S3Client
) -> None:
    resumed, _ = csv_requests(s3, 45)
    job_id = deployment.create_job(resumed)
    deployment.drive(lambda: prepares(deployment) >= 3, context=no_time_left)
    job = deployment.job(job_id)
    assert (job.status.value, job.progress.total, job.chunk_count) == ("Preparing", 0, 0)
    assert deployment.run_job.ledger.get_chunk(job_id, 2) is not None


def test_an_inventory_of_several_files_resumes_inside_and_between_files(
    deployment: Deployment, s3: S3Client
) -> None:
    # GIVEN an inventory of four data files (17, 0, 23 and 8 rows), so that chunks of 10 start
    # inside files, at a file's start, and span files
    resumed, reference = inventory_requests(s3, [17, 0, 23, 8])
    job_id = deployment.create_job(resumed)
    # WHEN every invocation starts at its deadline
    deployment.drive(suspended(deployment, job_id), context=no_time_left)
    # THEN it handed on after every chunk and planned what one go plans
    assert prepares(deployment) == 5
    total, chunks, records = ledger_of(deployment, job_id)
    assert (total, chunks) == (48, 5)
    assert (total, chunks, records) == in_one_go(deployment, reference)


def fail_once(matches: str, nth: int) -> Any:
    """Answer the ``nth`` request whose body holds ``matches`` with an error botocore does not
    retry: the invocation dies there, as a Lambda killed between two writes would."""
    seen = [0]

    def decide(request: AWSPreparedRequest, _count: int) -> AWSResponse | None:
        if matches.encode() not in (request.body or b""):
            return None
        seen[0] += 1
        if seen[0] != nth:
            return None
        body = json.dumps(
            {"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": "died"}
        )
        return response(400, body.encode(), {"Content-Type": "application/x-amz-json-1.0"})

    return decide


def test_duplicate_messages_and_a_death_between_chunks_and_checkpoint_change_nothing(
    deployment: Deployment, s3: S3Client
) -> None:
    # GIVEN a job whose prepare message SQS delivers three times, and an invocation that dies
    # after writing its chunk but before its checkpoint (the third checkpoint write fails once)
    resumed, reference = csv_requests(s3, 45)
    job_id = deployment.create_job(resumed)
    for _ in range(2):
        deployment.sqs.send_message(
            QueueUrl=deployment.queue_url, MessageBody=WorkMessage("prepare", APPID, job_id).to_json()
        )
    died = inject(deployment.run_job.dynamodb, "PutItem", fail_once('"PREPARE"', 3))
    # WHEN the queue is driven with every invocation at its deadline
    deployment.drive(suspended(deployment, job_id), context=no_time_left)
    # THEN the death happened (5 checkpoints stored, one more attempted), and the job still has
    # exactly the chunks and total of one go
    assert sum(b'"PREPARE"' in (r.body or b"") for r in died.seen) == 6
    assert ledger_of(deployment, job_id) == in_one_go(deployment, reference)
    # AND a prepare message delivered after the job was prepared changes nothing
    before = ledger_of(deployment, job_id)
    event = json.loads((EVENTS / "run_job" / "prepare.json").read_text())
    event["Records"][0]["body"] = WorkMessage("prepare", APPID, job_id).to_json()
    assert deployment.run_job.lambda_handler(event, Context()) == {"batchItemFailures": []}
    assert ledger_of(deployment, job_id) == before
    assert deployment.job(job_id).status.value == "Suspended"


def test_a_preparer_overtaken_by_another_stops_without_handing_on(
    deployment: Deployment, s3: S3Client, moto_endpoint: str
) -> None:
    # GIVEN a job, and a second preparer (another invocation, its own clients) that runs the
    # whole prepare just as the first is about to store its checkpoint
    resumed, reference = csv_requests(s3, 45)
    job_id = deployment.create_job(resumed)
    run_job = deployment.run_job
    other_client = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    other = Engine(
        JobService(DynamoDBJobStore(run_job.settings.jobs_table, other_client), max_active_jobs=10),
        DynamoDBLedger(run_job.settings.jobs_table, other_client),
        run_job.s3,
        run_job.settings.engine,
    )
    raced: list[bool] = []

    def overtake(request: AWSPreparedRequest, _count: int) -> None:
        if b'"PREPARE"' in (request.body or b"") and not raced:
            raced.append(other.prepare(APPID, job_id))

    inject(run_job.dynamodb, "PutItem", overtake)
    # WHEN the first preparer's message is handled
    deployment.drive(lambda: prepares(deployment) >= 1)
    # THEN the second one finished the job; the first lost the race for the checkpoint and
    # sent nothing on
    assert raced == [False]
    assert deployment.job(job_id).status.value == "Suspended"
    assert deployment.sqs.receive_message(QueueUrl=deployment.queue_url).get("Messages", []) == []
    assert ledger_of(deployment, job_id) == in_one_go(deployment, reference)
    other.close()


@pytest.mark.parametrize("deployment", [{"BATCHOPS_SWEEP_STALE_SECONDS": "1"}], indirect=True)
def test_the_sweep_leaves_a_moving_prepare_alone_and_resumes_a_stalled_one(
    deployment: Deployment, s3: S3Client
) -> None:
    sweep_event = json.loads((EVENTS / "run_job" / "sweep.json").read_text())
    resumed, _ = csv_requests(s3, 45)
    job_id = deployment.create_job(resumed)
    # GIVEN a prepare going on a chunk per invocation, whose job item last changed over the
    # stale time ago (when it became Preparing) while its checkpoint moved just now
    deployment.drive(lambda: prepares(deployment) >= 1, context=no_time_left)
    time.sleep(1.1)
    deployment.drive(lambda: prepares(deployment) >= 2, context=no_time_left)
    # WHEN the schedule fires THEN nothing is sent: a second preparer would only lose the race
    assert deployment.run_job.lambda_handler(sweep_event, Context()) == {"swept": []}
    # WHEN its next message is lost, and the checkpoint has not moved for the stale time
    deployment.sqs.purge_queue(QueueUrl=deployment.queue_url)
    time.sleep(1.1)
    # THEN the sweep sends a prepare, which goes on from the checkpoint to the end
    assert deployment.run_job.lambda_handler(sweep_event, Context()) == {
        "swept": [{"jobId": job_id, "action": "prepare"}]
    }
    deployment.drive(suspended(deployment, job_id), context=no_time_left)
    assert prepares(deployment) == 5
    job = deployment.job(job_id)
    assert (job.progress.total, job.chunk_count) == (45, 5)


def test_a_job_cancelled_while_preparing_keeps_no_ledger(deployment: Deployment, s3: S3Client) -> None:
    resumed, _ = csv_requests(s3, 45)
    job_id = deployment.create_job(resumed)
    deployment.drive(lambda: prepares(deployment) >= 2, context=no_time_left)
    # WHEN it is cancelled while its prepare goes on from message to message
    deployment.run_job.service.update_status(APPID, job_id, RequestedJobStatus.CANCELLED, None)
    deployment.sqs.send_message(
        QueueUrl=deployment.queue_url, MessageBody=WorkMessage("prepare", APPID, job_id).to_json()
    )
    deployment.drive(lambda: queue_empty(deployment), context=no_time_left)
    # THEN the chain stops, and nothing of the job is left in the ledger
    assert deployment.job(job_id).status.value == "Cancelled"
    assert deployment.run_job.ledger.prepare_checkpoint(job_id) is None
    assert [deployment.run_job.ledger.get_chunk(job_id, n) for n in range(5)] == [None] * 5
