"""The job service: the one place jobs are created, read and changed.

Every change is read, decide, compare-and-set: the store refuses a write if the job moved since it
was read, and the service then re-reads and decides again. So two concurrent changes never both
win, and a change that became pointless (a second cancel) answers with the job as it now is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from batchops.jobs.errors import (
    DuplicateRequestError,
    InvalidNextTokenError,
    JobStateError,
    JobStoreUnavailableError,
    NoSuchJobError,
    TooManyJobsError,
)
from batchops.jobs.model import Job, JobFailure, JobSpec
from batchops.jobs.records import job_to_record, record_to_job
from batchops.jobs.status import (
    IllegalTransitionError,
    JobStatus,
    RequestedJobStatus,
    check_transition,
    is_terminal,
    target_of_request,
)
from batchops.store.base import (
    ActiveLimitReachedError,
    DuplicateTokenError,
    JobRecord,
    JobStore,
    StoreUnavailableError,
    UnknownJobError,
    VersionConflictError,
)

MAX_CAS_ATTEMPTS = 8
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_job_id() -> str:
    return str(uuid.uuid4())


class JobService:
    def __init__(
        self,
        store: JobStore,
        *,
        max_active_jobs: int,
        clock: Callable[[], datetime] = utc_now,
        job_ids: Callable[[], str] = new_job_id,
        live_progress: Callable[[str], tuple[int, int]] | None = None,
        on_change: Callable[[Job | None, Job], None] | None = None,
    ) -> None:
        self._store = store
        self._max_active_jobs = max_active_jobs
        self._clock = clock
        self._job_ids = job_ids
        # Where a running job's (succeeded, failed) counts come from: the engine's ledger.
        self._live_progress = live_progress
        # Told (before, after) of every write; the deployed dispatcher turns status changes into work.
        self._on_change = on_change

    def create(self, appid: str, spec: JobSpec) -> Job:
        """Create a job in status New.

        Idempotent on (appid, ClientRequestToken): a reused token raises DuplicateRequestError
        naming the job the token made, and writes nothing.
        """
        job = Job(
            job_id=self._job_ids(),
            appid=appid,
            spec=spec,
            status=JobStatus.NEW,
            creation_time=self._clock(),
            priority=spec.priority,
        )
        with _store_errors():
            try:
                self._store.insert_job(job_to_record(job, version=1), self._max_active_jobs)
            except DuplicateTokenError as exc:
                raise DuplicateRequestError(exc.existing_job_id) from exc
            except ActiveLimitReachedError as exc:
                raise TooManyJobsError(exc.limit) from exc
        self._notify(None, job)
        return job

    def describe(self, appid: str, job_id: str) -> Job:
        """The job as DescribeJob shows it, a running job's counters read live from the ledger."""
        return self._with_live_progress(self.get(appid, job_id))

    def get(self, appid: str, job_id: str, *, consistent: bool = True) -> Job:
        """The job as stored: one read of one item, for workers that look at it often.

        ``consistent`` False: a cheaper read that may be a second or so behind, for a look that
        is repeated (is the job still Active?) and that decides nothing by itself.
        """
        return record_to_job(self._read(appid, job_id, consistent))

    def list(
        self, appid: str, statuses: frozenset[JobStatus] | None, max_results: int, next_token: str | None
    ) -> tuple[list[Job], str | None]:
        """Jobs newest first; the next token is the last JobId of this page, as in COS."""
        with _store_errors():
            try:
                page = self._store.list_jobs(
                    appid,
                    None if statuses is None else frozenset(s.value for s in statuses),
                    max_results,
                    next_token,
                )
            except UnknownJobError as exc:
                raise InvalidNextTokenError(next_token or "") from exc
        return [self._with_live_progress(record_to_job(r)) for r in page.records], page.next_after_job_id

    def update_priority(self, appid: str, job_id: str, priority: int) -> Job:
        def change(job: Job) -> Job | None:
            if is_terminal(job.status):
                raise JobStateError(f"The job is already {job.status.value}; its priority cannot change.")
            return None if job.priority == priority else replace(job, priority=priority)

        return self._change(appid, job_id, change)

    def update_status(
        self, appid: str, job_id: str, requested: RequestedJobStatus, reason: str | None
    ) -> Job:
        """Confirm (Ready) a Suspended job, or cancel a job that has not ended."""

        def change(job: Job) -> Job | None:
            try:
                target = target_of_request(job.status, requested)
            except IllegalTransitionError as exc:
                raise JobStateError(exc.why) from exc
            return None if target is None else self._moved(job, target, reason)

        return self._change(appid, job_id, change)

    def transition(
        self,
        appid: str,
        job_id: str,
        target: JobStatus,
        *,
        reason: str | None = None,
        failure: JobFailure | None = None,
        total_tasks: int | None = None,
        chunk_count: int | None = None,
        counts: tuple[int, int] | None = None,
    ) -> Job:
        """Move a job along an edge of the lifecycle (the engine's entry point).

        ``total_tasks`` is set when preparing ends; ``counts`` (succeeded, failed) are the final
        figures when the job ends.
        """

        def change(job: Job) -> Job:
            try:
                check_transition(job.status, target)
            except IllegalTransitionError as exc:
                raise JobStateError(exc.why) from exc
            moved = self._moved(job, target, reason)
            if failure is not None:
                moved = replace(moved, failure_reasons=(*moved.failure_reasons, failure))
            if total_tasks is not None:
                moved = replace(moved, progress=replace(moved.progress, total=total_tasks))
            if chunk_count is not None:
                moved = replace(moved, chunk_count=chunk_count)
            if counts is not None:
                moved = replace(
                    moved, progress=replace(moved.progress, succeeded=counts[0], failed=counts[1])
                )
            return moved

        return self._change(appid, job_id, change)

    def delete(self, appid: str, job_id: str) -> None:
        """Forget a job that has ended (and free its ClientRequestToken)."""
        for _ in range(MAX_CAS_ATTEMPTS):
            record = self._read(appid, job_id)
            if record.active:
                raise JobStateError(
                    f"Only a Complete, Failed or Cancelled job can be deleted; this job is {record.status}."
                )
            with _store_errors():
                try:
                    self._store.delete_job(record)
                except VersionConflictError:
                    continue
            return
        raise JobStoreUnavailableError("the job kept changing while being deleted")

    def _notify(self, before: Job | None, after: Job) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(before, after)
        except Exception:
            # The write stands; what it should have set off is recovered by the next sweep.
            log.exception(
                "job %s: could not dispatch the work its change to %s calls for", after.job_id, after.status
            )

    def _moved(self, job: Job, target: JobStatus, reason: str | None) -> Job:
        now = self._clock()
        moved = replace(
            job,
            status=target,
            status_update_reason=reason if reason is not None else job.status_update_reason,
            termination_date=now if is_terminal(target) else None,
        )
        if target is JobStatus.ACTIVE:
            moved = replace(moved, active_since=now)
        elif job.status is JobStatus.ACTIVE and job.active_since is not None:
            # Leaving Active: bank the time spent in it.
            elapsed = job.progress.elapsed_active_seconds + int((now - job.active_since).total_seconds())
            moved = replace(
                moved, active_since=None, progress=replace(job.progress, elapsed_active_seconds=elapsed)
            )
        return moved

    def _with_live_progress(self, job: Job) -> Job:
        """A running job's counters come from the ledger; a finished job's are in its record."""
        if self._live_progress is None or is_terminal(job.status) or job.progress.total == 0:
            return job
        with _store_errors():
            succeeded, failed = self._live_progress(job.job_id)
        elapsed = job.progress.elapsed_active_seconds
        if job.active_since is not None:
            elapsed += int((self._clock() - job.active_since).total_seconds())
        return replace(
            job,
            progress=replace(
                job.progress, succeeded=succeeded, failed=failed, elapsed_active_seconds=elapsed
            ),
        )

    def _change(self, appid: str, job_id: str, change: Callable[[Job], Job | None]) -> Job:
        for _ in range(MAX_CAS_ATTEMPTS):
            record = self._read(appid, job_id)
            job = record_to_job(record)
            changed = change(job)
            if changed is None:
                return job
            with _store_errors():
                try:
                    self._store.replace_job(record, job_to_record(changed, version=record.version + 1))
                except VersionConflictError:
                    continue
            self._notify(job, changed)
            return changed
        raise JobStoreUnavailableError("the job kept changing under concurrent updates")

    def _read(self, appid: str, job_id: str, consistent: bool = True) -> JobRecord:
        with _store_errors():
            record = self._store.get_job(appid, job_id, consistent)
        if record is None:
            raise NoSuchJobError(job_id)
        return record


@contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except StoreUnavailableError as exc:
        raise JobStoreUnavailableError(str(exc)) from exc
