"""The JobStore contract every store implements, in plain values.

Stores know nothing of the job model: a job is a JobRecord whose indexed fields the store reads
and whose ``body`` it keeps verbatim. Every write is conditional, so the store, not its callers,
is what makes token uniqueness, the active-job limit and status changes atomic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class JobRecord:
    appid: str
    job_id: str
    client_request_token: str
    status: str
    priority: int
    creation_time: datetime
    active: bool
    """True while the job counts against the active-job limit (it is not terminal)."""
    version: int
    """Bumped by every update; updates are compare-and-set on it."""
    body: str
    """Everything else about the job, serialized by the job layer; opaque to the store."""


@dataclass(frozen=True)
class JobPage:
    records: list[JobRecord]
    next_after_job_id: str | None


class StoreError(Exception):
    """Base of the errors a store raises; anything else escaping a store is a bug."""


class StoreUnavailableError(StoreError):
    """The store could not be reached or did not answer in time. Safe to retry."""


class DuplicateTokenError(StoreError):
    def __init__(self, existing_job_id: str) -> None:
        super().__init__(f"token already used by job {existing_job_id}")
        self.existing_job_id = existing_job_id


class ActiveLimitReachedError(StoreError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} active jobs")
        self.limit = limit


class VersionConflictError(StoreError):
    """The record changed (or vanished) since it was read: read again and re-decide."""


class UnknownJobError(StoreError):
    """A paging cursor names a job this appid does not have."""


class JobStore(Protocol):
    def insert_job(self, record: JobRecord, max_active: int) -> None:
        """Create a job and claim its (appid, token) atomically.

        Raises DuplicateTokenError if the token is taken (nothing written),
        ActiveLimitReachedError if ``max_active`` active jobs exist for the appid.
        """

    def get_job(self, appid: str, job_id: str, consistent: bool = True) -> JobRecord | None:
        """The job, or None if the appid has no such job.

        ``consistent`` False allows a read that may miss a write of the last second or so (half
        the price in DynamoDB), for a look that is repeated anyway.
        """

    def list_jobs(
        self, appid: str, statuses: frozenset[str] | None, limit: int, after_job_id: str | None
    ) -> JobPage:
        """Jobs newest first, filtered by status, at most ``limit``, after a previous page's last job.

        Raises UnknownJobError if ``after_job_id`` is not a job of the appid.
        """

    def replace_job(self, old: JobRecord, new: JobRecord) -> None:
        """Write ``new`` if the stored job still has ``old.version``; keep the active count true.

        Raises VersionConflictError otherwise.
        """

    def delete_job(self, record: JobRecord) -> None:
        """Delete the job and its token if it still has ``record.version``.

        Raises VersionConflictError otherwise.
        """

    def close(self) -> None:
        """Release connections."""


# --- The chunk ledger: how work is handed out and each task accounted for exactly once -----------


@dataclass(frozen=True)
class ChunkRecord:
    index: int
    first_ordinal: int
    task_count: int
    payload: bytes
    """The chunk's tasks, encoded by the manifest layer; opaque to the store."""


@dataclass(frozen=True)
class ChunkClaim:
    """A chunk leased to one worker, to run from ``start`` (tasks before it are accounted for)."""

    appid: str
    job_id: str
    chunk: ChunkRecord
    start: int


@dataclass(frozen=True)
class Segment:
    """The outcome of tasks ``start`` to ``end`` (exclusive) of one chunk, recorded exactly once."""

    index: int
    start: int
    end: int
    succeeded: int
    failed: int
    results: bytes
    """The tasks' outcomes, encoded by the engine; opaque to the store."""


@dataclass(frozen=True)
class PrepareCheckpoint:
    """How far preparing a job has got, so that it can stop before a deadline and go on later.

    Chunks ``0 .. next_index - 1`` (the tasks before ``next_ordinal``) are stored, and the
    manifest goes on at ``position`` (encoded by the manifest layer; opaque to the store).
    ``done``: the whole manifest is planned, ``next_index`` chunks of ``next_ordinal`` tasks.
    ``updated``: when it was written (the sweeper leaves a prepare that is moving alone).
    """

    next_index: int
    next_ordinal: int
    position: str
    done: bool
    updated: float


@dataclass(frozen=True)
class FinalizeCheckpoint:
    """How far writing a job's report has got, so that finalize can stop before a deadline and
    the next finalize go on from there.

    ``step``: how many times it was stored (each store is compare-and-set on it). ``state``: where
    the report stands (encoded by the report layer; opaque to the store). ``updated``: when it was
    written (the sweeper leaves a finalize that is moving alone).
    """

    step: int
    state: str
    updated: float


