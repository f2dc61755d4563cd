"""A running chunk's stop check: how often it reads its job, and how (docs/SCALE.md §3: a thousand
workers each reading the one job item every second, consistently, make it read-hot)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from batchops.engine.phases import Engine, _Heartbeat, _StopCheck
from batchops.engine.settings import EngineSettings
from batchops.jobs.service import JobService
from batchops.jobs.status import JobStatus, RequestedJobStatus
from batchops.store.base import ChunkClaim, ChunkRecord, JobRecord
from batchops.store.sqlite import SQLiteJobStore
from tests.unit.test_service import APPID, spec


class RecordingStore(SQLiteJobStore):
    """The SQLite store, noting of every job read whether it asked for a consistent one, and able
    to answer a read that may be stale with an older copy, as a DynamoDB replica may."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[bool] = []
        self.stale: JobRecord | None = None

    def get_job(self, appid: str, job_id: str, consistent: bool = True) -> JobRecord | None:
        self.reads.append(consistent)
        if not consistent and self.stale is not None:
            return self.stale
        return super().get_job(appid, job_id, consistent)


class Running:
    """One chunk of an Active job of ``chunk_count`` chunks, checked on a clock the test moves."""

    def __init__(self, store: RecordingStore, settings: EngineSettings, chunk_count: int) -> None:
        self.now = 0.0
        self.service = JobService(store, max_active_jobs=10)
        s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9")  # never called
        self.engine = Engine(self.service, store, s3, settings, clock=lambda: self.now)
        job = self.service.create(APPID, spec())
        self.job_id = job.job_id
        for target in (JobStatus.PREPARING, JobStatus.READY, JobStatus.ACTIVE):
            self.service.transition(
                APPID, job.job_id, target, total_tasks=chunk_count * 1000, chunk_count=chunk_count
            )
        claim = ChunkClaim(APPID, job.job_id, ChunkRecord(0, 0, 1000, b""), 0)
        self.check = _StopCheck(self.engine, claim, _Heartbeat(self.engine, claim, "w"), None, chunk_count)
        store.reads.clear()

    def until(self, end: float, step: float = 0.25) -> float | None:
        """Call the check as a running chunk does, every ``step`` until ``end``; when it said stop."""
        while self.now < end:
            self.now += step
            if self.check():
                return self.now
        return None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordingStore]:
    built = RecordingStore(tmp_path / "jobs.db")
    yield built
    built.close()


DEPLOYED = replace(EngineSettings(), workers=1, job_concurrency=1000)


def test_a_small_job_looks_every_second_with_cheap_reads(store: RecordingStore) -> None:
    # GIVEN a chunk of a job of 3 chunks (so at most 3 look at it at once)
    running = Running(store, DEPLOYED, chunk_count=3)
    # WHEN it runs for 60 s THEN it looked once a second, never asking for a consistent read
    assert running.until(60.0) is None
    assert store.reads == [False] * 60
    running.engine.close()


def test_a_job_with_a_thousand_chunks_running_looks_less_often(store: RecordingStore) -> None:
    # GIVEN a chunk of a job of 5,000 chunks, with up to 1,000 of them running at once
    running = Running(store, DEPLOYED, chunk_count=5000)
    # WHEN it runs for 60 s
    assert running.until(60.0) is None
    # THEN it looked every 5 s: the job's 1,000 chunks read its item 200 times a second, not 1,000
    assert store.reads == [False] * 12
    assert DEPLOYED.status_poll_interval(5000) == 5.0
    running.engine.close()


def test_the_default_fifty_workers_still_look_every_second(store: RecordingStore) -> None:
    running = Running(store, replace(DEPLOYED, job_concurrency=50), chunk_count=5000)
    assert running.until(10.0) is None
    assert len(store.reads) == 10
    running.engine.close()


def test_a_cancel_is_seen_within_one_look(store: RecordingStore) -> None:
    # GIVEN a chunk of a big job, looking every 5 s
    running = Running(store, DEPLOYED, chunk_count=5000)
    assert running.until(20.1) is None
    # WHEN the job is cancelled THEN the chunk stops at its next look, once a consistent read
    # has confirmed what the cheap one said
    running.service.update_status(APPID, running.job_id, RequestedJobStatus.CANCELLED, None)
    store.reads.clear()
    assert running.until(40.0) == 25.0
    assert store.reads == [False, True]
    running.engine.close()


def test_a_stale_copy_never_stops_a_chunk_of_an_active_job(store: RecordingStore) -> None:
    # GIVEN a chunk of an Active job, and cheap reads that return the job as it was when Ready
    running = Running(store, DEPLOYED, chunk_count=3)
    ready = store.get_job(APPID, running.job_id)
    assert ready is not None
    store.stale = replace(ready, status=JobStatus.READY.value)
    store.reads.clear()
    # WHEN it runs for 10 s THEN it never stops: each stale "not Active" is read again
    assert running.until(10.0) is None
    assert store.reads == [False, True] * 10
    running.engine.close()
