"""Chunks: a manifest cut into bounded, self-contained pieces of work, and their wire encoding.

A chunk travels in a queue message (SQS: 256 KiB at most, base64 adds a third) or a ledger row,
so it is bounded both in tasks and in encoded bytes. The default 150,000 bytes leaves room for
base64 and a message envelope inside 256 KiB.

Encoding (version 1): one version byte, then zlib of::

    varint(task count)
    per task: varint(len(bucket)) bucket | varint(len(key)) key | varint(0 if no version else len+1) version

with lengths in UTF-8 bytes; a bucket length of 0 means "the previous task's bucket" (a bucket name
is never empty, and most chunks name one bucket). Length-prefixed fields need no escaping, so
every key (newlines, CR, commas, quotes, any Unicode, even NUL) round-trips exactly.

Planning never compresses: it adds up the uncompressed size and bounds the result with zlib's
worst case (``compressBound``), so a chunk of more than one task is guaranteed to encode within
``max_bytes``. The price is chunks smaller than they could be when keys are long (real data
compresses several times over), which only means more, smaller messages.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from batchops.manifest.tasks import ManifestTask

ENCODING_VERSION = 1
DEFAULT_MAX_TASKS = 1000
DEFAULT_MAX_BYTES = 150_000
_COUNT_RESERVE = 5  # bytes a varint task count can take (up to 2**35)
P = TypeVar("P")


@dataclass(frozen=True)
class Chunk:
    """``index`` counts chunks from 0; ``first_ordinal`` is the 0-based position, in the manifest,
    of the chunk's first task (task ``i`` of the chunk is manifest task ``first_ordinal + i``)."""

    index: int
    first_ordinal: int
    tasks: tuple[ManifestTask, ...]


def plan_chunks(
    tasks: Iterable[ManifestTask], max_tasks: int = DEFAULT_MAX_TASKS, max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[Chunk]:
    """Cut ``tasks`` into consecutive chunks, in order, streaming (one chunk held at a time).

    A chunk closes at ``max_tasks`` tasks, or before a task that would take its encoded size past
    ``max_bytes``; a task too big to share a chunk gets one of its own.
    """
    for chunk, _ in plan_positioned(((task, None) for task in tasks), max_tasks, max_bytes):
        yield chunk


def plan_positioned(
    tasks: Iterable[tuple[ManifestTask, P]],
    max_tasks: int = DEFAULT_MAX_TASKS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    first_index: int = 0,
    first_ordinal: int = 0,
) -> Iterator[tuple[Chunk, P | None]]:
    """``plan_chunks`` over tasks that carry where they start, numbering from ``first_index`` and
    ``first_ordinal``; each chunk comes with where the next one starts, None after the last.

    Where a chunk closes depends only on its own tasks, so planning resumed at a chunk's start
    cuts exactly the chunks that planning in one go would have.
    """
    if max_tasks < 1:
        raise ValueError("max_tasks must be at least 1")
    index = first_index
    ordinal = first_ordinal
    current: list[ManifestTask] = []
    raw_size = _COUNT_RESERVE
    for task, position in tasks:
        previous = current[-1].bucket if current else None
        size = _record_size(task, previous)
        if current and (len(current) >= max_tasks or _encoded_bound(raw_size + size) > max_bytes):
            yield Chunk(index, ordinal, tuple(current)), position
            index += 1
            ordinal += len(current)
            current = []
            raw_size = _COUNT_RESERVE
            size = _record_size(task, None)
        current.append(task)
        raw_size += size
    if current:
        yield Chunk(index, ordinal, tuple(current)), None


def encode_chunk(tasks: Sequence[ManifestTask]) -> bytes:
    """Encode tasks compactly and losslessly (see the module docstring for the layout)."""
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
    return bytes([ENCODING_VERSION]) + zlib.compress(bytes(out))


def decode_chunk(data: bytes) -> list[ManifestTask]:
    """Decode what ``encode_chunk`` wrote; ValueError for anything else."""
    if not data or data[0] != ENCODING_VERSION:
        found = data[0] if data else "nothing"
        raise ValueError(f"chunk encoding version {found} is not {ENCODING_VERSION}")
    try:
        payload = zlib.decompress(data[1:])
    except zlib.error as exc:
        raise ValueError(f"chunk payload is not zlib data: {exc}") from exc
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


def _record_size(task: ManifestTask, previous_bucket: str | None) -> int:
    size = 1 if task.bucket == previous_bucket else _field_size(len(task.bucket.encode()))
    size += _field_size(len(task.key.encode()))
    if task.version_id is None:
        return size + 1
    return size + _field_size(len(task.version_id.encode()) + 1)


def _field_size(length: int) -> int:
    return _varint_size(length) + length


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


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
