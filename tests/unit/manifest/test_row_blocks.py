"""Reading rows a block at a time gives exactly what reading them one by one gives: the same
tasks, the same positions, the same error; and plain manifests do take the block path."""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO
from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.manifest.chunks import Chunk, NextRow, decode_chunk, plan_blocks, plan_positioned
from batchops.manifest.csv_manifest import _exact_tasks, iter_csv_blocks, iter_csv_positioned, parse_fields
from batchops.manifest.inventory import InventoryFile, InventoryManifest, iter_inventory_positioned
from batchops.manifest.position import START, Position
from batchops.manifest.row_blocks import (
    BLOCK_SIZE,
    LONGEST_LINE,
    CsvColumns,
    LineBlocks,
    RowBlock,
    decode_key_text,
    decode_keys,
    plain_block,
    read_row_blocks,
)
from batchops.manifest.streams import Gunzip, ReadAhead
from batchops.manifest.tasks import ManifestError, ManifestTask

FIELDS = ("Bucket", "Key", "VersionId")
COLUMNS = parse_fields(FIELDS)

# Text that exercises the decoder: escapes (valid, lone, of LF, of invalid UTF-8), plus signs,
# backslashes (escape_decode's own escape character), quotes, commas, multi-byte characters.
KEY_PIECES = st.sampled_from(
    ["a", "Z", "0", "/", "%20", "%2B", "%2b", "%C3%A9", "%E4%B8%AD", "%0A", "%00", "%", "%4", "%zz", "%C3",
     "+", "\\", "\\x41", "é", "中", " ", "'", "=", "%25", "%5C"]
)  # fmt: skip
KEYS = st.lists(KEY_PIECES, min_size=1, max_size=6).map("".join)


def exact(data: bytes, fields: tuple[str, ...] = FIELDS) -> list[tuple[ManifestTask, Position]] | str:
    """What the row-by-row reader reads, or its error."""
    try:
        return list(_exact_tasks(io.BytesIO(data), parse_fields(fields), fields, START))
    except ManifestError as exc:
        return f"{exc.code}: {exc}"


def by_blocks(
    data: bytes, fields: tuple[str, ...] = FIELDS, block_size: int = 64, read_size: int = BLOCK_SIZE
) -> object:
    """What reading a block at a time reads (small blocks: many block boundaries), or its error."""
    columns = parse_fields(fields)

    def row_by_row(rest: BinaryIO, at: Position) -> Iterator[tuple[ManifestTask, Position]]:
        return _exact_tasks(rest, columns, fields, at)

    try:
        blocks = read_row_blocks(
            io.BytesIO(data), columns, START, row_by_row, block_size=block_size, read_size=read_size
        )
        return [item for block in blocks for item in zip(block.tasks(), block.positions(), strict=True)]
    except ManifestError as exc:
        return f"{exc.code}: {exc}"


# -- keys --------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.lists(KEYS, min_size=1, max_size=8))
def test_keys_decoded_a_block_at_a_time_equal_unquote_plus_key_by_key(raw: list[str]) -> None:
    # GIVEN any keys WHEN decoded together
    decoded = decode_keys([key.encode() for key in raw])
    # THEN either exactly what unquote_plus gives key by key, or None (left to the exact reader)
    if decoded is not None:
        assert decoded == [unquote_plus(key, errors="strict") for key in raw]


@settings(max_examples=400, deadline=None)
@given(st.lists(KEYS, min_size=1, max_size=8))
def test_keys_decoded_into_packed_text_equal_unquote_plus_key_by_key(raw: list[str]) -> None:
    # GIVEN any keys WHEN decoded together into one text joined by NUL
    text = decode_key_text([key.encode() for key in raw])
    # THEN either exactly what unquote_plus gives key by key, or None (a list or the exact reader)
    if text is not None:
        assert text.decode().split("\x00") == [unquote_plus(key, errors="strict") for key in raw]
    if "%00" in "".join(raw) and "%" not in "".join(raw).replace("%00", ""):
        assert text is None


def test_ordinary_encoded_keys_decode_a_block_at_a_time() -> None:
    raw = [
        b"photos/caf%C3%A9+%2B1.jpg",
        b"a\\b%5C",
        b"plain",
        b"100%25",
        b"%E4%B8%AD%E6%96%87",
        "\u00e9".encode(),
    ]
    assert decode_keys(raw) == ["photos/café +1.jpg", "a\\b\\", "plain", "100%", "中文", "\u00e9"]


