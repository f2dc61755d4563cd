"""Property: whatever the interleaving of deliveries, stale redeliveries, concurrent runs and
crashes, each chunk's recorded segments chain from 0 to its end with no gap and no overlap, and
the counters equal what the segments (so the report rows) hold. Checked against a reference
model, on the SQLite ledger (the DynamoDB ledger meets the same contract suite)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchops.store.base import ChunkRecord, Segment
from batchops.store.sqlite import SQLiteJobStore

JOB = "job-prop"

# An action: (kind, chunk, fraction of the rest to run before stopping, which stale start to reuse)
actions = st.lists(
    st.tuples(
        st.sampled_from(["deliver", "stale", "crash", "concurrent"]),
        st.integers(min_value=0, max_value=3),
        st.floats(min_value=0.0, max_value=1.0),
        st.integers(min_value=0, max_value=5),
    ),
    max_size=40,
)


def chain_end(segments: list[tuple[int, int]]) -> int:
    end = 0
    for start, stop in sorted(segments):
        if start == end:
            end = stop
    return end


def record(ledger: SQLiteJobStore, index: int, start: int, stop: int) -> Segment | None:
    return ledger.record_segment(JOB, Segment(index, start, stop, stop - start, 0, b"r"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=1, max_value=25), min_size=4, max_size=4), plan=actions)
def test_segments_account_for_every_task_exactly_once(
    sizes: list[int], plan: list[tuple[str, int, float, int]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SQLiteJobStore(Path(tmp) / "jobs.db")
        ledger.put_chunks(JOB, [ChunkRecord(i, sum(sizes[:i]), size, b"p") for i, size in enumerate(sizes)])
        model: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(sizes))}
        for kind, index, fraction, stale in plan:
            start = chain_end(model[index])
            rest = sizes[index] - start
            stop = start + max(1, round(rest * fraction)) if rest else start
            if kind == "crash" or rest == 0:
                continue  # the worker died before recording: nothing changes
            if kind == "stale" and model[index]:
                # a redelivered message carries a start that another run already recorded
                old_start, old_stop = sorted(model[index])[stale % len(model[index])]
                standing = record(ledger, index, old_start, min(sizes[index], old_start + 1 + stale))
                assert standing is not None and (standing.start, standing.end) == (old_start, old_stop)
                continue
            standing = record(ledger, index, start, stop)
            assert standing is not None and (standing.start, standing.end) == (start, stop)
            model[index].append((start, stop))
            if kind == "concurrent":
                # a second worker ran the same delivery and stopped elsewhere: it loses
                loser = record(ledger, index, start, min(sizes[index], start + 1))
                assert loser is not None and (loser.start, loser.end) == (start, stop)
        for index, size in enumerate(sizes):  # drain: every chunk runs to its end
            start = chain_end(model[index])
            if start < size:
                record(ledger, index, start, size)
                model[index].append((start, size))
        found = [(segment.index, segment.start, segment.end) for segment, _ in ledger.segments(JOB)]
        assert found == sorted((i, s, e) for i, segments in model.items() for s, e in segments)
        for index, size in enumerate(sizes):
            assert chain_end([(s, e) for i, s, e in found if i == index]) == size
        assert ledger.progress(JOB) == (sum(sizes), 0)
        assert sum(e - s for _, s, e in found) == sum(sizes)
        ledger.close()
