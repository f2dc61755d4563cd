"""Manifest rows read a block of lines at a time: the fast path for the CSV manifests are made of.

``csv.reader`` plus a decode of every key costs several µs a row, ten times what decompressing
the row costs. Almost every manifest is one of two plain shapes, for which splitting a whole
block of lines with ``bytes`` methods (C loops, no Python per row) gives exactly the cells
``csv.reader`` would:

- **quoted**: every cell quoted and no cell holding a quote or a line break (S3 and COS
  Inventory write this). Split on ``"``, such a block is ``"", c1, ",", c2, ..., cw, LF`` row
  after row, which counting every other item checks;
- **bare**: no quote anywhere (``bucket,key`` as people write it; spaces after a comma are
  skipped, as ``skipinitialspace`` does).

A block is plain when it is whole lines (each ending in LF) of one of those shapes, with no CR,
no blank line, every row the expected number of cells, a non-empty Bucket and Key on every row,
and keys whose %-escapes decode to UTF-8.

Anything else (a doubled quote, a quoted line break, CRLF, a blank line, a BOM, a bad row) is
read by the exact reader the caller hands over, from the first row of the block that is not
plain to the end of the stream; the exact reader is also what names a bad row in its error.
``tests/unit/manifest/test_row_blocks.py`` checks, on random manifests, that both ways read the
same tasks at the same positions, or fail with the same error.

Keys are decoded a block at a time: ``+`` becomes a space and every ``%XX`` its byte, by C
string methods and ``codecs.escape_decode`` over the block's keys joined by LF, which equals
``unquote_plus`` key by key whenever every ``%`` starts an escape and no key decodes to a line
break; otherwise the block goes to the exact reader.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain, islice, repeat
from typing import BinaryIO

from batchops.manifest.position import Position
from batchops.manifest.streams import BUFFER_SIZE, UTF8_BOM, SourceReader, SupportsRead
from batchops.manifest.tasks import ManifestTask

BLOCK_SIZE = BUFFER_SIZE
LONGEST_LINE = 4
"""A line longer than this many blocks is left to the exact reader."""
AROUND_CELL = " \t"
"""What is stripped around a Bucket or VersionId cell (neither can hold a space or a tab)."""
KEY_SEPARATOR = "\x00"
"""Between the keys of packed text (S3 keys never hold NUL: XML cannot carry it)."""
_NUL = KEY_SEPARATOR.encode()
# The separators a split leaves, counted in lists by identity: bytes.split hands out one shared
# object for every 1-byte piece, and so does slicing, but a b"," in the code is a copy of its own
# once loaded from a .pyc (marshal builds it anew), which list.count then compares byte by byte:
# planning took 10% longer that way.
_COMMA, _LF = b",\n"[:1], b",\n"[1:]


@dataclass(frozen=True, slots=True)
class CsvColumns:
    """Where Bucket, Key and VersionId sit in a row, and how many columns a row has."""

    bucket: int
    key: int
    version_id: int | None
    width: int

    @property
    def needed(self) -> int:
        """Columns a row must have to reach every named field."""
        return 1 + max(self.bucket, self.key, -1 if self.version_id is None else self.version_id)


ExactReader = Callable[[BinaryIO, Position], Iterator[tuple[ManifestTask, Position]]]
"""Reads tasks the row-by-row way from a stream that begins at the position given."""


class RowBlock:
    """Tasks from consecutive manifest rows, as columns, and where each task's row starts.

    A plain block keeps its columns packed, the way a chunk stores them: the keys as one UTF-8
    text joined by NUL, and the bucket as one name when every row names the same. Planning
    copies those into chunks whole; the per-task lists (``keys``, ``buckets``) are made only
    when asked for. ``versions`` is None when no task names a version. Task ``i``'s row starts
    at ``position(i)``; for a plain block that is worked out from the lines when asked (only
    chunk boundaries ask), for rows the exact reader read it is stored.
    """

    __slots__ = (
        "_buckets",
        "_count",
        "_cut",
        "_data",
        "_file",
        "_key_text",
        "_keys",
        "_line",
        "_offset",
        "_positions",
        "_row",
        "_skip",
        "bucket",
        "versions",
    )

    def __init__(
        self,
        buckets: list[str] | str,
        keys: list[str] | bytes,
        versions: list[str | None] | None,
        *,
        start: Position,
        count: int | None = None,
        data: bytes | None = None,
        skip: int = 0,
        positions: list[Position] | None = None,
    ) -> None:
        """``buckets``: one name per task, or the one name of every task. ``keys``: one per
        task, or their UTF-8 joined by NUL (no key holding NUL), with ``count`` given."""
        self.bucket = buckets if isinstance(buckets, str) else None
        self._buckets = None if isinstance(buckets, str) else buckets
        self._keys: list[str] | None = None
        self._key_text: bytes | None = None
        if isinstance(keys, bytes):
            assert count is not None
            self._key_text, self._count = keys, count
        else:
            self._keys, self._count = keys, len(keys)
        self.versions = versions
        self._file, self._offset, self._row, self._line = start
        self._data = data
        self._skip = skip
        self._positions = positions
        self._cut = (0, 0)  # the last key start worked out: a chunk that ends at one, the next starts there

    @classmethod
    def of_tasks(cls, tasks: list[tuple[ManifestTask, Position]]) -> RowBlock:
        """A block of tasks the exact reader yielded, with their positions."""
        versions = [task.version_id for task, _ in tasks]
        return cls(
            [task.bucket for task, _ in tasks],
            [task.key for task, _ in tasks],
            versions if any(version is not None for version in versions) else None,
            start=tasks[0][1],
            positions=[at for _, at in tasks],
        )

    def __len__(self) -> int:
        return self._count

    @property
    def keys(self) -> list[str]:
        if self._keys is None:
            assert self._key_text is not None
            self._keys = self._key_text.decode().split(KEY_SEPARATOR) if self._count else []
        return self._keys

    @property
    def buckets(self) -> list[str]:
        if self._buckets is None:
            assert self.bucket is not None
            self._buckets = [self.bucket] * self._count
        return self._buckets

    def key_text(self, start: int, end: int) -> bytes | None:
        """The keys of tasks ``start`` to ``end`` (not included) as UTF-8 joined by NUL, or
        None if one of them holds a NUL."""
        if self._key_text is None:
            text = KEY_SEPARATOR.join(self.keys[start:end])
            return None if text.count(KEY_SEPARATOR) != end - start - 1 else text.encode()
        if start == 0 and end == self._count:
            return self._key_text
        return self._key_text[self._key_start(start) : self._key_start(end) - 1]

    def _key_start(self, index: int) -> int:
        """Where key ``index`` starts in the packed text (one past its end for ``len(self)``)."""
        assert self._key_text is not None
        if index == 0:
            return 0
        if index >= self._count:
            return len(self._key_text) + 1
        if index != self._cut[0]:
            rest = self._key_text.split(_NUL, index)[-1]
            self._cut = (index, len(self._key_text) - len(rest))
        return self._cut[1]

    @property
    def rows(self) -> int:
        """The lines a plain block covers, a header it skipped included."""
        return self._skip + self._count

    def tasks(self) -> Iterator[ManifestTask]:
        versions = repeat(None) if self.versions is None else self.versions
        # tuple.__new__ builds each named tuple in C; calling ManifestTask runs its Python __new__.
        return map(tuple.__new__, repeat(ManifestTask), zip(self.buckets, self.keys, versions, strict=False))

    def positions(self) -> Iterator[Position]:
        """``position(i)`` of every task, in order."""
        if self._positions is not None:
            return iter(self._positions)
        assert self._data is not None
        lines = self._data.split(b"\n")[self._skip : self._skip + self._count]
        file, offset, row, line = self.position(0)
        offsets = accumulate((len(piece) + 1 for piece in lines), initial=offset)
        steps = zip(range(len(lines)), offsets, strict=False)
        return ((file, at, row + n, line + n) for n, at in steps)

    def position(self, index: int) -> Position:
        """Where task ``index``'s row starts."""
        if self._positions is not None:
            return self._positions[index]
        assert self._data is not None
        line = self._skip + index
        after = self._data.split(b"\n", line)[-1] if line else self._data
        # In a plain block every line is one row.
        return self._file, self._offset + len(self._data) - len(after), self._row + line, self._line + line