@pytest.mark.parametrize(
    "key",
    ["50%", "%4", "%zz", "%C3", "a%0Ab", "%FF"],
    ids=["lone % at the end", "one hex digit", "not hex", "cut UTF-8", "escaped LF", "not UTF-8"],
)
def test_keys_a_block_cannot_decode_go_to_the_exact_reader(key: str) -> None:
    assert decode_keys([b"fine", key.encode()]) is None


# -- rows --------------------------------------------------------------------------------------


def quoted(*cells: str) -> str:
    return ",".join(f'"{cell}"' for cell in cells) + "\n"


ROWS = st.one_of(
    st.tuples(st.sampled_from(["b1", " b2", "b3 ", ""]), KEYS, st.sampled_from(["", "v1", " v2 "])).map(
        lambda cells: quoted(*cells)
    ),
    st.tuples(st.sampled_from(["b1", "b2"]), KEYS, st.sampled_from(["", "v1"])).map(
        lambda cells: ",".join(cells) + "\n"
    ),
    st.sampled_from(
        [
            "\n",
            "   \n",
            '"b1","k,comma",""\n',
            '"b1","k1",","\n',
            '"b1","k""quote",""\n',
            '"b1","k""2"\n',
            '"b1","k1","",""\n',
            '"b1","multi\nline",""\n',
            "b1,k1,v1\r\n",
            "b1,k1\n",
            "b1,k1,v1,extra\n",
            '"b1", "k1",""\n',
            "b1, k1 , v1\n",
            '"b1","k1"\n',
            "\ufeffb1,k1,\n",
            "b1,\u00e9,\n",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ROWS, max_size=25), st.booleans(), st.integers(8, 200), st.integers(1, 300))
def test_blocks_read_exactly_what_rows_read(
    rows: list[str], last_line_ended: bool, block_size: int, read_size: int
) -> None:
    # GIVEN any mix of plain and awkward rows, the last line ended or not
    text = "".join(rows)
    if not last_line_ended:
        text = text.removesuffix("\n")
    data = text.encode()
    # WHEN read a block at a time, with blocks of any size cut from pieces of any size
    # THEN the same tasks at the same positions, or the same error
    assert by_blocks(data, block_size=block_size, read_size=read_size) == exact(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 90).map(lambda n: b"x" * n + b"\n"), max_size=30),
    st.binary(max_size=20).filter(lambda tail: b"\n" not in tail),
    st.integers(1, 40),
    st.integers(1, 60),
)
def test_line_blocks_cut_whole_lines_and_lose_nothing(
    lines: list[bytes], tail: bytes, size: int, read_size: int
) -> None:
    # GIVEN lines of any length, maybe a last one without its LF, read in pieces of any size
    data = b"".join(lines) + tail
    cutter = LineBlocks(io.BytesIO(data), size, read_size)
    # WHEN cut into blocks
    blocks = list(cutter)
    # THEN the blocks are the stream cut after LFs, each no bigger than a block unless it is
    # one line; or else the last block is the start of a line too long, and the rest is unread
    read = b"".join(blocks)
    too_long = bool(blocks) and not blocks[-1].endswith(b"\n") and len(blocks[-1]) == LONGEST_LINE * size
    if too_long:
        assert b"\n" not in blocks[-1]
        assert data.startswith(read + cutter.unread())
    else:
        assert read == data
        assert cutter.unread() == b""
    whole = blocks[:-1] if too_long or (tail and blocks) else blocks
    assert all(block.endswith(b"\n") and (len(block) <= size or block.count(b"\n") == 1) for block in whole)


def test_a_line_too_long_is_handed_over_unread_and_the_exact_reader_reads_it() -> None:
    # GIVEN a row longer than four blocks, between plain rows
    long_key = "k" * 500
    data = (quoted("b1", "k1", "") + quoted("b1", long_key, "") + quoted("b1", "k3", "")).encode()
    # WHEN read a block at a time from small pieces
    # THEN every row is read, the long one by the exact reader
    read = exact(data)
    assert by_blocks(data, block_size=16, read_size=16) == read
    assert not isinstance(read, str)
    assert [task.key for task, _ in read] == ["k1", long_key, "k3"]


