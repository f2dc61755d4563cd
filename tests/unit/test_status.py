"""The lifecycle: which moves are legal, and where UpdateJobStatus requests lead."""

from __future__ import annotations

import pytest

from batchops.jobs.status import (
    NON_TERMINAL,
    TERMINAL,
    TRANSITIONS,
    IllegalTransitionError,
    JobStatus,
    RequestedJobStatus,
    check_transition,
    target_of_request,
)

S = JobStatus


def test_thirteen_statuses_three_terminal() -> None:
    assert len(JobStatus) == 13
    assert {s.value for s in TERMINAL} == {"Complete", "Cancelled", "Failed"}
    assert all(not TRANSITIONS[s] for s in TERMINAL)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.NEW, S.PREPARING),
        (S.PREPARING, S.SUSPENDED),
        (S.PREPARING, S.READY),
        (S.SUSPENDED, S.READY),
        (S.READY, S.ACTIVE),
        (S.ACTIVE, S.PAUSING),
        (S.PAUSING, S.PAUSED),
        (S.PAUSED, S.ACTIVE),
        (S.ACTIVE, S.COMPLETING),
        (S.COMPLETING, S.COMPLETE),
        (S.ACTIVE, S.FAILING),
        (S.FAILING, S.FAILED),
        (S.ACTIVE, S.CANCELLING),
        (S.CANCELLING, S.CANCELLED),
    ],
)
def test_documented_transitions_are_allowed(current: JobStatus, target: JobStatus) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.SUSPENDED, S.PREPARING),  # never back
        (S.NEW, S.ACTIVE),
        (S.READY, S.COMPLETE),
        (S.COMPLETE, S.ACTIVE),
        (S.CANCELLED, S.READY),
        (S.FAILED, S.FAILING),
    ],
)
def test_other_transitions_are_refused(current: JobStatus, target: JobStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        check_transition(current, target)


def test_only_a_suspended_job_can_be_confirmed() -> None:
    assert target_of_request(S.SUSPENDED, RequestedJobStatus.READY) is S.READY
    for status in NON_TERMINAL - {S.SUSPENDED}:
        with pytest.raises(IllegalTransitionError, match="Only a Suspended job"):
            target_of_request(status, RequestedJobStatus.READY)


@pytest.mark.parametrize("status", [S.NEW, S.PREPARING, S.SUSPENDED, S.READY])
def test_cancel_before_any_task_ran_ends_the_job(status: JobStatus) -> None:
    assert target_of_request(status, RequestedJobStatus.CANCELLED) is S.CANCELLED


@pytest.mark.parametrize("status", [S.ACTIVE, S.PAUSING, S.PAUSED, S.COMPLETING, S.FAILING])
def test_cancel_of_a_running_job_goes_through_cancelling(status: JobStatus) -> None:
    assert target_of_request(status, RequestedJobStatus.CANCELLED) is S.CANCELLING
    check_transition(status, S.CANCELLING)


def test_a_second_cancel_changes_nothing() -> None:
    assert target_of_request(S.CANCELLING, RequestedJobStatus.CANCELLED) is None


@pytest.mark.parametrize("status", sorted(TERMINAL))
@pytest.mark.parametrize("requested", list(RequestedJobStatus))
def test_terminal_jobs_refuse_every_request(status: JobStatus, requested: RequestedJobStatus) -> None:
    with pytest.raises(IllegalTransitionError, match=f"already {status.value}"):
        target_of_request(status, requested)
