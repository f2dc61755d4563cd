"""The ChunkLedger contract, run against SQLite and DynamoDB (moto server over HTTP) alike."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchops.store.base import ChunkLedger, ChunkRecord, FinalizeCheckpoint, PrepareCheckpoint, Segment
from batchops.store.dynamodb_ledger import DynamoDBLedger
from batchops.store.sqlite import SQLiteJobStore
from tests.contract.test_job_store import run_together

JOB = "job-0001"


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkLedger]:
    if request.param == "sqlite":
        store = SQLiteJobStore(tmp_path / "jobs.db")
        yield store
        store.close()
    else:
        yield DynamoDBLedger(request.getfixturevalue("jobs_table"), request.getfixturevalue("dynamodb"))


def chunks(count: int, size: int = 10) -> list[ChunkRecord]:
    return [ChunkRecord(n, n * size, size, f"payload {n}".encode() + bytes(range(256))) for n in range(count)]


def segment(index: int, start: int, end: int, failed: int = 0) -> Segment:
    return Segment(index, start, end, end - start - failed, failed, f"results {index}/{start}".encode())


def test_chunks_are_stored_once_and_read_back(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(30))
    ledger.put_chunks(JOB, chunks(3))  # a prepare that runs again
    assert ledger.get_chunk(JOB, 29) == chunks(30)[29]
    assert ledger.get_chunk(JOB, 30) is None
    assert ledger.get_chunk("other-job", 0) is None


def test_a_segment_is_recorded_once_per_start(ledger: ChunkLedger) -> None:
    # GIVEN a segment recorded for tasks 0-6 of chunk 2
    ledger.put_chunks(JOB, chunks(3))
    first = segment(2, 0, 6, failed=1)
    assert ledger.record_segment(JOB, first) == first
    # WHEN another run records a different segment at the same start
    # THEN the first one stands, and the counts do not change
    assert ledger.record_segment(JOB, segment(2, 0, 10)) == first
    assert ledger.segment_at(JOB, 2, 0) == first
    assert ledger.segment_at(JOB, 2, 6) is None
    assert ledger.progress(JOB) == (5, 1)


def test_concurrent_records_of_one_start_count_once(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(1))
    results = run_together(8, lambda n: ledger.record_segment(JOB, segment(0, 0, 1 + n)))
    standing = {r for r in results if isinstance(r, Segment)}
    assert len(standing) == 1, results
    (winner,) = standing
    assert ledger.progress(JOB) == (winner.succeeded, 0)


def test_progress_adds_up_over_chunks(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(40))
    for index in range(40):
        ledger.record_segment(JOB, segment(index, 0, 4, failed=1))
        ledger.record_segment(JOB, segment(index, 4, 10))
    assert ledger.progress(JOB) == (40 * 9, 40)
    assert ledger.progress("other-job") == (0, 0)


def test_segments_come_in_manifest_order_with_their_chunks(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(12))
    for index, start, end in [(11, 0, 10), (0, 3, 10), (0, 0, 3), (10, 0, 5), (2, 0, 10)]:
        ledger.record_segment(JOB, segment(index, start, end))
    found = [(s.index, s.start, s.end, c.index, c.first_ordinal) for s, c in ledger.segments(JOB)]
    assert found == [
        (0, 0, 3, 0, 0),
        (0, 3, 10, 0, 0),
        (2, 0, 10, 2, 20),
        (10, 0, 5, 10, 100),
        (11, 0, 10, 11, 110),
    ]


def test_holds_mark_running_chunks(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(3))
    assert ledger.hold_chunk(JOB, 1, "w1", now=0.0, until=1000.0)
    assert not ledger.hold_chunk(JOB, 1, "w2", now=500.0, until=1500.0)  # w1 holds it
    assert ledger.hold_chunk(JOB, 1, "w1", now=500.0, until=1000.0)  # the holder may again
    assert ledger.busy_chunks(JOB, now=999.0) == 1
    assert ledger.busy_chunks(JOB, now=1001.0) == 0
    assert ledger.renew_lease(JOB, 1, "w1", until=2000.0)
    assert not ledger.renew_lease(JOB, 1, "w2", until=3000.0)
    ledger.release_chunk(JOB, 1, "w2")  # not the holder: nothing happens
    assert ledger.busy_chunks(JOB, now=1500.0) == 1
    ledger.release_chunk(JOB, 1, "w1")
    assert ledger.busy_chunks(JOB, now=0.0) == 0


def test_drop_forgets_everything_of_the_job(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(30))
    ledger.put_chunks("job-other", chunks(1))
    ledger.advance_prepare(JOB, None, checkpoint(30, done=True))
    for index in range(30):
        ledger.record_segment(JOB, segment(index, 0, 10))
    assert ledger.hold_chunk(JOB, 7, "w1", now=0.0, until=10.0)
    assert ledger.claim_finalize(JOB, "f1", now=0.0, until=10.0)
    assert ledger.advance_finalize(JOB, None, report_checkpoint(0))
    ledger.drop_chunks(JOB)
    assert (ledger.get_chunk(JOB, 0), list(ledger.segments(JOB)), ledger.progress(JOB)) == (None, [], (0, 0))
    assert (ledger.prepare_checkpoint(JOB), ledger.busy_chunks(JOB, now=0.0)) == (None, 0)
    assert (ledger.finalize_checkpoint(JOB), ledger.finalize_claimed(JOB, now=0.0)) == (None, False)
    assert [ledger.get_chunk(JOB, n) for n in range(30)] == [None] * 30
    assert ledger.get_chunk("job-other", 0) is not None


def test_an_expired_hold_can_be_taken(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(1))
    assert ledger.hold_chunk(JOB, 0, "w1", now=0.0, until=10.0)
    assert ledger.hold_chunk(JOB, 0, "w2", now=11.0, until=20.0)
    assert not ledger.renew_lease(JOB, 0, "w1", until=30.0)


def test_one_finalizer_at_a_time(ledger: ChunkLedger) -> None:
    assert ledger.claim_finalize(JOB, "f1", now=0.0, until=100.0)
    assert not ledger.claim_finalize(JOB, "f2", now=50.0, until=150.0)
    assert ledger.claim_finalize(JOB, "f1", now=60.0, until=160.0)
    assert ledger.claim_finalize(JOB, "f2", now=161.0, until=260.0)  # f1's claim lapsed


def test_a_segment_of_a_dropped_job_is_not_recorded(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(2))
    ledger.record_segment(JOB, segment(0, 0, 10))
    ledger.drop_chunks(JOB)
    assert ledger.record_segment(JOB, segment(1, 0, 10)) is None
    assert ledger.progress(JOB) == (0, 0)


def test_segments_of_many_chunks_come_in_order_however_they_were_recorded(ledger: ChunkLedger) -> None:
    # GIVEN 50 chunks (over every ledger shard), each run as one to three segments, recorded
    # in a random order
    ledger.put_chunks(JOB, chunks(50))
    cuts = {index: sorted(random.Random(index).sample(range(1, 10), index % 3)) for index in range(50)}
    recorded = [
        segment(index, start, end)
        for index, inner in cuts.items()
        for start, end in zip([0, *inner], [*inner, 10], strict=True)
    ]
    for seg in random.Random(3).sample(recorded, len(recorded)):
        ledger.record_segment(JOB, seg)
    # WHEN they are read for the report
    found = list(ledger.segments(JOB))
    # THEN they come in manifest order, each with its own chunk
    assert [s for s, _ in found] == sorted(recorded, key=lambda s: (s.index, s.start))
    assert all(c == chunks(50)[s.index] for s, c in found)


def test_holds_count_over_every_shard(ledger: ChunkLedger) -> None:
    ledger.put_chunks(JOB, chunks(20))
    for index in range(20):
        assert ledger.hold_chunk(JOB, index, f"w{index}", now=0.0, until=100.0)
    assert ledger.busy_chunks(JOB, now=50.0) == 20
    for index in range(0, 20, 2):
        ledger.release_chunk(JOB, index, f"w{index}")
    assert ledger.busy_chunks(JOB, now=50.0) == 10


def checkpoint(index: int, done: bool = False, updated: float = 1.0) -> PrepareCheckpoint:
    return PrepareCheckpoint(
        index, index * 10, "" if done else f"0:{index * 100}:{index}:{index}", done, updated
    )


def test_a_checkpoint_moves_only_from_the_one_its_writer_started_at(ledger: ChunkLedger) -> None:
    # GIVEN no checkpoint yet
    assert ledger.prepare_checkpoint(JOB) is None
    # WHEN a preparer stores its first one THEN it reads back as written
    assert ledger.advance_prepare(JOB, None, checkpoint(64, updated=1.5))
    assert ledger.prepare_checkpoint(JOB) == checkpoint(64, updated=1.5)
    # AND a second "first" preparer, or one that started at an older checkpoint, is refused
    assert not ledger.advance_prepare(JOB, None, checkpoint(64))
    assert ledger.advance_prepare(JOB, checkpoint(64), checkpoint(128))
    assert not ledger.advance_prepare(JOB, checkpoint(64), checkpoint(100))
    # AND the last one says the job is planned; no one moves it after that
    assert ledger.advance_prepare(JOB, checkpoint(128), checkpoint(130, done=True))
    assert not ledger.advance_prepare(JOB, checkpoint(128), checkpoint(192))
    assert ledger.prepare_checkpoint(JOB) == checkpoint(130, done=True)
    assert ledger.prepare_checkpoint("other-job") is None


def test_concurrent_preparers_from_one_checkpoint_advance_it_once(ledger: ChunkLedger) -> None:
    ledger.advance_prepare(JOB, None, checkpoint(64))
    results = run_together(8, lambda n: ledger.advance_prepare(JOB, checkpoint(64), checkpoint(65 + n)))
    assert results.count(True) == 1, results
    assert ledger.prepare_checkpoint(JOB) == checkpoint(65 + results.index(True))


def test_a_preparer_still_going_after_its_job_was_dropped_is_refused(ledger: ChunkLedger) -> None:
    ledger.advance_prepare(JOB, None, checkpoint(64))
    ledger.drop_chunks(JOB)
    assert not ledger.advance_prepare(JOB, checkpoint(64), checkpoint(128))
    assert ledger.prepare_checkpoint(JOB) is None


def test_segments_can_be_read_from_where_a_report_stopped(ledger: ChunkLedger) -> None:
    # GIVEN 40 chunks (over every ledger shard), most run as two segments
    ledger.put_chunks(JOB, chunks(40))
    recorded = [segment(index, 0, 4) for index in range(40)] + [
        segment(index, 4, 10) for index in range(0, 40, 3)
    ]
    for seg in random.Random(5).sample(recorded, len(recorded)):
        ledger.record_segment(JOB, seg)
    ordered = sorted(recorded, key=lambda s: (s.index, s.start))
    # WHEN they are read from a segment's (index, start), or from between two segments
    # THEN exactly the segments at or after it come, in order, each with its chunk
    for at in [(0, 0), (17, 0), (18, 4), (18, 5), (21, 1), (39, 4), (40, 0)]:
        found = list(ledger.segments(JOB, at))
        assert [s for s, _ in found] == [s for s in ordered if (s.index, s.start) >= at], at
        assert all(c == chunks(40)[s.index] for s, c in found)


def report_checkpoint(step: int, updated: float = 1.0) -> FinalizeCheckpoint:
    return FinalizeCheckpoint(step, f'{{"state":{step}}}', updated)


def test_a_report_checkpoint_moves_only_from_the_one_its_step_started_at(ledger: ChunkLedger) -> None:
    # GIVEN a finalizer holding the job, no checkpoint yet
    assert ledger.claim_finalize(JOB, "f1", now=0.0, until=100.0)
    assert ledger.finalize_checkpoint(JOB) is None
    # WHEN it stores its first one THEN it reads back as written
    assert ledger.advance_finalize(JOB, None, report_checkpoint(0, updated=1.5))
    assert ledger.finalize_checkpoint(JOB) == report_checkpoint(0, updated=1.5)
    # AND a second "first" one, or one from an older step, is refused
    assert not ledger.advance_finalize(JOB, None, report_checkpoint(0))
    assert ledger.advance_finalize(JOB, report_checkpoint(0), report_checkpoint(1))
    assert not ledger.advance_finalize(JOB, report_checkpoint(0), report_checkpoint(1, updated=9.0))
    assert ledger.finalize_checkpoint(JOB) == report_checkpoint(1)
    assert ledger.finalize_checkpoint("other-job") is None


def test_concurrent_steps_from_one_report_checkpoint_advance_it_once(ledger: ChunkLedger) -> None:
    assert ledger.claim_finalize(JOB, "f1", now=0.0, until=100.0)
    ledger.advance_finalize(JOB, None, report_checkpoint(0))
    results = run_together(
        8, lambda n: ledger.advance_finalize(JOB, report_checkpoint(0), report_checkpoint(1, updated=n))
    )
    assert results.count(True) == 1, results
    assert ledger.finalize_checkpoint(JOB) == report_checkpoint(1, updated=results.index(True))


def test_a_finalizer_still_going_after_its_job_was_dropped_stores_no_report_checkpoint(
    ledger: ChunkLedger,
) -> None:
    assert ledger.claim_finalize(JOB, "f1", now=0.0, until=100.0)
    ledger.advance_finalize(JOB, None, report_checkpoint(0))
    ledger.drop_chunks(JOB)
    assert not ledger.advance_finalize(JOB, report_checkpoint(0), report_checkpoint(1))
    assert not ledger.advance_finalize(JOB, None, report_checkpoint(0))
    assert ledger.finalize_checkpoint(JOB) is None


def test_whether_a_finalizer_is_at_work_is_read_from_its_claim(ledger: ChunkLedger) -> None:
    assert not ledger.finalize_claimed(JOB, now=0.0)
    assert ledger.claim_finalize(JOB, "f1", now=0.0, until=100.0)
    assert ledger.finalize_claimed(JOB, now=50.0)
    assert not ledger.finalize_claimed(JOB, now=101.0)
    assert ledger.claim_finalize(JOB, "f1", now=60.0, until=60.0)  # released
    assert not ledger.finalize_claimed(JOB, now=61.0)
