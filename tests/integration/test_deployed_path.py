"""Deployed mode: the jobs_api and run_job handlers on moto's DynamoDB, SQS and S3 over HTTP,
with the queue driven the way Lambda drives it: receive a batch, invoke, delete what succeeded,
let the rest become visible again, and move a message that keeps failing to the DLQ."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.conftest import EVENTS, ROOT, create_jobs_table, new_bucket
from tests.fault_proxy import FaultProxy
from tests.faults import count_only, inject, route_through, s3_error
from tests.integration.jobs_harness import csv_manifest, put_manifest, read_report, request

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient


@dataclass
class Context:
    remaining_ms: int = 600_000
    function_name: str = "RunJobFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:RunJobFunction"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Deployment:
    api: ModuleType
    run_job: ModuleType
    sqs: SQSClient
    queue_url: str
    dlq_url: str
    queue_arn: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def create_job(self, body: bytes) -> str:
        event = json.loads((EVENTS / "jobs_api" / "create_job.json").read_text())
        event["body"] = body.decode()
        for headers in (event["headers"], event["multiValueHeaders"]):
            headers.pop("Content-MD5")
        result = self.api.lambda_handler(event, Context(function_name="JobsApiFunction"))
        assert result["statusCode"] == 200, result["body"]
        from lxml import etree

        job_id = etree.fromstring(result["body"].encode()).findtext("JobId")
        assert job_id
        return job_id

    def job(self, job_id: str) -> Any:
        return self.run_job.service.describe("1250000000", job_id)

    def drive(
        self,
        done: Callable[[], bool],
        context: Callable[[], Context] = Context,
        duplicate_chunks: bool = False,
        timeout: float = 60,
    ) -> None:
        """Be Lambda's event source mapping until ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the queue did not finish the job"
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                time.sleep(0.05)
                continue
            if duplicate_chunks:  # SQS may deliver any message twice: make it so for every chunk
                extra = [
                    m
                    for m in messages
                    if '"kind":"chunk"' in m["Body"] and m["MessageId"] not in self._duplicated
                ]
                for m in extra:
                    self._duplicated.add(m["MessageId"])
                    self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=m["Body"])
            self.received.extend(json.loads(m["Body"]) if m["Body"].startswith("{") else {} for m in messages)
            result = self.run_job.lambda_handler({"Records": [self._record(m) for m in messages]}, context())
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            for m in messages:
                if m["MessageId"] in failed:  # its visibility timeout "expires" at once
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    _duplicated: set[str] = field(default_factory=set)

    def _record(self, message: Any) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        }


def load(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def deployment(moto_endpoint: str, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    # GIVEN the stack's table and queues on moto, and both functions imported as Lambda imports them
    suffix = uuid.uuid4().hex[:8]
    table = create_jobs_table(boto3.client("dynamodb", endpoint_url=moto_endpoint), f"jobs-{suffix}")
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
    dlq_url = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"work-{suffix}",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})},
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # S3 through a fault proxy: the engine's lean client sends without botocore's hooks
    proxy = FaultProxy(moto_endpoint)
    env = {
        "JOBS_TABLE": table,
        "WORK_QUEUE_URL": queue_url,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ENDPOINT_URL_S3": proxy.url,
        "BATCHOPS_CHUNK_SIZE": "10",
        "BATCHOPS_TASK_CONCURRENCY": "4",
        "BATCHOPS_S3_ADDRESSING_STYLE": "path",
        "BATCHOPS_DEADLINE_MARGIN_SECONDS": "1",
        **getattr(request, "param", {}),
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        run_job = load(f"run_job_{suffix}", "functions/run_job/app.py")
        route_through(run_job.s3, proxy)
        yield Deployment(
            api=load(f"jobs_api_{suffix}", "functions/jobs_api/app.py"),
            run_job=run_job,
            sqs=sqs,
            queue_url=queue_url,
            dlq_url=dlq_url,
            queue_arn=queue_arn,
        )
    finally:
        proxy.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


def test_duplicate_delivery_counts_once(deployment: Deployment, s3: S3Client) -> None:
    body, src, _ = copy_job(s3, 30)
    job_id = deployment.create_job(body)
    deployment.drive(lambda: deployment.job(job_id).status.value == "Complete", duplicate_chunks=True)
    assert [m.get("kind") for m in deployment.received].count("chunk") == 6  # each of 3 chunks twice
    job = deployment.job(job_id)
    assert (job.progress.succeeded, job.progress.failed) == (30, 0)
    _, rows = read_report(s3, src, job_id)
    assert len(rows["succeeded"]) == 30


def test_a_chunk_that_meets_its_deadline_hands_the_rest_on(deployment: Deployment, s3: S3Client) -> None:
    # GIVEN slow copies and invocations that have about 0.3 s before their deadline
    body, src, _ = copy_job(s3, 20)
    inject(deployment.run_job.s3, "CopyObject", lambda _request, _count: time.sleep(0.2))
    job_id = deployment.create_job(body)
    # WHEN the queue is driven
    deployment.drive(
        lambda: deployment.job(job_id).status.value == "Complete", context=lambda: Context(remaining_ms=1_300)
    )
    # THEN chunks were handed on part-way, and still every task counts once
    continuations = [m for m in deployment.received if m.get("kind") == "chunk" and m.get("start", 0) > 0]
    assert continuations
    job = deployment.job(job_id)
    assert (job.progress.succeeded, job.progress.failed) == (20, 0)
    _, rows = read_report(s3, src, job_id)
    assert sorted(r[1] for r in rows["succeeded"]) == sorted(f"o+{n:03d}" for n in range(20))


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