def test_plain_manifests_are_split_a_block_at_a_time() -> None:
    # GIVEN a quoted block and a bare block
    start: Position = (0, 0, 0, 0)
    for text in (
        quoted("b1", "caf%C3%A9", "") + quoted("b1", "k2", "v2"),
        quoted("b1", "a,comma", "") + quoted("b1", "k2", "v2"),
        "b1,caf%C3%A9,\nb1,k2,v2\n",
    ):
        # WHEN split as a block
        block = plain_block(text.encode(), COLUMNS, start)
        # THEN it is plain, and its tasks and positions are the exact reader's
        assert block is not None
        assert list(zip(block.tasks(), block.positions(), strict=True)) == exact(text.encode())
        assert block.position(1) == exact(text.encode())[1][1]


@pytest.mark.parametrize(
    "text",
    [
        '"b1","k""1",""\n',
        "b1,k1,v1\r\n",
        "b1,k1,v1\n\nb1,k2,v2\n",
        "b1,k1\n",
        '"b1", "k1",""\n',
        '"b1","",""\n',
        '"  ","k1",""\n',
        "b1,50%,\n",
        # a lone comma in a cell does not stand in for the separator another row lacks
        '"b1","k1",","\n"b1","k""2"\n',
        # nor does a row with a cell too many make up for one with a cell too few
        '"b1","k1","",""\n"b1","k2"\n',
        "b1,k1,,\nb1,k2\n",
    ],
)
def test_blocks_that_are_not_plain_are_left_to_the_exact_reader(text: str) -> None:
    assert plain_block(text.encode(), COLUMNS, START) is None


def test_a_header_row_is_skipped_by_a_block_and_positions_still_count_it() -> None:
    text = quoted("Bucket", "Key", "VersionId") + quoted("b1", "k1", "")
    block = plain_block(text.encode(), COLUMNS, START, is_header=lambda cells: cells[0] == "Bucket")
    assert block is not None
    assert list(block.tasks()) == [ManifestTask("b1", "k1", None)]
    assert block.position(0) == (0, len(quoted("Bucket", "Key", "VersionId")), 1, 1)


def test_positions_count_bytes_not_characters() -> None:
    text = "b1,\u4e2d\u6587,\nb1,k2,\n"
    block = plain_block(text.encode(), COLUMNS, START)
    assert block is not None
    assert block.position(1) == (0, len("b1,\u4e2d\u6587,\n".encode()), 1, 1)
    assert list(block.positions())[1] == block.position(1)


# -- inventories and planning ----------------------------------------------------------------


def test_an_inventory_read_in_blocks_resumes_at_every_chunk_exactly() -> None:
    # GIVEN an inventory data file of 3,000 quoted rows (header first), read in one go
    rows = [quoted("Bucket", "Key", "VersionId")] + [quoted("b1", f"k%20{n}", "") for n in range(3000)]
    data = gzip.compress("".join(rows).encode())
    manifest = InventoryManifest(
        "src", "dst", "CSV", ("Bucket", "Key", "VersionId"), (InventoryFile("f", len(data), md5(data)),)
    )
    whole = list(iter_inventory_positioned(manifest, lambda _: io.BytesIO(data)))
    assert [task.key for task, _ in whole] == [f"k {n}" for n in range(3000)]
    # WHEN planning resumes from each chunk's successor
    planned = list(plan_positioned(whole, max_tasks=700))
    for chunk, after in planned[:-1]:
        assert after is not None
        rest = list(iter_inventory_positioned(manifest, lambda _: io.BytesIO(data), after))
        # THEN the rest is exactly the tasks after the chunk
        assert rest == whole[chunk.first_ordinal + chunk.count :]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def resolved(planned: Iterable[tuple[Chunk, NextRow | None]]) -> list[tuple[Chunk, Position | None]]:
    """Planned chunks with where each next one starts worked out."""
    return [(chunk, None if after is None else after.position()) for chunk, after in planned]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 30))
