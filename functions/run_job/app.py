"""RunJobFunction: does the work messages on the work queue ask for (prepare, chunks, finalize),
and, on its schedule, re-sends the work of jobs whose message was lost (the sweeper).

Thin: Powertools wiring, one call into batchops.engine per SQS record. A record whose work raises
is reported in batchItemFailures, so SQS delivers it again (and to the DLQ after maxReceiveCount);
the ledger makes every redelivery safe. Environment: JOBS_TABLE, WORK_QUEUE_URL (required);
BATCHOPS_TASK_CONCURRENCY, BATCHOPS_CHUNK_SIZE, BATCHOPS_MULTIPART_THRESHOLD, BATCHOPS_PART_SIZE,
BATCHOPS_S3_ADDRESSING_STYLE, BATCHOPS_DEADLINE_MARGIN_SECONDS, BATCHOPS_MAX_ACTIVE_JOBS,
BATCHOPS_ASSUME_JOB_ROLE (true: every S3 call of a job is made as the job's RoleArn).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchops.clients import dynamodb_client, lazy, s3_client_with, s3_config, sqs_client, sts_client
from batchops.engine.job_clients import AssumedRoleClients
from batchops.engine.phases import Engine
from batchops.engine.sqs import SqsDispatcher, SqsWorker, WorkMessage
from batchops.engine.sweeper import Sweeper
from batchops.jobs.service import JobService
from batchops.settings import RunJobSettings
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.dynamodb_ledger import DynamoDBLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

settings = RunJobSettings.from_env(os.environ)
logger = Logger(service="batchops-run-job")
tracer = Tracer(service="batchops-run-job")
metrics = Metrics(namespace="BatchOps", service="batchops-run-job")
# Clients are built when first used: a sweep never needs S3, and with job roles this function's
# own S3 client is never used at all.
dynamodb = lazy(dynamodb_client)
s3_settings = s3_config(settings.engine.s3_connections, settings.s3_addressing_style)
s3 = lazy(lambda: s3_client_with(s3_settings))
ledger = DynamoDBLedger(settings.jobs_table, dynamodb)
dispatcher = SqsDispatcher(lazy(sqs_client), settings.work_queue_url)
store = DynamoDBJobStore(settings.jobs_table, dynamodb)
service = JobService(
    store,
    max_active_jobs=settings.max_active_jobs,
    live_progress=ledger.progress,
    on_change=dispatcher.on_job_change,
)
clients = AssumedRoleClients(lazy(sts_client), s3_settings) if settings.assume_job_role else None
engine = Engine(service, ledger, s3, settings.engine, clients=clients)
worker = SqsWorker(engine, dispatcher, settings.deadline_margin_seconds)
sweeper = Sweeper(engine, store, dispatcher, stale_seconds=settings.sweep_stale_seconds)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    message = WorkMessage.parse(record.body)
    logger.append_keys(job_id=message.job_id, work=message.kind, chunk=message.index, start=message.start)
    worker.handle(
        message,
        f"lambda:{lambda_context.aws_request_id}",
        lambda_context.get_remaining_time_in_millis,
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )
    metrics.add_metric(name=f"{message.kind.capitalize()}Done", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext
) -> PartialItemFailureResponse | dict[str, Any]:
    if event.get("detail-type") == "Scheduled Event":
        swept = sweeper.sweep()
        metrics.add_metric(name="JobsSwept", unit=MetricUnit.Count, value=len(swept))
        return {"swept": [{"jobId": s.job_id, "action": s.action} for s in swept]}
    return process_batch(event, context)


def process_batch(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # Imported by the first batch of messages, not at import: Powertools' batch utility imports
    # every event data class it has (about 20 ms), which a sweep never needs.
    from aws_lambda_powertools.utilities.batch import (  # noqa: PLC0415
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
