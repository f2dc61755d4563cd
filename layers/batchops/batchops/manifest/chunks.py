"""Chunks: a manifest cut into bounded, self-contained pieces of work, and their wire encoding.

A chunk travels in a queue message (SQS: 256 KiB at most, base64 adds a third) or a ledger row,
so it is bounded both in tasks and in encoded bytes. The default 150,000 bytes leaves room for
base64 and a message envelope inside 256 KiB.

Planning works a block of rows at a time (``manifest.row_blocks``), never task by task, because
it must keep up with decompressing the manifest: a plain block's keys arrive already packed the
way version 2 stores them (UTF-8 joined by NUL), so a chunk copies whole stretches of them, and
only other blocks are encoded from task lists.

Encoding version 2 (written): one version byte, then zlib of::

    5 little-endian uint32: task count, then the byte sizes of the four sections below
    buckets:  the distinct bucket names, NUL-separated, in order of first use
    indexes:  per task, a uint32 index into buckets (empty when the chunk names one bucket)
    keys:     the keys, NUL-separated
    versions: the version ids, NUL-separated, "" for none (empty when no task names one)

all text UTF-8. S3 keys, bucket names and version ids never hold NUL (XML cannot carry it), and
a version id is never empty; a chunk that breaks either rule anyway is written in version 1,
which has no such limit, so every task (newlines, CR, commas, quotes, any Unicode, NUL) round
trips exactly.

Version 1 (still read; written only for the chunks above): one version byte, then zlib of::

    varint(task count)
    per task: varint(len(bucket)) bucket | varint(len(key)) key | varint(0 if no version else len+1) version

with lengths in UTF-8 bytes; a bucket length of 0 means "the previous task's bucket".

Planning bounds a chunk by its size before compression plus zlib's worst case
(``compressBound``), so a chunk of more than one task is guaranteed to encode within
``max_bytes``. The price is chunks smaller than they could be when keys are long (real data
compresses several times over), which only means more, smaller messages.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat

from batchops.manifest.position import Position
from batchops.manifest.row_blocks import RowBlock, blocks_of
from batchops.manifest.tasks import ManifestTask

ENCODING_VERSION = 2
DEFAULT_MAX_TASKS = 1000
DEFAULT_MAX_BYTES = 150_000
_HEADER = struct.Struct("<5I")
_SEPARATOR = "\x00"


@dataclass(frozen=True)
class Chunk:
    """``index`` counts chunks from 0; ``first_ordinal`` is the 0-based position, in the manifest,
    of the chunk's first task (task ``i`` of the chunk is manifest task ``first_ordinal + i``);
    ``data`` is the chunk's tasks encoded (``decode_chunk`` reads them)."""

    index: int
    first_ordinal: int
    count: int
    data: bytes

    @property
    def tasks(self) -> list[ManifestTask]:
        return decode_chunk(self.data)


def plan_blocks(
    blocks: Iterable[RowBlock],
    max_tasks: int = DEFAULT_MAX_TASKS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    first_index: int = 0,
    first_ordinal: int = 0,
) -> Iterator[tuple[Chunk, NextRow | None]]:
    """Cut the tasks of ``blocks`` into consecutive chunks, in order, streaming, numbering from
    ``first_index`` and ``first_ordinal``; each chunk comes with where the next one's first row
    starts (``NextRow``), None after the last.

    A chunk closes at ``max_tasks`` tasks, or before a task that would take its encoded size past
    ``max_bytes``; a task too big to share a chunk gets one of its own. Where a chunk closes
    depends only on its own tasks, so planning resumed at a chunk's start cuts exactly the
    chunks that planning in one go would have.
    """
    if max_tasks < 1:
        raise ValueError("max_tasks must be at least 1")
    pending = _Pending()
    index, ordinal = first_index, first_ordinal

    def cut(follower: RowBlock | None, at: int = 0) -> tuple[Chunk, NextRow | None]:
        """Cut a chunk; the next task is pending or else ``follower``'s task ``at``."""
        nonlocal index, ordinal
        count, version, raw = pending.cut(max_tasks, max_bytes)
        if len(pending):
            next_at: NextRow | None = NextRow(*pending.first())
        else:
            next_at = None if follower is None else NextRow(follower, at)
        # Sealed here, not on a thread: a thread waits for the GIL up to a switch interval
        # (5 ms) after every compression, far longer than compressing a chunk takes.
        chunk = Chunk(index, ordinal, count, _seal(version, raw))
        index, ordinal = index + 1, ordinal + count
        return chunk, next_at

    for block in blocks:
        taken = 0
        while taken < len(block):
            if len(pending) >= max_tasks:
                # The chunk is full and a task follows it: cut, knowing where the rest starts.
                yield cut(block, taken)
                continue
            step = min(max_tasks - len(pending), len(block) - taken)
            pending.add(block, taken, step)
            taken += step
    while len(pending):
        yield cut(None)


