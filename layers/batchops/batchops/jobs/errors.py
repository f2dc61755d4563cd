"""What the job service refuses, in domain terms; the API maps each to a COS error."""

from __future__ import annotations


class JobError(Exception):
    """Base of the job service's refusals."""


class DuplicateRequestError(JobError):
    def __init__(self, existing_job_id: str) -> None:
        super().__init__(f"ClientRequestToken already used by job {existing_job_id}")
        self.existing_job_id = existing_job_id


class NoSuchJobError(JobError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"The specified job {job_id} does not exist.")
        self.job_id = job_id


class JobStateError(JobError):
    """The job's status does not allow what was asked (a terminal job, an illegal transition)."""


class TooManyJobsError(JobError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} jobs are already active")
        self.limit = limit


class InvalidNextTokenError(JobError):
    def __init__(self, token: str) -> None:
        super().__init__(f"nextToken {token!r} does not name a job of this account")
        self.token = token


class JobStoreUnavailableError(JobError):
    """The job store could not be reached; nothing was written, the call may be retried."""