def plain_block(
    data: bytes, columns: CsvColumns, start: Position, is_header: Callable[[list[str]], bool] | None = None
) -> RowBlock | None:
    """The tasks of ``data`` (whole lines, each ending in LF, starting at ``start``), or None
    unless the block is plain (see the module docstring). ``is_header``, when given, is asked
    about the first row; a header row is skipped."""
    found = _cells(data, columns.width) if _is_utf8(data) else None
    if found is None:
        return None
    column, first_row = found
    skip = 0
    if is_header is not None and is_header([cell.decode() for cell in first_row]):
        skip = 1
    raw_keys = column(columns.key)[skip:]
    if not raw_keys:
        return RowBlock([], [], None, start=start, data=data, skip=skip)
    if b" " in data and b'"' not in data:
        raw_keys = [key.lstrip(b" ") for key in raw_keys]  # skipinitialspace
    if b"" in raw_keys:
        return None
    # A NUL in the text could end up in a packed name: such a rare block keeps lists.
    packed = _NUL not in data
    buckets = _buckets(column(columns.bucket)[skip:], packed)
    keys: list[str] | bytes | None = decode_key_text(raw_keys) if packed else None
    if keys is None:
        keys = decode_keys(raw_keys)
    if keys is None or buckets is None:
        return None
    versions: list[str | None] | None = None
    if columns.version_id is not None:
        listed = b"\n".join(column(columns.version_id)[skip:]).decode().split("\n")
        versions = [cell.strip(AROUND_CELL) or None for cell in listed]
        if not any(versions):
            versions = None
    return RowBlock(buckets, keys, versions, start=start, count=len(raw_keys), data=data, skip=skip)


