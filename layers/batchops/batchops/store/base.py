"""The JobStore contract every store implements, in plain values.

Stores know nothing of the job model: a job is a JobRecord whose indexed fields the store reads
and whose ``body`` it keeps verbatim. Every write is conditional, so the store, not its callers,
is what makes token uniqueness, the active-job limit and status changes atomic.
"""

from __future__ import annotations

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

    def get_job(self, appid: str, job_id: str) -> JobRecord | None:
        """The job, or None if the appid has no such job."""

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