def plan_positioned(
    tasks: Iterable[tuple[ManifestTask, Position]],
    max_tasks: int = DEFAULT_MAX_TASKS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    first_index: int = 0,
    first_ordinal: int = 0,
) -> Iterator[tuple[Chunk, Position | None]]:
    """``plan_blocks`` over tasks that carry where their rows start, with each chunk the position
    of the next one's first row."""
    planned = plan_blocks(
        blocks_of(tasks), max_tasks, max_bytes, first_index=first_index, first_ordinal=first_ordinal
    )
    for chunk, after in planned:
        yield chunk, None if after is None else after.position()


def plan_chunks(
    tasks: Iterable[ManifestTask], max_tasks: int = DEFAULT_MAX_TASKS, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Chunk]:
    """``plan_blocks`` over bare tasks (positions made up: nothing resumes from them)."""
    placed = ((task, (0, n, n, n)) for n, task in enumerate(tasks))
    for chunk, _ in plan_positioned(placed, max_tasks, max_bytes):
        yield chunk


class NextRow:
    """Where the first row of the chunk after a chunk starts, worked out when asked: finding a
    row within a block costs about as much as splitting the block's rows, and only checkpoints
    (not every chunk) ask."""

    __slots__ = ("_block", "_index")

    def __init__(self, block: RowBlock, index: int) -> None:
        self._block = block
        self._index = index

    def position(self) -> Position:
        return self._block.position(self._index)


class _Pending:
    """Tasks read and not yet in a chunk: the stretches of blocks they sit in, in order."""

    def __init__(self) -> None:
        self.sources: deque[tuple[RowBlock, int, int]] = deque()  # block, first task, count
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, block: RowBlock, start: int, count: int) -> None:
        self.sources.append((block, start, count))
        self._count += count

    def first(self) -> tuple[RowBlock, int]:
        """The block the first pending task is in, and its index there."""
        block, start, _ = self.sources[0]
        return block, start

    def cut(self, max_tasks: int, max_bytes: int) -> tuple[int, int, bytes]:
        """Take the next chunk's tasks off the front: their count and unsealed payload."""
        count = min(max_tasks, self._count)
        version, raw = _stretches_payload(self._front(count))
        if not _fits(raw, count, max_bytes):
            low, high = 1, count  # one task always fits, ``count`` does not
            while high - low > 1:
                middle = (low + high) // 2
                if _fits(_stretches_payload(self._front(middle))[1], middle, max_bytes):
                    low = middle
                else:
                    high = middle
            count = low
            version, raw = _stretches_payload(self._front(count))
        self._drop(count)
        return count, version, raw

    def _front(self, count: int) -> list[tuple[RowBlock, int, int]]:
        """The stretches of the first ``count`` pending tasks."""
        front = []
        for block, start, size in self.sources:
            if size >= count:
                front.append((block, start, count))
                return front
            front.append((block, start, size))
            count -= size
        return front

    def _drop(self, count: int) -> None:
        self._count -= count
        while count:
            block, start, size = self.sources[0]
            if size > count:
                self.sources[0] = (block, start + count, size - count)
                return
            self.sources.popleft()
            count -= size


