"""The job lifecycle: 13 statuses and the only transitions between them.

Every writer of a job's status (the API, the engine, the stores' tests) asks this module whether a
move is legal; the stores then make the move atomically, conditioned on the status it read.
Source: reference/batch-operations.md §1.3 (COS) and §2.4 (S3, the same 13 statuses).
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    ACTIVE = "Active"
    CANCELLED = "Cancelled"
    CANCELLING = "Cancelling"
    COMPLETE = "Complete"
    COMPLETING = "Completing"
    FAILED = "Failed"
    FAILING = "Failing"
    NEW = "New"
    PAUSED = "Paused"
    PAUSING = "Pausing"
    PREPARING = "Preparing"
    READY = "Ready"
    SUSPENDED = "Suspended"


class RequestedJobStatus(StrEnum):
    """What UpdateJobStatus may ask for."""

    READY = "Ready"
    CANCELLED = "Cancelled"


TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.COMPLETE, JobStatus.CANCELLED, JobStatus.FAILED})
NON_TERMINAL: frozenset[JobStatus] = frozenset(JobStatus) - TERMINAL

# Statuses in which no task has started: a cancel ends the job at once, there is nothing to stop.
_NOTHING_RUNNING = frozenset({JobStatus.NEW, JobStatus.PREPARING, JobStatus.SUSPENDED, JobStatus.READY})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.NEW: frozenset({JobStatus.PREPARING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.PREPARING: frozenset(
        {JobStatus.READY, JobStatus.SUSPENDED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    # Suspended -> Failed is the 30-day confirmation timeout; Suspended never goes back.
    JobStatus.SUSPENDED: frozenset({JobStatus.READY, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.READY: frozenset({JobStatus.ACTIVE, JobStatus.CANCELLED}),
    JobStatus.ACTIVE: frozenset(
        {
            JobStatus.COMPLETING,
            JobStatus.COMPLETE,
            JobStatus.FAILING,
            JobStatus.PAUSING,
            JobStatus.CANCELLING,
        }
    ),
    JobStatus.PAUSING: frozenset({JobStatus.PAUSED, JobStatus.CANCELLING}),
    JobStatus.PAUSED: frozenset({JobStatus.ACTIVE, JobStatus.CANCELLING}),
    JobStatus.COMPLETING: frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLING}),
    JobStatus.FAILING: frozenset({JobStatus.FAILED, JobStatus.CANCELLING}),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED}),
    JobStatus.COMPLETE: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


class IllegalTransitionError(Exception):
    """The requested status change is not allowed from the job's current status."""

    def __init__(self, current: JobStatus, requested: JobStatus | RequestedJobStatus, why: str) -> None:
        super().__init__(why)
        self.current = current
        self.requested = requested
        self.why = why


def is_terminal(status: JobStatus) -> bool:
    return status in TERMINAL


def check_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise IllegalTransitionError unless ``current -> target`` is an edge of the lifecycle."""
    if target not in TRANSITIONS[current]:
        if is_terminal(current):
            why = f"The job is already {current.value} and cannot change status."
        else:
            why = f"A job cannot move from {current.value} to {target.value}."
        raise IllegalTransitionError(current, target, why)


def target_of_request(current: JobStatus, requested: RequestedJobStatus) -> JobStatus | None:
    """Where an UpdateJobStatus request moves a job in ``current``.

    Returns None when the job is already where the request leads (a repeated cancel of a
    Cancelling job), so the caller can answer without writing.
    """
    if is_terminal(current):
        raise IllegalTransitionError(
            current, requested, f"The job is already {current.value} and cannot change status."
        )
    if requested is RequestedJobStatus.READY:
        if current is not JobStatus.SUSPENDED:
            raise IllegalTransitionError(
                current,
                requested,
                f"Only a Suspended job can be confirmed; this job is {current.value}.",
            )
        return JobStatus.READY
    if current is JobStatus.CANCELLING:
        return None
    return JobStatus.CANCELLED if current in _NOTHING_RUNNING else JobStatus.CANCELLING
