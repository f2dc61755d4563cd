"""A deployed finalize too long for one invocation: it stops before its deadline with a checkpoint
in the ledger and hands on to a new message, and the sweep leaves it alone while it moves."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

import pytest

from batchops.report.writer import results_key
from tests.conftest import EVENTS, new_bucket
from tests.integration.deployed_harness import Context, Deployment
from tests.integration.invariants import JobView, assert_invariants, deleted
from tests.integration.jobs_harness import csv_manifest, put_manifest, read_report, request

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

APPID = "1250000000"
TASKS = 45  # 5 chunks of 10 (the harness's BATCHOPS_CHUNK_SIZE)


def no_time_left() -> Context:
    """An invocation already at its deadline (the harness's margin is 1 s)."""
    return Context(remaining_ms=1000)


def finalizes(deployment: Deployment) -> int:
    return [m.get("kind") for m in deployment.received].count("finalize")


def completing_job(deployment: Deployment, s3: S3Client) -> tuple[str, str, list[str]]:
    """A job of 45 deletes run through the queue until it is Completing, its report to write."""
    bucket = new_bucket(s3)
    keys = [f"dir/o {n:02d}+%" for n in range(TASKS)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    etag = put_manifest(s3, bucket, "m.csv", csv_manifest([(bucket, key) for key in keys]))
    job_id = deployment.create_job(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket))
    deployment.drive(lambda: deployment.job(job_id).status.value == "Completing")
    assert finalizes(deployment) == 0
    return job_id, bucket, keys


def assert_whole_report(
    deployment: Deployment, s3: S3Client, job_id: str, bucket: str, keys: list[str]
) -> None:
    """Complete, I1-I4, one results file per step in the layout's keys, rows in manifest order,
    nothing in progress and nothing left in the ledger."""
    job = deployment.job(job_id)
    assert_invariants(
        s3, JobView.from_job(job), [(bucket, key, "") for key in keys], deleted(s3), report_bucket=bucket
    )
    manifest, rows = read_report(s3, bucket, job_id)
    assert [r["Key"] for r in manifest["Results"]] == [
        results_key("reports", job_id, "succeeded", n) for n in range(TASKS // 10 + 1)
    ]
    assert [unquote_plus(row[1]) for row in rows["succeeded"]] == keys
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert deployment.run_job.ledger.finalize_checkpoint(job_id) is None


def test_a_finalize_at_its_deadline_hands_on_until_the_report_is_whole(
    deployment: Deployment, s3: S3Client
) -> None:
    # GIVEN a Completing job of five chunks
    job_id, bucket, keys = completing_job(deployment, s3)
    # WHEN every invocation starts at its deadline
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete", context=no_time_left)
    # THEN finalize wrote a segment and handed on, five times, the job Completing until the last
    assert finalizes(deployment) == 5
    # AND the report is whole: one file per step, every row once, in manifest order
    assert_whole_report(deployment, s3, job_id, bucket, keys)


def test_a_duplicated_finalize_message_changes_nothing(deployment: Deployment, s3: S3Client) -> None:
    # GIVEN a Completing job whose finalize message SQS delivers twice
    job_id, bucket, keys = completing_job(deployment, s3)
    body = json.dumps({"kind": "finalize", "appid": APPID, "job_id": job_id}, separators=(",", ":"))
    deployment.sqs.send_message(QueueUrl=deployment.queue_url, MessageBody=body)
    # WHEN the queue is driven with every invocation at its deadline
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete", context=no_time_left)
    # THEN the two chains went on from one checkpoint: the report is whole, each row once
    assert_whole_report(deployment, s3, job_id, bucket, keys)


@pytest.mark.parametrize("deployment", [{"BATCHOPS_SWEEP_STALE_SECONDS": "1"}], indirect=True)
def test_the_sweep_leaves_a_moving_finalize_alone_and_resumes_a_stalled_one(
    deployment: Deployment, s3: S3Client
) -> None:
    sweep_event = json.loads((EVENTS / "run_job" / "sweep.json").read_text())
    job_id, bucket, keys = completing_job(deployment, s3)
    # GIVEN a finalize going on a segment per invocation, whose job item last changed over the
    # stale time ago (when it became Completing) while its checkpoint moved just now
    deployment.drive(lambda: finalizes(deployment) >= 1, context=no_time_left)
    time.sleep(1.1)
    deployment.drive(lambda: finalizes(deployment) >= 2, context=no_time_left)
    # WHEN the schedule fires THEN nothing is sent: a second finalizer would only be refused
    assert deployment.run_job.lambda_handler(sweep_event, Context()) == {"swept": []}
    # WHEN its next message is lost, and the checkpoint has not moved for the stale time
    deployment.sqs.purge_queue(QueueUrl=deployment.queue_url)
    time.sleep(1.1)
    # THEN the sweep sends a finalize, which goes on from the checkpoint to the end
    assert deployment.run_job.lambda_handler(sweep_event, Context()) == {
        "swept": [{"jobId": job_id, "action": "finalize"}]
    }
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete", context=no_time_left)
    assert finalizes(deployment) == 5
    assert_whole_report(deployment, s3, job_id, bucket, keys)


@pytest.mark.parametrize("deployment", [{"BATCHOPS_SWEEP_STALE_SECONDS": "1"}], indirect=True)
def test_the_sweep_leaves_a_job_alone_while_a_finalizer_holds_it(
    deployment: Deployment, s3: S3Client
) -> None:
    sweep_event = json.loads((EVENTS / "run_job" / "sweep.json").read_text())
    job_id, bucket, keys = completing_job(deployment, s3)
    deployment.sqs.purge_queue(QueueUrl=deployment.queue_url)
    # GIVEN a Completing job unchanged for the stale time, with no checkpoint yet, whose
    # finalizer is at work (its claim renewed as it writes its first step)
    time.sleep(1.1)
    ledger = deployment.run_job.ledger
    assert ledger.claim_finalize(job_id, "at-work", time.time(), time.time() + 60)
    # WHEN the schedule fires THEN nothing is sent
    assert deployment.run_job.lambda_handler(sweep_event, Context()) == {"swept": []}
    # WHEN that finalizer dies and its claim runs out THEN the sweep sends a finalize, which ends
    # the job with its whole report
    assert ledger.claim_finalize(job_id, "at-work", time.time(), time.time())
    time.sleep(0.01)
    assert deployment.run_job.lambda_handler(sweep_event, Context()) == {
        "swept": [{"jobId": job_id, "action": "finalize"}]
    }
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete", context=no_time_left)
    assert_whole_report(deployment, s3, job_id, bucket, keys)
