"""Chunk planning cuts at the right places, keeps order, and the encoding loses nothing."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.manifest.chunks import decode_chunk, encode_chunk, plan_chunks
from batchops.manifest.tasks import ManifestTask

buckets = st.sampled_from(["bucket-a", "bucket-b", "examplebucket-1250000000"])
keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=300)
versions = st.none() | st.text(st.characters(codec="utf-8"), max_size=40)
task_lists = st.lists(st.builds(ManifestTask, buckets, keys, versions), max_size=60)


def numbered(n: int, key_size: int = 10) -> list[ManifestTask]:
    return [ManifestTask("bucket-1", f"{i:0{key_size}d}", None) for i in range(n)]


def test_chunks_close_at_max_tasks() -> None:
    # GIVEN 2,500 small tasks
    # WHEN planned with the default 1,000 tasks a chunk
    chunks = list(plan_chunks(numbered(2500)))
    # THEN three chunks of 1,000, 1,000 and 500, numbered and placed in order
    assert [(c.index, c.first_ordinal, len(c.tasks)) for c in chunks] == [
        (0, 0, 1000),
        (1, 1000, 1000),
        (2, 2000, 500),
    ]


def test_exactly_max_tasks_makes_one_chunk_and_nothing_makes_none() -> None:
    assert [len(c.tasks) for c in plan_chunks(numbered(1000))] == [1000]
    assert list(plan_chunks([])) == []


def test_chunks_close_before_passing_max_bytes() -> None:
    # GIVEN incompressible 1,000-byte keys
    import random

    rng = random.Random(7)
    tasks = [
        ManifestTask(
            "b", "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(1000)), None
        )
        for _ in range(40)
    ]
    # WHEN planned with a 10,000-byte limit
    chunks = list(plan_chunks(tasks, max_tasks=1000, max_bytes=10_000))
    # THEN every chunk encodes within the limit and holds as many tasks as fit (9 of ~1,004 bytes)
    assert all(len(encode_chunk(c.tasks)) <= 10_000 for c in chunks)
    assert [len(c.tasks) for c in chunks] == [9, 9, 9, 9, 4]


def test_a_task_larger_than_max_bytes_gets_a_chunk_of_its_own() -> None:
    huge = ManifestTask("b", "k" * 5000, None)
    chunks = list(plan_chunks([*numbered(3), huge, *numbered(2)], max_bytes=1000))
    assert [len(c.tasks) for c in chunks] == [3, 1, 2]
    assert (chunks[1].index, chunks[1].first_ordinal, chunks[1].count, chunks[1].tasks) == (1, 3, 1, [huge])


def test_max_tasks_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(plan_chunks(numbered(1), max_tasks=0))


def test_special_keys_round_trip() -> None:
    # GIVEN keys with every character that broke other encodings
    tasks = [
        ManifestTask("b", 'a,b\n"c"\r\\', "v1"),
        ManifestTask("b", "nul\x00inside", ""),
        ManifestTask("b2", "caf\u0065\u0301 \u4e2d \U0001f600", None),
        ManifestTask("b2", " ", "null"),
    ]
    # WHEN encoded and decoded
    # THEN they come back identical, an empty version distinct from no version
    assert decode_chunk(encode_chunk(tasks)) == tasks


def test_encoding_is_versioned_and_compressed() -> None:
    data = encode_chunk(numbered(1000))
    assert data[0] == 2
    assert len(data) < 1000 * 5  # far below the ~11 bytes a task before compression


@pytest.mark.parametrize(
    "task",
    [
        ManifestTask("b", "a\x00key", None),
        ManifestTask("b\x00", "key", None),
        ManifestTask("b", "key", ""),
        ManifestTask("b", "key", "v\x00"),
    ],
)
def test_what_version_2_cannot_say_is_written_in_version_1(task: ManifestTask) -> None:
    # GIVEN a task with a NUL in a name, or an empty version id (neither exists in S3)
    tasks = [ManifestTask("b", "first", "v1"), task]
    # WHEN encoded
    data = encode_chunk(tasks)
    # THEN in version 1, and it round-trips exactly
    assert data[0] == 1
    assert decode_chunk(data) == tasks


def test_version_1_chunks_written_before_version_2_still_decode() -> None:
    # GIVEN a chunk as version 1 wrote it (bytes pinned: a ledger may hold such chunks)
    payload = b"\x02" + b"\x01b" + b"\x02k1" + b"\x00" + b"\x00" + b"\x02k2" + b"\x03v2"
    # WHEN decoded
    # THEN both tasks, the second in the first's bucket
    assert decode_chunk(b"\x01" + zlib.compress(payload)) == [
        ManifestTask("b", "k1", None),
        ManifestTask("b", "k2", "v2"),
    ]


def version_2(count: int, *sections: bytes) -> bytes:
    return b"\x02" + zlib.compress(struct.pack("<5I", count, *map(len, sections)) + b"".join(sections))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "version nothing"),
        (b"\x03" + zlib.compress(b"\x00"), "version 3"),
        (b"\x02" + zlib.compress(b"\x00"), "inside its header"),
        (version_2(2, b"b", b"", b"k1\x00k2", b"")[:-3] + b"", "not zlib"),
        (b"\x02" + zlib.compress(struct.pack("<5I", 1, 1, 0, 5, 0) + b"bk"), "do not add up"),
        (version_2(2, b"b", b"", b"k1", b""), "1 keys for 2 tasks"),
        (version_2(1, b"b", b"", b"k1", b"v\x00w"), "2 version ids for 1 tasks"),
        (version_2(1, b"b\x00c", b"", b"k1", b""), "several buckets and no index"),
        (version_2(1, b"b\x00c", struct.pack("<I", 2), b"k1", b""), "indexes do not match"),
        (b"\x01not zlib", "not zlib"),
        (b"\x01" + zlib.compress(b"\x01\x00\x01k\x00"), "repeats a bucket"),
        (b"\x01" + zlib.compress(b"\x01\x01b\x05k"), "ends inside a field"),
        (b"\x01" + zlib.compress(b"\x00junk"), "bytes after its last task"),
    ],
)
def test_decoding_refuses_anything_else(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode_chunk(data)


@settings(max_examples=150, deadline=None)
@given(task_lists)
def test_decode_inverts_encode(tasks: list[ManifestTask]) -> None:
    assert decode_chunk(encode_chunk(tasks)) == tasks


@settings(max_examples=150, deadline=None)
@given(task_lists, st.integers(1, 12), st.integers(50, 3000))
def test_plan_partitions_in_order_within_bounds(
    tasks: list[ManifestTask], max_tasks: int, max_bytes: int
) -> None:
    # GIVEN any tasks and limits
    # WHEN planned
    chunks = list(plan_chunks(tasks, max_tasks=max_tasks, max_bytes=max_bytes))
    # THEN concatenating the chunks gives the input back, in order
    assert [t for c in chunks for t in c.tasks] == tasks
    # AND indexes count up and ordinals point at each chunk's first task
    ordinal = 0
    for index, chunk in enumerate(chunks):
        assert (chunk.index, chunk.first_ordinal) == (index, ordinal)
        assert 1 <= len(chunk.tasks) <= max_tasks
        # AND a chunk of more than one task encodes within max_bytes
        if len(chunk.tasks) > 1:
            assert len(encode_chunk(chunk.tasks)) <= max_bytes
        ordinal += len(chunk.tasks)
