"""The job service: creation, the lifecycle through the store, and its refusals."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from batchops.api.create_job import parse_create_job
from batchops.jobs.errors import DuplicateRequestError, JobStateError, NoSuchJobError, TooManyJobsError
from batchops.jobs.model import JobFailure, JobSpec
from batchops.jobs.service import JobService
from batchops.jobs.status import JobStatus, RequestedJobStatus
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import SEED_XML
from tests.contract.test_job_store import run_together

APPID = "1250000000"
T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def spec(token: str = "t-1", confirm: bool = False) -> JobSpec:
    body = SEED_XML.read_bytes().replace(b"184ce261-18af-5e3d-3e30-253723cfd937", token.encode())
    if confirm:
        body = body.replace(b"<ConfirmationRequired>false", b"<ConfirmationRequired>true")
    return parse_create_job(body)


@pytest.fixture
def service(sqlite_store: SQLiteJobStore) -> JobService:
    ticks = itertools.count()
    ids = itertools.count(1)
    return JobService(
        sqlite_store,
        max_active_jobs=3,
        clock=lambda: T0 + timedelta(seconds=next(ticks)),
        job_ids=lambda: f"job-{next(ids)}",
    )


def test_create_makes_a_new_job_from_the_spec(service: JobService) -> None:
    job = service.create(APPID, spec())
    assert (job.job_id, job.status, job.priority, job.creation_time) == ("job-1", JobStatus.NEW, 10, T0)
    assert service.describe(APPID, "job-1") == job


def test_a_reused_token_names_the_first_job(service: JobService) -> None:
    service.create(APPID, spec("same"))
    with pytest.raises(DuplicateRequestError) as caught:
        service.create(APPID, spec("same"))
    assert caught.value.existing_job_id == "job-1"


def test_the_limit_of_active_jobs(service: JobService) -> None:
    for n in range(3):
        service.create(APPID, spec(f"t{n}"))
    with pytest.raises(TooManyJobsError):
        service.create(APPID, spec("t3"))


def test_confirmation_and_termination(service: JobService) -> None:
    job = service.create(APPID, spec(confirm=True))
    service.transition(APPID, job.job_id, JobStatus.PREPARING)
    service.transition(APPID, job.job_id, JobStatus.SUSPENDED, reason="awaiting confirmation")
    ready = service.update_status(APPID, job.job_id, RequestedJobStatus.READY, "ok")
    assert (ready.status, ready.status_update_reason, ready.termination_date) == (JobStatus.READY, "ok", None)
    cancelled = service.update_status(APPID, job.job_id, RequestedJobStatus.CANCELLED, None)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.status_update_reason == "ok"
    assert cancelled.termination_date is not None
    assert service.describe(APPID, job.job_id) == cancelled


def test_failures_are_recorded(service: JobService) -> None:
    job = service.create(APPID, spec())
    service.transition(APPID, job.job_id, JobStatus.PREPARING)
    failed = service.transition(
        APPID,
        job.job_id,
        JobStatus.FAILED,
        reason="manifest unreadable",
        failure=JobFailure("ManifestETagMismatch", "etag differs"),
    )
    assert failed.failure_reasons == (JobFailure("ManifestETagMismatch", "etag differs"),)
    assert service.describe(APPID, job.job_id).failure_reasons == failed.failure_reasons


def test_illegal_moves_and_unknown_jobs(service: JobService) -> None:
    job = service.create(APPID, spec())
    with pytest.raises(JobStateError, match="cannot move from New to Active"):
        service.transition(APPID, job.job_id, JobStatus.ACTIVE)
    with pytest.raises(NoSuchJobError):
        service.describe(APPID, "job-404")
    with pytest.raises(NoSuchJobError):
        service.describe("other-appid", job.job_id)
    with pytest.raises(JobStateError, match="can be deleted"):
        service.delete(APPID, job.job_id)


def test_priority_unchanged_writes_nothing(service: JobService, sqlite_store: SQLiteJobStore) -> None:
    job = service.create(APPID, spec())
    service.update_priority(APPID, job.job_id, 10)
    record = sqlite_store.get_job(APPID, job.job_id)
    assert record is not None and record.version == 1
    service.update_priority(APPID, job.job_id, 11)
    record = sqlite_store.get_job(APPID, job.job_id)
    assert record is not None and (record.version, record.priority) == (2, 11)


def test_concurrent_requests_re_decide_on_conflict(service: JobService) -> None:
    # GIVEN a running job
    job = service.create(APPID, spec())
    for status in (JobStatus.PREPARING, JobStatus.READY, JobStatus.ACTIVE):
        service.transition(APPID, job.job_id, status)
    # WHEN the engine completes it while users cancel it, all at once
    results = run_together(
        6,
        lambda i: (
            service.transition(APPID, job.job_id, JobStatus.COMPLETE)
            if i == 0
            else service.update_status(APPID, job.job_id, RequestedJobStatus.CANCELLED, "stop")
        ),
    )
    # THEN exactly one side wins: Complete with every cancel refused, or Cancelling with the
    # completion refused and every cancel answered with the Cancelling job
    final = service.describe(APPID, job.job_id)
    engine, cancels = results[0], results[1:]
    if final.status is JobStatus.COMPLETE:
        assert getattr(engine, "status", None) is JobStatus.COMPLETE
        assert all(isinstance(r, JobStateError) for r in cancels), cancels
    else:
        assert final.status is JobStatus.CANCELLING
        assert isinstance(engine, JobStateError)
        assert all(getattr(r, "status", None) is JobStatus.CANCELLING for r in cancels), cancels