def _stretches_payload(stretches: list[tuple[RowBlock, int, int]]) -> tuple[int, bytes]:
    """The encoding version and uncompressed payload of the tasks of ``stretches`` (block,
    first task, count)."""
    packed = _packed_payload(stretches)
    if packed is not None:
        return ENCODING_VERSION, packed
    buckets: list[str] = []
    keys: list[str] = []
    versions: list[str | None] = []
    for block, start, count in stretches:
        end = start + count
        buckets += block.buckets[start:end]
        keys += block.keys[start:end]
        versions += repeat(None, count) if block.versions is None else block.versions[start:end]
    return _raw_payload(buckets, keys, versions if any(version is not None for version in versions) else None)


def _packed_payload(stretches: list[tuple[RowBlock, int, int]]) -> bytes | None:
    """The version 2 payload made from the blocks' packed keys, copied whole (no task lists),
    or None when a task names a version or a name holds a NUL."""
    texts: list[bytes] = []
    for block, start, count in stretches:
        text = None if block.versions is not None else block.key_text(start, start + count)
        if text is None:
            return None
        texts.append(text)
    names = {block.bucket for block, _, _ in stretches}
    one = names.pop() if len(names) == 1 else None
    buckets = (
        one
        if one is not None
        else [name for block, start, count in stretches for name in block.buckets[start : start + count]]
    )
    if any(_SEPARATOR in name for name in ({buckets} if isinstance(buckets, str) else set(buckets))):
        return None  # a bucket name holding a NUL: only version 1 can say that
    count = sum(count for _, _, count in stretches)
    return _v2_payload(count, buckets, _SEPARATOR.encode().join(texts), b"")


def encode_chunk(tasks: Sequence[ManifestTask]) -> bytes:
    """Encode tasks compactly and losslessly (see the module docstring for the layout)."""
    versions = [task.version_id for task in tasks]
    return _seal(
        *_raw_payload(
            [task.bucket for task in tasks],
            [task.key for task in tasks],
            versions if any(version is not None for version in versions) else None,
        )
    )


def _raw_payload(buckets: list[str], keys: list[str], versions: list[str | None] | None) -> tuple[int, bytes]:
    """The encoding version and the uncompressed payload of tasks given as columns."""
    distinct = list(dict.fromkeys(buckets))
    bucket_text = _SEPARATOR.join(distinct)
    key_text = _SEPARATOR.join(keys)
    version_text = "" if versions is None else _SEPARATOR.join(version or "" for version in versions)
    separators = len(distinct) + len(keys) - 2 + (0 if versions is None else len(versions) - 1)
    found = bucket_text.count(_SEPARATOR) + key_text.count(_SEPARATOR) + version_text.count(_SEPARATOR)
    if found != separators or (versions is not None and "" in versions):
        # A NUL inside a name, or an empty version id: only version 1 can say that.
        return 1, _raw_v1(list(map(ManifestTask, buckets, keys, versions or repeat(None))))
    return ENCODING_VERSION, _v2_payload(len(keys), buckets, key_text.encode(), version_text.encode())


def _v2_payload(count: int, buckets: list[str] | str, key_text: bytes, version_text: bytes) -> bytes:
    """The version 2 payload; ``buckets`` is one name per task, or the one name of every task.
    No name holds a NUL and no version id is empty (the caller made sure)."""
    distinct = [buckets] if isinstance(buckets, str) else list(dict.fromkeys(buckets))
    indexes = b""
    if len(distinct) > 1:
        where = {name: n for n, name in enumerate(distinct)}
        numbers = array("I", [where[name] for name in buckets])
        if sys.byteorder == "big":
            numbers.byteswap()
        indexes = numbers.tobytes()
    sections = (_SEPARATOR.join(distinct).encode(), indexes, key_text, version_text)
    return b"".join((_HEADER.pack(count, *map(len, sections)), *sections))


def _fits(raw: bytes, count: int, max_bytes: int) -> bool:
    """Whether a payload of ``count`` tasks is sure to seal within ``max_bytes`` (one task always does)."""
    return count == 1 or _encoded_bound(len(raw)) <= max_bytes


def _seal(version: int, raw: bytes) -> bytes:
    # Level 1: about half the CPU of the default level for payloads a few percent bigger.
    return bytes([version]) + zlib.compress(raw, 1)