def _is_utf8(data: bytes) -> bool:
    """The exact reader refuses a manifest that is not UTF-8 (naming the row): so does a block."""
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _cells(data: bytes, width: int) -> tuple[Callable[[int], list[bytes]], list[bytes]] | None:
    """How to take a column's cells (every row's, in order) out of a plain block, and the first
    row's cells; None if the block is not plain.

    Quoted: splitting the block on ``"`` leaves ``"", c1, ",", c2, ..., cw, LF`` per row, so
    the block is plain exactly when every other item is the expected separator and the block
    has one LF per row (a cell holding a LF would hide one). Bare: with every LF written as
    ``,LF,``, splitting on ``,`` leaves ``c1, ..., cw, LF`` per row."""
    if not data or b"\r" in data:
        return None
    # (Deleting the LFs and comparing lengths counts them in half the time data.count takes.)
    rows = len(data) - len(data.replace(b"\n", b""))
    if b'"' in data:
        parts = data.split(b'"')
        # The separators (every other item) are right when the R row ends are LFs and the
        # separators hold (w - 1) * R commas: those then fill every place that is not a row end.
        # (Counting is several times cheaper than comparing with a list of the expected items.)
        if (
            len(parts) != 2 * width * rows + 1
            or parts[0]
            or parts[2 * width :: 2 * width].count(_LF) != rows
            or parts[2::2].count(_COMMA) != (width - 1) * rows
        ):
            return None
        return (lambda index: parts[1 + 2 * index :: 2 * width]), parts[1 : 2 * width : 2]
    parts = data.replace(b"\n", b",\n,").split(b",")
    parts.pop()  # the empty piece after the last LF
    if len(parts) != (width + 1) * rows or parts[width :: width + 1].count(_LF) != rows:
        return None
    return (lambda index: parts[index :: width + 1]), parts[:width]


def _buckets(cells: list[bytes], packed: bool) -> list[str] | str | None:
    """The Bucket cells as ``task_from_row`` reads them (the one name when ``packed`` and every
    row names the same), or None if one is empty."""
    if packed and cells.count(cells[0]) == len(cells):
        return cells[0].decode().strip(AROUND_CELL) or None
    names = {cell: cell.decode().strip(AROUND_CELL) for cell in set(cells)}
    if not all(names.values()):
        return None
    return [names[cell] for cell in cells]


def decode_keys(raw: list[bytes]) -> list[str] | None:
    """``unquote_plus(key, errors="strict")`` of every key (as UTF-8 bytes), or None where that
    cannot be done a block at a time (a ``%`` that starts no escape, an escape of a line break,
    escapes that are not UTF-8: the exact reader then decodes, or names the row that is wrong)."""
    text = decode_key_text(raw, b"\n")
    return None if text is None else text.decode().split("\n")


def decode_key_text(raw: list[bytes], separator: bytes = _NUL) -> bytes | None:
    """The keys ``decode_keys`` gives, as UTF-8 joined by ``separator``; None where it gives
    None, or where a key decodes to hold ``separator``."""
    joined = separator.join(raw)
    if b"%" in joined:
        # Every %XX becomes \xXX for escape_decode, which refuses (ValueError) a \x without two
        # hex digits: a lone % sends the block to the exact reader, which keeps it as written.
        escaped = joined.replace(b"+", b" ")
        if b"\\" in escaped:
            escaped = escaped.replace(b"\\", b"\\\\")
        escaped = escaped.replace(b"%", b"\\x")
        try:
            joined = codecs.escape_decode(escaped)[0]
        except ValueError:
            return None
    elif b"+" in joined:
        joined = joined.replace(b"+", b" ")
    if joined.count(separator) != len(raw) - 1 or not _is_utf8(joined):
        return None
    return joined


