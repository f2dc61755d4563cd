"""COSInitiateRestoreObject: start restoring one archived object.

As in S3 Batch Operations, a task succeeds when the restore is initiated, not when the copy is
readable. A restore already running (409 RestoreAlreadyInProgress, also what a redelivered task
sees) and an object already restored (200, its expiry extended) both count as success.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from batchops.jobs.model import InitiateRestoreObject
from batchops.ops.outcome import TaskOutcome, outcome_of_error, success
from batchops.s3fast.client import call_steps
from batchops.s3fast.steps import Steps, run_blocking

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def restore_task(
    s3: S3Client, bucket: str, key: str, version_id: str | None, op: InitiateRestoreObject
) -> TaskOutcome:
    return run_blocking(restore_task_steps(s3, bucket, key, version_id, op))


def restore_task_steps(
    s3: S3Client, bucket: str, key: str, version_id: str | None, op: InitiateRestoreObject
) -> Steps[TaskOutcome]:
    """``restore_task`` as steps (``s3fast.steps``), to be made blocking or multiplexed."""
    version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
    request = {"Days": op.expiration_in_days, "GlacierJobParameters": {"Tier": op.job_tier.value}}
    params = {"Bucket": bucket, "Key": key, "RestoreRequest": request, **version}
    try:
        response = yield from call_steps(s3, "restore_object", params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "RestoreAlreadyInProgress":
            return success(409, "Restore already in progress")
        return outcome_of_error(exc)
    except BotoCoreError as exc:
        return outcome_of_error(exc)
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 202))
    if status == 200:
        return success(200, "Already restored; expiry updated")
    return success(status, "Restore initiated")