def decode_chunk(data: bytes) -> list[ManifestTask]:
    """Decode what ``encode_chunk`` or planning wrote, in either version; ValueError for anything else."""
    if not data or data[0] not in (1, ENCODING_VERSION):
        found = data[0] if data else "nothing"
        raise ValueError(f"chunk encoding version {found} is not 1 or {ENCODING_VERSION}")
    try:
        payload = zlib.decompress(data[1:])
    except zlib.error as exc:
        raise ValueError(f"chunk payload is not zlib data: {exc}") from exc
    if data[0] == 1:
        return _decode_v1(payload)
    return _decode_v2(payload)


def _decode_v2(payload: bytes) -> list[ManifestTask]:
    if len(payload) < _HEADER.size:
        raise ValueError("chunk ends inside its header")
    count, *sizes = _HEADER.unpack_from(payload)
    if _HEADER.size + sum(sizes) != len(payload):
        raise ValueError("chunk sections do not add up to its size")
    at = _HEADER.size
    sections = []
    for size in sizes:
        sections.append(payload[at : at + size])
        at += size
    bucket_bytes, indexes, key_bytes, version_bytes = sections
    distinct = bucket_bytes.decode().split(_SEPARATOR)
    keys = key_bytes.decode().split(_SEPARATOR) if count else []
    if len(keys) != count:
        raise ValueError(f"chunk has {len(keys)} keys for {count} tasks")
    buckets: Iterable[str]
    if indexes:
        numbers = array("I")
        numbers.frombytes(indexes)
        if sys.byteorder == "big":
            numbers.byteswap()
        if len(numbers) != count or max(numbers, default=0) >= len(distinct):
            raise ValueError("chunk bucket indexes do not match its buckets")
        buckets = [distinct[n] for n in numbers]
    elif len(distinct) == 1:
        buckets = repeat(distinct[0])
    else:
        raise ValueError("chunk names several buckets and no index")
    versions: Iterable[str | None] = repeat(None)
    if version_bytes:
        listed = version_bytes.decode().split(_SEPARATOR)
        if len(listed) != count:
            raise ValueError(f"chunk has {len(listed)} version ids for {count} tasks")
        versions = [version or None for version in listed]
    return list(map(ManifestTask, buckets, keys, versions))


def _raw_v1(tasks: Sequence[ManifestTask]) -> bytes:
    out = bytearray()
    _put_varint(out, len(tasks))
    previous: str | None = None
    for task in tasks:
        if task.bucket == previous:
            _put_varint(out, 0)
        else:
            _put_bytes(out, task.bucket.encode())
            previous = task.bucket
        _put_bytes(out, task.key.encode())
        if task.version_id is None:
            _put_varint(out, 0)
        else:
            version = task.version_id.encode()
            _put_varint(out, len(version) + 1)
            out += version
    return bytes(out)


def _decode_v1(payload: bytes) -> list[ManifestTask]:
    reader = _Reader(payload)
    count = reader.varint()
    tasks: list[ManifestTask] = []
    bucket: str | None = None
    for _ in range(count):
        length = reader.varint()
        if length:
            bucket = reader.text(length)
        elif bucket is None:
            raise ValueError("chunk repeats a bucket before naming one")
        key = reader.text(reader.varint())
        version_length = reader.varint()
        version = reader.text(version_length - 1) if version_length else None
        tasks.append(ManifestTask(bucket, key, version))
    if reader.position != len(payload):
        raise ValueError("chunk has bytes after its last task")
    return tasks


def _encoded_bound(raw: int) -> int:
    """Version byte plus zlib's compressBound: the most ``zlib.compress`` can ever produce."""
    return 1 + raw + (raw >> 12) + (raw >> 14) + (raw >> 25) + 13


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_bytes(out: bytearray, data: bytes) -> None:
    _put_varint(out, len(data))
    out += data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def varint(self) -> int:
        value = 0
        shift = 0
        while True:
            if self.position >= len(self.data):
                raise ValueError("chunk ends inside a number")
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def text(self, length: int) -> str:
        end = self.position + length
        if end > len(self.data):
            raise ValueError("chunk ends inside a field")
        value = self.data[self.position : end].decode()
        self.position = end
        return value