class ChunkLedger(Protocol):
    """Chunks of a prepared job, their leases, and the segments that account for their tasks.

    A chunk's tasks are accounted for by a chain of segments: the first starts at 0, each next one
    where the previous ended. At most one segment starts at any (chunk, start): a worker that
    finds one already there discards its own outcomes, so a task is never counted twice however
    often its chunk is delivered, run concurrently, or cut off and run again.
    """

    def put_chunks(self, job_id: str, chunks: Sequence[ChunkRecord]) -> None:
        """Store chunks of a job being prepared; storing the same chunk again changes nothing."""

    def get_chunk(self, job_id: str, index: int) -> ChunkRecord | None:
        """One chunk of a job, or None if the job has no such chunk (any more)."""

    def prepare_checkpoint(self, job_id: str) -> PrepareCheckpoint | None:
        """How far preparing the job has got; None before its first checkpoint."""

    def advance_prepare(
        self, job_id: str, expected: PrepareCheckpoint | None, checkpoint: PrepareCheckpoint
    ) -> bool:
        """Store ``checkpoint`` if the stored one is still ``expected`` (None: none yet), compared
        by ``next_index`` and ``done``. False if another preparer moved it first, or the ledger
        was dropped: the caller has been overtaken and stops."""

    def hold_chunk(self, job_id: str, index: int, worker: str, now: float, until: float) -> bool:
        """Lease a delivered chunk to ``worker`` until ``until``, unless another worker holds it
        (a lease that has not expired at ``now``). True if ``worker`` holds it now."""

    def renew_lease(self, job_id: str, index: int, worker: str, until: float) -> bool:
        """Extend a lease this worker holds; False if it lost it."""

    def release_chunk(self, job_id: str, index: int, worker: str) -> None:
        """Give a lease back (the worker stops early: deadline, cancel)."""

    def record_segment(self, job_id: str, segment: Segment) -> Segment | None:
        """Record a segment unless one already starts there; return the one that stands.

        None if the chunk is gone: the job ended and its ledger was dropped, so a straggler's
        outcomes can no longer change counts that a report already holds.
        """

    def segment_at(self, job_id: str, index: int, start: int) -> Segment | None:
        """The segment that starts at ``start`` of chunk ``index``, if one was recorded."""

    def progress(self, job_id: str) -> tuple[int, int]:
        """(succeeded, failed) over the job's recorded segments."""

    def segments(self, job_id: str, start: tuple[int, int] = (0, 0)) -> Iterator[tuple[Segment, ChunkRecord]]:
        """Every recorded segment with its chunk, in manifest order, from ``start`` on: the
        segments whose (index, start) is at or after it (a finalize resuming at its checkpoint)."""

    def busy_chunks(self, job_id: str, now: float) -> int:
        """Chunks of the job leased right now."""

    def claim_finalize(self, job_id: str, worker: str, now: float, until: float) -> bool:
        """Become the one finalizer of a job until ``until`` (unless another one's claim holds)."""

    def finalize_claimed(self, job_id: str, now: float) -> bool:
        """Whether a finalizer's claim on the job holds at ``now`` (one is at work)."""

    def finalize_checkpoint(self, job_id: str) -> FinalizeCheckpoint | None:
        """How far writing the job's report has got; None before its first checkpoint."""

    def advance_finalize(
        self, job_id: str, expected: FinalizeCheckpoint | None, checkpoint: FinalizeCheckpoint
    ) -> bool:
        """Store ``checkpoint`` if the stored one is still ``expected`` (None: none yet), compared
        by ``step``. False if another finalizer moved it first, or the ledger was dropped: the
        caller has been overtaken and stops."""

    def drop_chunks(self, job_id: str) -> None:
        """Forget a finished job's chunks, segments, claims and prepare and finalize checkpoints."""


class WorkerLedger(ChunkLedger, Protocol):
    """What in-process workers also need: finding work by job status, and leases by owner."""

    def claim_chunk(self, worker: str, now: float, lease_seconds: float) -> ChunkClaim | None:
        """Lease the next runnable chunk: of an Active job, highest priority first, not leased or
        whose lease expired, with tasks left. None when there is nothing to run."""

    def lease_owners(self, now: float) -> list[str]:
        """Workers holding a lease that has not expired."""

    def release_leases_of(self, owner: str) -> int:
        """Give back every lease ``owner`` holds; how many there were."""

    def jobs_in_status(self, statuses: frozenset[str], limit: int) -> list[tuple[str, str]]:
        """(appid, job_id) of jobs in any of ``statuses``, of every appid, highest priority first."""