def test_where_blocks_split_does_not_change_the_chunks(sizes: list[int], max_tasks: int) -> None:
    # GIVEN the same tasks cut into blocks of any sizes
    tasks = [(ManifestTask("b", f"k{n}", None), (0, n, n, n)) for n in range(sum(sizes))]
    blocks: list[RowBlock] = []
    at = 0
    for size in sizes:
        blocks.append(RowBlock.of_tasks(tasks[at : at + size]))
        at += size
    # WHEN planned THEN the same chunks and next positions as from one block
    one = resolved(plan_blocks([RowBlock.of_tasks(tasks)], max_tasks))
    assert resolved(plan_blocks(blocks, max_tasks)) == one


# -- csv manifests end to end ------------------------------------------------------------------


def test_a_csv_manifest_larger_than_a_block_reads_whole() -> None:
    text = "".join(f"b1,dir%2F{n},\n" for n in range(20_000)).encode()
    tasks = [task for block in iter_csv_blocks(io.BytesIO(text), FIELDS) for task in block.tasks()]
    assert tasks == [ManifestTask("b1", f"dir/{n}", None) for n in range(20_000)]
    assert [task for task, _ in iter_csv_positioned(io.BytesIO(text), FIELDS)] == tasks


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ROWS, max_size=25),
    st.integers(8, 200),
    st.integers(1, 7),
    st.integers(40, 400),
    st.sampled_from(["b1", "b2"]),
)
def test_planning_blocks_writes_byte_for_byte_the_chunks_planning_rows_writes(
    rows: list[str], block_size: int, max_tasks: int, max_bytes: int, other_bucket: str
) -> None:
    # GIVEN any mix of plain and awkward rows (one bucket or two), planned with small limits
    text = "".join(rows).replace("b2", other_bucket)
    data = text.encode()
    read = exact(data)
    if isinstance(read, str):
        return  # the error is the same either way (test_blocks_read_exactly_what_rows_read)

    def row_by_row(rest: BinaryIO, at: Position) -> Iterator[tuple[ManifestTask, Position]]:
        return _exact_tasks(rest, COLUMNS, FIELDS, at)

    # WHEN planned from blocks (packed columns) and from the exact reader's tasks one by one
    blocks = read_row_blocks(
        io.BytesIO(data), COLUMNS, START, row_by_row, block_size=block_size, read_size=64
    )
    # THEN the same chunks, the same bytes, the same resume positions
    assert resolved(plan_blocks(blocks, max_tasks, max_bytes)) == list(
        plan_positioned(read, max_tasks, max_bytes)
    )


def test_a_name_holding_a_nul_is_planned_in_the_encoding_that_can_say_it() -> None:
    # GIVEN tasks the exact reader read, a bucket or a key holding a NUL
    for odd in (ManifestTask("b\x00x", "k1", None), ManifestTask("b1", "k\x001", None)):
        tasks = [(odd, (0, 0, 0, 0)), (ManifestTask("b2", "k2", None), (0, 9, 1, 1))]
        # WHEN planned THEN the chunk decodes to exactly those tasks, in encoding version 1
        [(chunk, _)] = plan_blocks([RowBlock.of_tasks(tasks)])
        assert decode_chunk(chunk.data) == [task for task, _ in tasks]
        assert chunk.data[0] == 1


def test_a_plain_block_keeps_one_bucket_and_its_keys_packed() -> None:
    block = plain_block((quoted("b1", "caf%C3%A9", "") + quoted("b1", "k+2", "")).encode(), COLUMNS, START)
    assert block is not None
    assert block.bucket == "b1"
    assert block.key_text(0, 2) == "café\x00k 2".encode()
    assert block.key_text(1, 2) == b"k 2"
    assert block.keys == ["café", "k 2"]


# -- reading ahead -----------------------------------------------------------------------------


class Failing:
    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        if self.reads > 2:
            raise OSError("connection reset")
        return b"x" * size


def test_read_ahead_raises_the_streams_error_to_the_reader() -> None:
    with ReadAhead(Failing(), block_size=4) as ahead:
        assert ahead.read(4) == b"xxxx"
        assert ahead.read(4) == b"xxxx"
        with pytest.raises(OSError, match="connection reset"):
            ahead.read(4)


