"""Jobs act as their RoleArn: STS AssumeRole on moto, one client per role, refused roles fail the job."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from batchops.api.create_job import parse_create_job
from batchops.clients import s3_config
from batchops.engine.job_clients import AssumedRoleClients, JobRoleError
from batchops.jobs.model import Job
from batchops.jobs.status import JobStatus
from tests.conftest import SEED_XML, new_bucket
from tests.faults import count_only, inject
from tests.integration.jobs_harness import csv_manifest, put_manifest, request

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def job_with_role(role: str) -> Job:
    body = SEED_XML.read_bytes().replace(
        b"qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole", role.encode()
    )
    spec = parse_create_job(body)
    return Job("job-1", "1", spec, JobStatus.ACTIVE, datetime.now(UTC), spec.priority)


def test_a_job_acts_as_its_role(moto_endpoint: str, s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    sts = boto3.client("sts", endpoint_url=moto_endpoint)
    calls = inject(sts, "AssumeRole", count_only())
    clients = AssumedRoleClients(sts, s3_config(8, "path"))
    job = job_with_role("arn:aws:iam::123456789012:role/batchops-job-demo")
    # WHEN the job's client is asked for twice
    first, second = clients.s3_for(job), clients.s3_for(job)
    # THEN the role was assumed once, with the job's RoleArn, and the client works
    assert first is second
    assert len(calls.seen) == 1
    sent = calls.seen[0].body
    sent_text = sent.decode() if isinstance(sent, bytes) else str(sent)
    assert "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbatchops-job-demo" in sent_text
    bucket = new_bucket(s3)
    first.put_object(Bucket=bucket, Key="k", Body=b"as the job's role")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"as the job's role"


def test_a_role_that_is_not_an_iam_role_is_refused(moto_endpoint: str) -> None:
    clients = AssumedRoleClients(boto3.client("sts", endpoint_url=moto_endpoint), s3_config(8))
    with pytest.raises(JobRoleError, match="not an IAM role"):
        clients.s3_for(job_with_role("qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole"))


def test_an_unassumable_role_fails_the_job_saying_so(
    moto_endpoint: str, s3: S3Client, tmp_path: Path
) -> None:
    from batchops.cli.main import local_service
    from batchops.engine.phases import Engine
    from batchops.engine.settings import EngineSettings
    from batchops.store.sqlite import SQLiteJobStore

    store = SQLiteJobStore(tmp_path / "jobs.db")
    service = local_service(store, 10)
    engine = Engine(
        service,
        store,
        s3,
        EngineSettings(),
        clients=AssumedRoleClients(boto3.client("sts", endpoint_url=moto_endpoint), s3_config(8)),
    )
    bucket = new_bucket(s3)
    etag = put_manifest(s3, bucket, "m.csv", csv_manifest([(bucket, "a")]))
    body = request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket).replace(
        b"arn:aws:iam::123456789012:role/batch", b"qcs::cam::uin/1:roleName/x"
    )
    job = service.create("1", parse_create_job(body))
    engine.prepare("1", job.job_id)
    failed = service.describe("1", job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.failure_reasons[0].code == "JobRoleNotAssumable"
    engine.close()
    store.close()
