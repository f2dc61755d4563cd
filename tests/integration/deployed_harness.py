"""Deployed mode as tests drive it: the stack's table and queues on moto, the jobs_api and run_job
functions imported as Lambda imports them, and the queue driven the way Lambda's event source
mapping drives it: receive a batch, invoke, delete what succeeded, let the rest become visible
again (and SQS moves a message that keeps failing to the DLQ)."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.conftest import EVENTS, ROOT, create_jobs_table
from tests.fault_proxy import FaultProxy
from tests.faults import route_through
from tests.helpers import restore_environment, set_environment

if TYPE_CHECKING:
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
        concurrent_chunks: bool = False,
        timeout: float = 60,
    ) -> None:
        """Be Lambda's event source mapping until ``done()``.

        ``duplicate_chunks``: SQS delivers every chunk message twice, one after the other.
        ``concurrent_chunks``: a second invocation runs the same chunk messages at the same time.
        """
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
            records = [self._record(m) for m in messages]
            twin = None
            if concurrent_chunks and (chunks := [r for r in records if '"kind":"chunk"' in r["body"]]):
                twin = threading.Thread(
                    target=self.run_job.lambda_handler, args=({"Records": chunks}, context())
                )
                twin.start()
            result = self.run_job.lambda_handler({"Records": records}, context())
            if twin is not None:
                twin.join()
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
        return sqs_record(message, self.queue_arn)


def sqs_record(message: Any, queue_arn: str) -> dict[str, Any]:
    """A received SQS message as Lambda's event source mapping hands it to the function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def load(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def deployment_fixture(moto_endpoint: str, request: pytest.FixtureRequest) -> Iterator[Deployment]:
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
    saved = set_environment(env)
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
        restore_environment(saved)