def test_read_ahead_stopped_early_stops_its_thread() -> None:
    endless = io.BufferedReader(io.BytesIO(b"y" * 10_000_000))
    with ReadAhead(endless, block_size=1024, depth=2) as ahead:
        assert ahead.read(10) == b"y" * 10
    assert not any(thread.name == "manifest-read-ahead" for thread in threading.enumerate())
    assert endless.tell() < 10_000_000


def test_read_ahead_reads_everything_in_order() -> None:
    data = bytes(range(256)) * 1000
    with ReadAhead(io.BytesIO(data), block_size=1000) as ahead:
        assert b"".join(iter(lambda: ahead.read(333), b"")) == data
        assert ahead.read(10) == b""


def test_columns_name_where_cells_sit() -> None:
    assert CsvColumns(0, 1, None, 2).needed == 2


# -- gunzip ------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    st.integers(0, 3),
    st.integers(1, 5000),
    st.integers(64, 4096),
)
def test_gunzip_reads_what_gzip_reads(members: list[bytes], padding: int, size: int, step: int) -> None:
    # GIVEN any members, zero bytes after them, read in pieces of any size
    data = b"".join(gzip.compress(member) for member in members) + b"\x00" * padding
    # WHEN decompressed THEN exactly gzip's text
    text = Gunzip(io.BytesIO(data), step=step)
    assert b"".join(iter(lambda: text.read(size), b"")) == b"".join(members)
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as reference:
        assert reference.read() == b"".join(members)


class Trickle:
    """A stream that hands out at most ``most`` bytes a read, as a slow socket does."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data, self._most, self._at = data, most, 0

    def read(self, size: int) -> bytes:
        piece = self._data[self._at : self._at + min(size, self._most)]
        self._at += len(piece)
        return piece


def gzip_member(
    text: bytes, flags: int, extra: bytes = b"", name: bytes = b"", comment: bytes = b""
) -> bytes:
    """A gzip member with the header's optional fields that ``flags`` names (RFC 1952)."""
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\x00\x00\x00\x00\x00\xff"
    if flags & 0x04:
        header += len(extra).to_bytes(2, "little") + extra
    if flags & 0x08:
        header += name + b"\x00"
    if flags & 0x10:
        header += comment + b"\x00"
    if flags & 0x02:
        header += (zlib.crc32(header) & 0xFFFF).to_bytes(2, "little")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflate.compress(text) + deflate.flush()
    return header + body + zlib.crc32(text).to_bytes(4, "little") + len(text).to_bytes(4, "little")


@pytest.mark.parametrize("flags", [0x02, 0x04, 0x08, 0x10, 0x0C, 0x18, 0x1E])
@pytest.mark.parametrize("most", [1, 3, 7, 64])
def test_gunzip_reads_headers_with_optional_fields_however_they_arrive(flags: int, most: int) -> None:
    # GIVEN members whose headers carry a CRC, an extra field, a name and a comment (as some
    # tools write them), arriving a few bytes at a time
    text = b"bucket,key%20" * 300
    member = gzip_member(text, flags, extra=b"AB\x02\x00xy", name=b"inventory.csv", comment=b"made by hand")
    data = gzip.compress(b"first member\n") + member + member
    assert gzip.decompress(data) == b"first member\n" + text + text
    # WHEN decompressed, with the smallest steps
    # THEN exactly gzip's text
    assert Gunzip(Trickle(data, most), step=16).read() == gzip.decompress(data)


def test_gunzip_refuses_a_header_that_never_ends() -> None:
    endless = b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff" + b"n" * (2 * 1024 * 1024)
    with pytest.raises(zlib.error):
        Gunzip(io.BytesIO(endless)).read()


def test_gunzip_of_nothing_is_empty_and_a_cut_stream_or_garbage_raises() -> None:
    assert Gunzip(io.BytesIO(b"")).read(10) == b""
    whole = gzip.compress(b"x" * 10_000)
    with pytest.raises(EOFError):
        Gunzip(io.BytesIO(whole[:-5])).read()
    with pytest.raises(zlib.error):
        Gunzip(io.BytesIO(whole + b"not gzip")).read()
    with pytest.raises(zlib.error):
        Gunzip(io.BytesIO(whole + b"no")).read()  # shorter than a gzip header
    with pytest.raises(zlib.error):
        Gunzip(io.BytesIO(whole[:-8] + b"\x00\x00\x00\x00" + whole[-4:])).read()  # CRC
