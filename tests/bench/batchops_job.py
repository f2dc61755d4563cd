"""The batchops executor as a benchmark peer: a job made as a user's would be, run by the CLI, checked after.

The parent writes a COSBatchOperations_CSV_V1 manifest (keys URL-encoded) into the stub's objects
directory, creates the job in a fresh SQLite store with the project's own JobService (no
confirmation, so it runs as soon as it is prepared), and measures ``batchops run --until-idle
--db DB`` against the stub. A run only counts if the job ended Complete with every task
succeeded and its completion report, read back from the stub, has one succeeded row per task:
a broken run cannot produce a fast number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from batchops.jobs.model import (
    DeleteObject,
    InitiateRestoreObject,
    Job,
    JobSpec,
    JobTier,
    Manifest,
    ManifestField,
    ManifestFormat,
    ManifestLocation,
    ManifestSpec,
    Operation,
    PutObjectCopy,
    ReportFormat,
    ReportScope,
    ReportSpec,
)
from batchops.jobs.service import JobService
from batchops.jobs.status import JobStatus
from batchops.settings import DEFAULT_APPID
from batchops.store.sqlite import SQLiteJobStore
from tests.bench.peer_boto3 import key_of

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SOURCE_BUCKET = "bench-src"
DESTINATION_BUCKET = "bench-dst"
MANIFEST_BUCKET = "bench-manifests"
REPORT_BUCKET = "bench-reports"
REPORT_PREFIX = "reports"


def write_manifest(objects_dir: Path, n: int, prefix: str) -> tuple[str, str]:
    """The manifest of ``n`` benchmark keys in the stub's objects directory: (key, ETag)."""
    key = f"manifest-{n}.csv"
    path = objects_dir / MANIFEST_BUCKET / key
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (f"{SOURCE_BUCKET},{quote_plus(key_of(prefix, i), safe='/')}\n" for i in range(n))
        path.write_text("".join(lines))
    return key, hashlib.md5(path.read_bytes()).hexdigest()


def operation(op: str) -> Operation:
    if op == "copy":
        return PutObjectCopy(target_resource=f"arn:aws:s3:::{DESTINATION_BUCKET}")
    if op == "restore":
        return InitiateRestoreObject(expiration_in_days=1, job_tier=JobTier.BULK)
    if op == "delete":
        return DeleteObject()
    raise ValueError(f"unknown operation {op!r}")


def job_spec(op: str, manifest_key: str, etag: str, token: str) -> JobSpec:
    """The benchmark's job: ``op`` on every key of the manifest, an AllTasks report, no confirmation."""
    return JobSpec(
        client_request_token=token,
        manifest=Manifest(
            ManifestLocation(f"arn:aws:s3:::{MANIFEST_BUCKET}/{manifest_key}", etag),
            ManifestSpec(ManifestFormat.CSV, (ManifestField.BUCKET, ManifestField.KEY)),
        ),
        operation=operation(op),
        priority=10,
        report=ReportSpec(
            bucket=f"arn:aws:s3:::{REPORT_BUCKET}",
            enabled=True,
            format=ReportFormat.CSV,
            scope=ReportScope.ALL_TASKS,
            prefix=REPORT_PREFIX,
        ),
        role_arn="arn:aws:iam::123456789012:role/bench",
        confirmation_required=False,
    )


def create_job(db: Path, op: str, manifest_key: str, etag: str) -> str:
    """A job in status New in a fresh store at ``db``; its JobId."""
    store = SQLiteJobStore(db)
    try:
        spec = job_spec(op, manifest_key, etag, f"bench-{db.stem}")
        return JobService(store, max_active_jobs=10).create(DEFAULT_APPID, spec).job_id
    finally:
        store.close()


def check_job(db: Path, job_id: str, n: int, s3: S3Client) -> str | None:
    """Why the run does not count (None: it does): job state, counters and report rows."""
    store = SQLiteJobStore(db)
    try:
        job = JobService(store, max_active_jobs=10).get(DEFAULT_APPID, job_id)
    finally:
        store.close()
    return check_completed(job, n, s3)


def check_completed(job: Job, n: int, s3: S3Client) -> str | None:
    """Why ``job`` did not do its ``n`` tasks (None: it did): its status, counters, report rows."""
    if job.status is not JobStatus.COMPLETE:
        return f"job ended {job.status.value}: {job.status_update_reason} {job.failure_reasons}"
    progress = job.progress
    if (progress.total, progress.succeeded, progress.failed) != (n, n, 0):
        return f"job counted {progress} for {n} tasks"
    try:
        statuses = report_statuses(job.job_id, s3)
    except ValueError as exc:
        return str(exc)
    if set(statuses) - {"succeeded"}:
        return f"report has {sorted(set(statuses) - {'succeeded'})} rows"
    if len(statuses) != n:
        return f"report has {len(statuses)} rows for {n} tasks"
    return None


def report_statuses(job_id: str, s3: S3Client) -> list[str]:
    """The TaskStatus of every row of the job's completion report, read back from S3.

    Raises ValueError if a results file does not match its MD5Checksum, or holds rows of another
    status than its manifest entry says."""
    manifest_key = f"{REPORT_PREFIX}/job-{job_id}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=REPORT_BUCKET, Key=manifest_key)["Body"].read())
    statuses: list[str] = []
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read()
        if hashlib.md5(body).hexdigest() != result["MD5Checksum"]:
            raise ValueError(f"report file {result['Key']} does not match its MD5Checksum")
        rows = [row[3] for row in csv.reader(io.StringIO(body.decode(), newline=""))]
        if set(rows) - {result["TaskExecutionStatus"]}:
            raise ValueError(f"report file {result['Key']} mixes statuses")
        statuses += rows
    return statuses