def read_row_blocks(
    stream: SupportsRead,
    columns: CsvColumns,
    start: Position,
    exact: ExactReader,
    is_header: Callable[[list[str]], bool] | None = None,
    *,
    block_size: int = BLOCK_SIZE,
    read_size: int = BLOCK_SIZE,
) -> Iterator[RowBlock]:
    """The tasks of ``stream`` (beginning at ``start``) a block at a time: plain blocks split
    here, the rest of the stream from the first block that is not plain read by ``exact``.
    ``is_header`` is asked about the first row when ``start`` is the beginning of its file.
    Blocks are about ``block_size`` bytes of whole lines, cut from pieces of ``read_size`` (a
    stream that hands out big pieces without copying them, as ``ReadAhead`` does, is best read
    a whole piece at a time)."""
    file, offset, row, line = start
    header = is_header if offset == 0 else None
    lines = LineBlocks(stream, block_size, read_size)
    for data in lines:
        block = None
        if data.endswith(b"\n") and not (offset == 0 and data.startswith(UTF8_BOM)):
            block = plain_block(data, columns, (file, offset, row, line), header)
        if block is None:
            # Not plain, a BOM (the exact reader skips it), a line too long to be plain or the
            # stream's last line without its LF: the exact reader takes over here, with what
            # was read and not used put back in front.
            rest = chain([data, lines.unread()], iter(lambda: stream.read(BUFFER_SIZE), b""))
            unread = io.BufferedReader(SourceReader(rest, close_source=False), BUFFER_SIZE)
            yield from blocks_of(exact(unread, (file, offset, row, line)))
            return
        if len(block):
            yield block
        offset += len(data)
        row += block.rows
        line += block.rows
        header = None


class LineBlocks:
    """A stream's bytes as blocks of whole lines, about ``size`` bytes each (a longer line is a
    block of its own), cut from pieces of ``read_size`` read from the stream so that a byte is
    copied once: only a block that straddles two pieces is joined.

    The last block ends without a LF when the stream does, or when a line runs on for more than
    ``LONGEST_LINE`` blocks: it then holds the first ``LONGEST_LINE`` blocks of that line, and
    ``unread`` what was read after them.
    """

    def __init__(self, stream: SupportsRead, size: int, read_size: int) -> None:
        self._stream = stream
        self._size = size
        self._read_size = max(size, read_size)
        self._piece = b""
        self._at = 0  # self._piece[self._at:] is read and not handed out

    def unread(self) -> bytes:
        """What was read after the last block handed out."""
        return self._piece[self._at :]

    def __iter__(self) -> Iterator[bytes]:
        size, longest = self._size, LONGEST_LINE * self._size
        tail = b""  # the start of a line the last piece ended in
        while True:
            piece, at = self._piece, self._at
            if tail:
                room = longest - len(tail)
                cut = piece.rfind(b"\n", 0, max(size - len(tail), 1)) + 1 or piece.find(b"\n", 0, room) + 1
                if cut or len(piece) >= room:
                    self._at = cut or room
                    yield tail + piece[: self._at]
                    if not cut:
                        return  # a line too long
                    tail = b""
                    continue
                tail += piece
            else:
                cut = piece.rfind(b"\n", at, at + size) + 1 or piece.find(b"\n", at + size, at + longest) + 1
                if cut or len(piece) - at >= longest:
                    self._at = cut or at + longest
                    yield piece[at : self._at]
                    if not cut:
                        return  # a line too long
                    continue
                tail = piece[at:]
            self._piece, self._at = self._stream.read(self._read_size), 0
            if not self._piece:
                if tail:
                    yield tail  # the stream's last line, without its LF
                return


def blocks_of(tasks: Iterable[tuple[ManifestTask, Position]], size: int = 1024) -> Iterator[RowBlock]:
    """Tasks read one by one, each with where its row starts, gathered into blocks of ``size``."""
    items = iter(tasks)
    while batch := list(islice(items, size)):
        yield RowBlock.of_tasks(batch)
