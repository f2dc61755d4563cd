"""The deployed safety net: re-send the work a job waits for when its message was lost.

Deployed, work moves on messages set off by status changes. The change is written first and the
message sent after, so a send that fails (or a message dead-lettered) would leave a job waiting
for ever. On a schedule, the sweeper looks at the jobs that have not ended and have not changed
for a while (the table's sparse "Open" index) and sends again what each one waits for. Every
message is safe to repeat, so a sweep that guesses wrong costs a little work, never a second
count. A Preparing job does not change while a long manifest is planned over several messages, so
it is left alone while its prepare checkpoint has moved within the stale time: a second preparer
would only lose the race for the checkpoint and stop. A Completing, Failing or Cancelling job
does not change either while its report is written over several finalize steps, so it is left
alone while a finalizer holds its claim (renewed as it writes) or its report checkpoint has moved
within the stale time. It also fails jobs left Suspended for more than 30 days, as S3 Batch
Operations does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from batchops.engine.phases import Engine
from batchops.engine.sqs import Kind, SqsDispatcher, WorkMessage
from batchops.jobs.errors import JobStateError
from batchops.jobs.model import JobFailure
from batchops.jobs.records import record_to_job
from batchops.jobs.status import JobStatus
from batchops.store.base import JobRecord

log = logging.getLogger(__name__)

SUSPENDED_DAYS = 30
_SENDS: dict[JobStatus, Kind] = {
    JobStatus.NEW: "prepare",
    JobStatus.PREPARING: "prepare",
    JobStatus.READY: "activate",
    JobStatus.COMPLETING: "finalize",
    JobStatus.FAILING: "finalize",
    JobStatus.CANCELLING: "finalize",
}


class OpenJobs(Protocol):
    def open_jobs(self, changed_before: float, limit: int = 1000) -> list[JobRecord]: ...


@dataclass(frozen=True)
class Swept:
    job_id: str
    action: str


class Sweeper:
    def __init__(
        self,
        engine: Engine,
        jobs: OpenJobs,
        dispatcher: SqsDispatcher,
        *,
        stale_seconds: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._jobs = jobs
        self._dispatcher = dispatcher
        self._stale = stale_seconds
        self._clock = clock

    def sweep(self) -> list[Swept]:
        now = self._clock()
        done: list[Swept] = []
        queue_empty: bool | None = None
        for record in self._jobs.open_jobs(now - self._stale):
            job = record_to_job(record)
            kind = _SENDS.get(job.status)
            if job.status is JobStatus.PREPARING and self._preparing_moves(job.job_id, now):
                continue
            if kind == "finalize" and self._finalizing_moves(job.job_id, now):
                continue
            if kind is not None:
                self._dispatcher.send([WorkMessage(kind, job.appid, job.job_id)])
                done.append(Swept(job.job_id, kind))
            elif job.status is JobStatus.SUSPENDED:
                if datetime.fromtimestamp(now, UTC) - job.creation_time > timedelta(days=SUSPENDED_DAYS):
                    with contextlib.suppress(JobStateError):
                        self._engine.service.transition(
                            job.appid,
                            job.job_id,
                            JobStatus.FAILED,
                            reason="Not confirmed within 30 days",
                            failure=JobFailure(
                                "SuspendedTooLong", "The job waited for confirmation for over 30 days."
                            ),
                        )
                    done.append(Swept(job.job_id, "failed"))
            elif job.status is JobStatus.ACTIVE:
                if queue_empty is None:
                    queue_empty = self._dispatcher.queue_depth() == 0
                # Chunks may still wait in the queue or run: only an idle job with nothing queued
                # has lost its messages.
                if queue_empty and self._engine.ledger.busy_chunks(job.job_id, now) == 0:
                    self._engine.settle(job.appid, job.job_id)
                    if self._engine.service.get(job.appid, job.job_id).status is JobStatus.ACTIVE:
                        self._dispatcher.send([WorkMessage("fanout", job.appid, job.job_id)])
                        done.append(Swept(job.job_id, "fanout"))
                    else:
                        done.append(Swept(job.job_id, "settled"))
        if done:
            log.info("sweep re-sent work for %d job(s): %s", len(done), done)
        return done

    def _preparing_moves(self, job_id: str, now: float) -> bool:
        checkpoint = self._engine.ledger.prepare_checkpoint(job_id)
        return checkpoint is not None and checkpoint.updated > now - self._stale

    def _finalizing_moves(self, job_id: str, now: float) -> bool:
        ledger = self._engine.ledger
        if ledger.finalize_claimed(job_id, now):
            return True  # a finalizer is at work: a second one would only be refused
        checkpoint = ledger.finalize_checkpoint(job_id)
        return checkpoint is not None and checkpoint.updated > now - self._stale
