"""The JobStore contract, run against SQLite and DynamoDB (moto server over HTTP) alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from batchops.store.base import (
    ActiveLimitReachedError,
    DuplicateTokenError,
    JobRecord,
    JobStore,
    UnknownJobError,
    VersionConflictError,
)

APPID = "1250000000"
T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def record(n: int, appid: str = APPID, token: str | None = None, status: str = "New") -> JobRecord:
    return JobRecord(
        appid=appid,
        job_id=f"job-{n:04d}",
        client_request_token=token or f"token-{n}",
        status=status,
        priority=n,
        creation_time=T0 + timedelta(milliseconds=n),
        active=status not in ("Complete", "Failed", "Cancelled"),
        version=1,
        body=f'{{"n": {n}}}',
    )


def test_a_created_job_reads_back_as_written(store: JobStore) -> None:
    # GIVEN a job inserted
    job = record(1)
    store.insert_job(job, max_active=10)
    # WHEN it is read
    # THEN every field comes back, for its appid only
    assert store.get_job(APPID, job.job_id) == job
    assert store.get_job("other", job.job_id) is None
    assert store.get_job(APPID, "job-missing") is None


def test_a_used_token_refuses_a_second_job_and_names_the_first(store: JobStore) -> None:
    store.insert_job(record(1, token="t"), max_active=10)
    with pytest.raises(DuplicateTokenError) as caught:
        store.insert_job(record(2, token="t"), max_active=10)
    assert caught.value.existing_job_id == "job-0001"
    assert store.get_job(APPID, "job-0002") is None


def test_tokens_are_unique_per_appid_only(store: JobStore) -> None:
    store.insert_job(record(1, token="t"), max_active=10)
    store.insert_job(record(2, appid="other", token="t"), max_active=10)
    assert store.get_job("other", "job-0002") is not None


def test_the_active_limit_counts_non_terminal_jobs_per_appid(store: JobStore) -> None:
    # GIVEN two active jobs and a limit of two
    first = record(1)
    store.insert_job(first, max_active=2)
    store.insert_job(record(2), max_active=2)
    # THEN a third is refused, for this appid only
    with pytest.raises(ActiveLimitReachedError):
        store.insert_job(record(3), max_active=2)
    store.insert_job(record(4, appid="other"), max_active=2)
    # WHEN one job ends, THEN there is room again
    store.replace_job(first, replace(first, status="Cancelled", active=False, version=2))
    store.insert_job(record(3), max_active=2)
    with pytest.raises(ActiveLimitReachedError):
        store.insert_job(record(5), max_active=2)


def test_replace_is_compare_and_set_on_version(store: JobStore) -> None:
    job = record(1)
    store.insert_job(job, max_active=10)
    moved = replace(job, status="Preparing", version=2, priority=99, body='{"x": 1}')
    store.replace_job(job, moved)
    assert store.get_job(APPID, job.job_id) == moved
    # A writer still holding version 1 loses
    with pytest.raises(VersionConflictError):
        store.replace_job(job, replace(job, status="Cancelled", active=False, version=2))
    assert store.get_job(APPID, job.job_id) == moved


def test_delete_removes_the_job_and_frees_its_token(store: JobStore) -> None:
    job = record(1, token="t", status="Complete")
    store.insert_job(job, max_active=10)
    with pytest.raises(VersionConflictError):
        store.delete_job(replace(job, version=7))
    store.delete_job(job)
    assert store.get_job(APPID, job.job_id) is None
    store.insert_job(record(2, token="t"), max_active=10)


def test_list_is_newest_first_paged_by_last_job_id(store: JobStore) -> None:
    # GIVEN five jobs created one after another, and one of another appid
    for n in range(1, 6):
        store.insert_job(record(n), max_active=10)
    store.insert_job(record(9, appid="other"), max_active=10)
    # WHEN listed two at a time
    first = store.list_jobs(APPID, None, 2, None)
    second = store.list_jobs(APPID, None, 2, first.next_after_job_id)
    third = store.list_jobs(APPID, None, 2, second.next_after_job_id)
    # THEN pages follow each other, newest first, and the last page has no next token
    assert [r.job_id for r in first.records] == ["job-0005", "job-0004"]
    assert first.next_after_job_id == "job-0004"
    assert [r.job_id for r in second.records] == ["job-0003", "job-0002"]
    assert [r.job_id for r in third.records] == ["job-0001"]
    assert third.next_after_job_id is None
    exact = store.list_jobs(APPID, None, 5, None)
    assert len(exact.records) == 5
    assert exact.next_after_job_id is None


def test_list_filters_by_status(store: JobStore) -> None:
    for n in range(1, 7):
        status = "Complete" if n % 3 == 0 else "New"
        store.insert_job(record(n, status=status), max_active=10)
    page = store.list_jobs(APPID, frozenset({"Complete"}), 1, None)
    assert [r.job_id for r in page.records] == ["job-0006"]
    rest = store.list_jobs(APPID, frozenset({"Complete"}), 1, page.next_after_job_id)
    assert [r.job_id for r in rest.records] == ["job-0003"]
    assert rest.next_after_job_id is None
    both = store.list_jobs(APPID, frozenset({"Complete", "New"}), 100, None)
    assert len(both.records) == 6


def test_list_after_an_unknown_job_is_refused(store: JobStore) -> None:
    store.insert_job(record(1), max_active=10)
    with pytest.raises(UnknownJobError):
        store.list_jobs(APPID, None, 10, "job-9999")
    with pytest.raises(UnknownJobError):
        store.list_jobs("other", None, 10, "job-0001")


def run_together(count: int, action: Callable[[int], object]) -> list[object]:
    """Run ``action(i)`` in ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def attempt(i: int) -> object:
        barrier.wait()
        try:
            return action(i)
        except Exception as exc:  # collected, asserted on by the caller
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(attempt, range(count)))


def test_concurrent_creates_with_one_token_make_exactly_one_job(store: JobStore) -> None:
    # WHEN eight clients create a job with the same token at once
    results = run_together(8, lambda i: store.insert_job(record(i, token="same"), max_active=100))
    # THEN one succeeds, the others are told which job the token made
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    losers = [r for r in results if r is not None]
    assert all(isinstance(r, DuplicateTokenError) for r in losers), losers
    assert {r.existing_job_id for r in losers if isinstance(r, DuplicateTokenError)} == {
        f"job-{winners[0]:04d}"
    }
    assert len(store.list_jobs(APPID, None, 100, None).records) == 1


def test_concurrent_creates_never_exceed_the_active_limit(store: JobStore) -> None:
    results = run_together(8, lambda i: store.insert_job(record(i), max_active=3))
    assert sum(r is None for r in results) == 3
    assert all(isinstance(r, ActiveLimitReachedError) for r in results if r is not None)
    assert len(store.list_jobs(APPID, None, 100, None).records) == 3


def test_concurrent_transitions_cannot_both_win(store: JobStore) -> None:
    # GIVEN one job, read by eight writers
    job = record(1, status="Active")
    store.insert_job(job, max_active=10)
    targets = ["Complete", "Cancelling", "Failing", "Pausing"] * 2
    # WHEN each tries to move it from the version it read
    results = run_together(
        8,
        lambda i: store.replace_job(
            job, replace(job, status=targets[i], active=targets[i] != "Complete", version=2)
        ),
    )
    # THEN exactly one wins and the job holds its change
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflictError) for r in results if r is not None)
    stored = store.get_job(APPID, job.job_id)
    assert stored is not None
    assert stored.status == targets[winners[0]]
