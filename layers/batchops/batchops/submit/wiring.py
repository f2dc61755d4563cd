"""Build a Submitter from its settings: the one place targets are chosen."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from batchops.clients import dynamodb_client, lazy, s3control_client, sqs_client
from batchops.engine.sqs import SqsDispatcher
from batchops.jobs.service import JobService
from batchops.settings import SubmitSettings
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.submit.s3control import S3ControlTarget
from batchops.submit.service import Submitter
from batchops.submit.targets import Credentials, DirectTarget, HttpTarget, Target

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def submitter_from_settings(settings: SubmitSettings, s3: S3Client) -> Submitter:
    target: Target
    if settings.target == "direct":
        assert settings.jobs_table is not None
        queue = settings.work_queue_url
        dispatcher = SqsDispatcher(lazy(sqs_client), queue) if queue else None
        service = JobService(
            DynamoDBJobStore(settings.jobs_table, lazy(dynamodb_client)),
            max_active_jobs=settings.max_active_jobs,
            on_change=None if dispatcher is None else dispatcher.on_job_change,
        )
        target = DirectTarget(service)
    elif settings.target == "s3control":
        assert settings.account_id is not None
        target = S3ControlTarget(lazy(s3control_client), settings.account_id)
    else:
        credentials = (
            Credentials(settings.secret_id, settings.secret_key)
            if settings.secret_id is not None and settings.secret_key is not None
            else None
        )
        target = HttpTarget(settings.endpoint, credentials)
    return Submitter(settings.rules, s3, target, sweep_max_age=timedelta(hours=settings.sweep_max_age_hours))
