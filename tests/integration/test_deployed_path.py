"""Deployed mode: the jobs_api and run_job handlers on moto's DynamoDB, SQS and S3 over HTTP,
with the queue driven the way Lambda drives it: receive a batch, invoke, delete what succeeded,
let the rest become visible again, and move a message that keeps failing to the DLQ."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import EVENTS, new_bucket
from tests.faults import count_only, inject, s3_error
from tests.integration.deployed_harness import Context, Deployment
from tests.integration.jobs_harness import csv_manifest, put_manifest, read_report, request

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def copy_job(s3: S3Client, objects: int) -> tuple[bytes, str, str]:
    src, dst = new_bucket(s3), new_bucket(s3)
    for n in range(objects):
        s3.put_object(Bucket=src, Key=f"o {n:03d}", Body=str(n).encode())
    etag = put_manifest(s3, src, "m.csv", csv_manifest([(src, f"o {n:03d}") for n in range(objects)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    return request(src, "m.csv", etag, copy, src), src, dst


def test_a_job_runs_to_complete_through_the_queue(deployment: Deployment, s3: S3Client) -> None:
    # GIVEN a job of 45 copies created through the API function
    body, src, dst = copy_job(s3, 45)
    job_id = deployment.create_job(body)
    # WHEN the queue is driven as Lambda drives it
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete")
    # THEN every task ran once: counters, report rows, copies
    job = deployment.job(job_id)
    assert (job.progress.total, job.progress.succeeded, job.progress.failed, job.chunk_count) == (
        45,
        45,
        0,
        5,
    )
    _, rows = read_report(s3, src, job_id)
    assert sorted(r[1] for r in rows["succeeded"]) == sorted(f"o+{n:03d}" for n in range(45))
    assert s3.list_objects_v2(Bucket=dst)["KeyCount"] == 45
    kinds = [m.get("kind") for m in deployment.received]
    assert kinds.count("prepare") == kinds.count("activate") == kinds.count("finalize") == 1
    assert kinds.count("chunk") == 5
    # AND the ledger is gone once the report is written
    assert deployment.run_job.ledger.progress(job_id) == (0, 0)


def test_a_message_that_keeps_failing_ends_in_the_dlq(deployment: Deployment) -> None:
    deployment.sqs.send_message(QueueUrl=deployment.queue_url, MessageBody="not a work message")

    def in_dlq() -> bool:
        attributes = deployment.sqs.get_queue_attributes(
            QueueUrl=deployment.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return attributes["ApproximateNumberOfMessages"] == "1"

    deployment.drive(in_dlq)
    assert len(deployment.received) == 5  # delivered maxReceiveCount times, then moved


def test_the_events_files_go_through_the_handler(deployment: Deployment, s3: S3Client) -> None:
    # GIVEN a job whose id the events/run_job files name, created in the deployment's table
    from batchops.api.create_job import parse_create_job
    from batchops.jobs.service import JobService
    from batchops.store.dynamodb import DynamoDBJobStore

    body, _, dst = copy_job(s3, 3)
    job_id = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"
    store = DynamoDBJobStore(deployment.run_job.settings.jobs_table, deployment.run_job.dynamodb)
    JobService(store, max_active_jobs=10, job_ids=lambda: job_id).create("1250000000", parse_create_job(body))
    # WHEN the prepare event, then the chunk event, are invoked as `sam local invoke -e` would
    for name in ("prepare.json", "chunk.json"):
        event = json.loads((EVENTS / "run_job" / name).read_text())
        assert deployment.run_job.lambda_handler(event, Context()) == {"batchItemFailures": []}
        if name == "prepare.json":
            # preparing queued an "activate"; do it here so that the chunk event finds the job Active
            deployment.run_job.worker.engine.activate("1250000000", job_id)
    # THEN the chunk ran
    assert s3.list_objects_v2(Bucket=dst)["KeyCount"] == 3


def test_a_manifest_that_never_answers_fails_the_job_before_the_dlq(
    deployment: Deployment, s3: S3Client
) -> None:
    body, _, _ = copy_job(s3, 2)
    inject(deployment.run_job.s3, "GetObject", lambda _r, _c: s3_error(500, "InternalError", "try again"))
    job_id = deployment.create_job(body)
    deployment.drive(lambda: deployment.job(job_id).status.value == "Failed")
    job = deployment.job(job_id)
    assert job.failure_reasons[0].code == "ManifestUnreadable"
    assert [m.get("kind") for m in deployment.received].count("prepare") == 4


@pytest.mark.parametrize("deployment", [{"BATCHOPS_ASSUME_JOB_ROLE": "true"}], indirect=True)
def test_jobs_run_as_their_role_when_deployed(deployment: Deployment, s3: S3Client) -> None:
    from batchops.engine.job_clients import AssumedRoleClients

    assert isinstance(deployment.run_job.clients, AssumedRoleClients)
    sts_calls = inject(deployment.run_job.clients._sts, "AssumeRole", lambda _r, _c: None)
    body, _, dst = copy_job(s3, 12)
    job_id = deployment.create_job(body)
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete")
    assert s3.list_objects_v2(Bucket=dst)["KeyCount"] == 12
    assert len(sts_calls.seen) >= 1  # the role was assumed (once per warm function, then reused)


@pytest.mark.parametrize("deployment", [{"BATCHOPS_SWEEP_STALE_SECONDS": "1"}], indirect=True)
def test_the_sweep_resends_work_whose_message_was_lost(deployment: Deployment, s3: S3Client) -> None:
    # GIVEN a job created, and its prepare message lost
    body, _, dst = copy_job(s3, 8)
    job_id = deployment.create_job(body)
    deployment.sqs.purge_queue(QueueUrl=deployment.queue_url)
    time.sleep(1.1)
    # WHEN the schedule fires (the events/run_job/sweep.json event)
    event = json.loads((EVENTS / "run_job" / "sweep.json").read_text())
    swept = deployment.run_job.lambda_handler(event, Context())
    # THEN the work is sent again, and the job completes
    assert swept == {"swept": [{"jobId": job_id, "action": "prepare"}]}
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete")
    assert s3.list_objects_v2(Bucket=dst)["KeyCount"] == 8
    # AND an idle sweep of a finished job sends nothing
    assert deployment.run_job.lambda_handler(event, Context()) == {"swept": []}


@pytest.mark.parametrize("deployment", [{"BATCHOPS_SWEEP_STALE_SECONDS": "1"}], indirect=True)
def test_the_sweep_revives_an_active_job_with_no_messages_left(deployment: Deployment, s3: S3Client) -> None:
    # GIVEN an active job whose chunk messages were all lost
    body, _, _ = copy_job(s3, 25)
    job_id = deployment.create_job(body)
    deployment.drive(
        lambda: (
            deployment.job(job_id).status.value == "Active"
            and "fanout" in [m.get("kind") for m in deployment.received]
        )
    )
    deployment.sqs.purge_queue(QueueUrl=deployment.queue_url)
    time.sleep(1.1)
    event = json.loads((EVENTS / "run_job" / "sweep.json").read_text())
    # WHEN the schedule fires THEN a fanout goes out again and the job completes, each task once
    assert deployment.run_job.lambda_handler(event, Context())["swept"][0]["action"] in ("fanout", "settled")
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete")
    job = deployment.job(job_id)
    assert (job.progress.succeeded, job.progress.failed) == (25, 0)


def test_a_job_suspended_for_over_30_days_fails(deployment: Deployment, s3: S3Client) -> None:
    from batchops.engine.sweeper import Sweeper

    body, _, _ = copy_job(s3, 1)
    job_id = deployment.create_job(
        body.replace(b"<ConfirmationRequired>false", b"<ConfirmationRequired>true")
    )
    deployment.drive(lambda: deployment.job(job_id).status.value == "Suspended")
    later = time.time() + 31 * 86_400
    run_job = deployment.run_job
    sweeper = Sweeper(
        run_job.engine, run_job.store, run_job.dispatcher, stale_seconds=600, clock=lambda: later
    )
    assert [s.action for s in sweeper.sweep()] == ["failed"]
    job = deployment.job(job_id)
    assert (job.status.value, job.failure_reasons[0].code) == ("Failed", "SuspendedTooLong")


@pytest.mark.parametrize(
    ("deployment", "lean"),
    [({}, True), ({"BATCHOPS_S3_CLIENT": "boto3"}, False), ({"BATCHOPS_ASSUME_JOB_ROLE": "true"}, True)],
    indirect=["deployment"],
)
def test_deployed_copies_go_through_the_configured_client(
    deployment: Deployment, s3: S3Client, lean: bool
) -> None:
    copies = inject(deployment.run_job.s3, "CopyObject", count_only())
    body, _, dst = copy_job(s3, 6)
    job_id = deployment.create_job(body)
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete")
    assert s3.list_objects_v2(Bucket=dst)["KeyCount"] == 6
    agents = [r.headers["User-Agent"] for r in copies.seen]
    assert len(agents) == 6 and all((b"batchops-s3fast" in agent) is lean for agent in agents)


def test_a_chunk_reads_its_job_and_progress_no_more_than_it_needs(
    deployment: Deployment, s3: S3Client
) -> None:
    from tests.faults import count_only, inject

    # GIVEN an active job of two chunks, their chunk messages queued
    body, _, _ = copy_job(s3, 20)
    job_id = deployment.create_job(body)
    deployment.drive(lambda: "fanout" in [m.get("kind") for m in deployment.received])
    [message] = deployment.sqs.receive_message(QueueUrl=deployment.queue_url, AttributeNames=["All"])[
        "Messages"
    ]
    assert '"kind":"chunk"' in message["Body"]
    gets = inject(deployment.run_job.dynamodb, "GetItem", count_only())
    progress = inject(deployment.run_job.dynamodb, "BatchGetItem", count_only())
    # WHEN one chunk runs
    event = {"Records": [deployment._record(message)]}
    assert deployment.run_job.lambda_handler(event, Context()) == {"batchItemFailures": []}
    # THEN the job is settled once (one read of its progress shards), and its item is read
    # consistently only where a decision rests on it: after taking the chunk, and when settling
    job_reads = [json.loads(r.body) for r in gets.seen if isinstance(r.body, bytes) and b'"JOB#' in r.body]
    assert len(progress.seen) == 1
    assert job_reads[0]["ConsistentRead"] is False  # the first look, before taking the chunk
    assert sum(r["ConsistentRead"] for r in job_reads) == 2
    job = deployment.job(job_id)
    assert (job.status.value, job.progress.succeeded) == ("Active", 10)
