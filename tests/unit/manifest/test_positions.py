"""Resuming a manifest part-way: from any position a reader yields, reading on gives exactly the
rest, so a prepare split over several runs plans exactly the chunks one run would."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
from collections.abc import Iterator
from typing import IO, Any

import pytest

from batchops.manifest.chunks import Chunk, plan_chunks, plan_positioned
from batchops.manifest.csv_manifest import iter_csv_positioned, iter_csv_tasks
from batchops.manifest.inventory import (
    InventoryFile,
    InventoryManifest,
    _columnar_file_tasks,
    iter_inventory_positioned,
    iter_inventory_tasks,
)
from batchops.manifest.position import START, Position, decode_position, encode_position
from batchops.manifest.tasks import CHECKSUM_MISMATCH, MALFORMED, ManifestError, ManifestTask

FIELDS = ("Bucket", "Key")
# Every line ending, a BOM, blank lines, a quoted key holding CR, LF and CRLF, multi-byte text.
AWKWARD_CSV = (
    '\ufeffb1,k0\r\nb1,k1\n\nb1,"multi\nline\r\nkey\rend"\rb1,caf%C3%A9\n\r\nb1,\u4e2d\u6587\r\nb2,last'
).encode()


class Trickle:
    """A body that hands out at most ``size`` bytes a read (splits lines, CRLFs, characters)."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = data
        self._size = size
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        piece, self._data = self._data[: self._size], self._data[self._size :]
        return piece

    def close(self) -> None:
        self.closed = True


def csv_from(data: bytes, at: Position) -> list[tuple[ManifestTask, Position]]:
    """What a resumed run reads: the object from ``at``'s offset on (a ranged GET), trickled."""
    return list(iter_csv_positioned(Trickle(data[at[1] :], 2), FIELDS, at))


def test_a_csv_manifest_resumed_at_any_row_reads_exactly_the_rest() -> None:
    # GIVEN a manifest with every awkward line ending, read in one go
    whole = list(iter_csv_positioned(io.BytesIO(AWKWARD_CSV), FIELDS))
    assert [t.key for t, _ in whole] == [
        "k0",
        "k1",
        "multi\nline\r\nkey\rend",
        "caf\u00e9",
        "\u4e2d\u6587",
        "last",
    ]
    assert [t for t, _ in whole] == list(iter_csv_tasks(io.BytesIO(AWKWARD_CSV), FIELDS))
    # WHEN it is read again from each task's position, from that byte on
    for n, (_, at) in enumerate(whole):
        # THEN the rest comes out the same, positions included
        assert csv_from(AWKWARD_CSV, at) == whole[n:], at


def test_positions_are_row_starts_with_row_and_line_counts() -> None:
    positions = [at for _, at in iter_csv_positioned(io.BytesIO(AWKWARD_CSV), FIELDS)]
    # the BOM is skipped at offset 0 and is not part of the first row's start
    assert positions[0] == (0, 0, 0, 0)
    assert positions[1] == (0, len("\ufeffb1,k0\r\n".encode()), 1, 1)
    # the quoted key spans four lines (LF, CRLF and CR inside the quotes)
    third = AWKWARD_CSV.index(b'b1,"multi')
    fourth = AWKWARD_CSV.index(b"b1,caf")
    assert positions[2] == (0, third, 3, 3)
    assert positions[3] == (0, fourth, 4, 7)


def test_a_bad_row_after_a_resume_is_named_as_in_one_go() -> None:
    # GIVEN a manifest whose fifth row has no key
    data = b"b,a\nb,b\n\nb,c\nb,\n"
    with pytest.raises(ManifestError) as whole:
        list(iter_csv_tasks(io.BytesIO(data), FIELDS))
    # WHEN it is read from its third task on
    at = list(iter_csv_positioned(io.BytesIO(data[: data.index(b"b,\n")]), FIELDS))[2][1]
    with pytest.raises(ManifestError) as resumed:
        csv_from(data, at)
    # THEN the same row is blamed
    assert str(resumed.value) == str(whole.value) == "manifest row 5 has an empty Key"


def test_invalid_utf8_after_a_resume_still_fails_naming_the_row() -> None:
    data = b"b,a\nb,\xff\n"
    with pytest.raises(ManifestError, match=r"not valid UTF-8 \(near row 2\)") as caught:
        csv_from(data, (0, 4, 1, 1))
    assert caught.value.code == MALFORMED


# -- inventories ------------------------------------------------------------------------------


def inventory(files: dict[str, bytes], schema: str = "Bucket, Key") -> InventoryManifest:
    return InventoryManifest(
        source_bucket="src",
        destination_bucket="dst",
        file_format="CSV",
        file_schema=tuple(name.strip() for name in schema.split(",")),
        files=tuple(InventoryFile(k, len(v), hashlib.md5(v).hexdigest()) for k, v in files.items()),
    )


def open_of(files: dict[str, bytes]) -> Any:
    return lambda key: Trickle(files[key], 7)


INVENTORY_FILES = {
    "data/1.csv.gz": gzip.compress(b"Bucket,Key\nsrc,a1\nsrc,a2\n\nsrc,a3\n"),
    "data/2.csv.gz": gzip.compress(b"src,b1\r\nsrc,%E4%B8%AD\r\n"),
    "data/3.csv.gz": gzip.compress(b""),
    "data/4.csv.gz": gzip.compress(b'src,d1\nsrc,"d,2"\nsrc,d3'),
}


def test_an_inventory_resumed_at_any_row_of_any_file_reads_exactly_the_rest() -> None:
    # GIVEN an inventory of four gzip files (a header row, blank lines, CRLF, an empty file)
    manifest = inventory(INVENTORY_FILES)
    whole = list(iter_inventory_positioned(manifest, open_of(INVENTORY_FILES)))
    assert [t.key for t, _ in whole] == ["a1", "a2", "a3", "b1", "\u4e2d", "d1", "d,2", "d3"]
    assert [t for t, _ in whole] == list(iter_inventory_tasks(manifest, open_of(INVENTORY_FILES)))
    # WHEN it is read again from each task's position
    for n, (_, at) in enumerate(whole):
        # THEN the rest comes out the same; the header is not mistaken for a task mid-file
        assert list(iter_inventory_positioned(manifest, open_of(INVENTORY_FILES), at)) == whole[n:], at
    # AND a position names the file and the offset in its decompressed text
    assert whole[3][1] == (1, 0, 0, 0)
    assert whole[6][1][:2] == (3, len(b"src,d1\n"))


def test_a_file_resumed_part_way_is_still_checked_whole() -> None:
    # GIVEN a resume in the middle of the second file, whose listed MD5 is not its own
    manifest = inventory(INVENTORY_FILES)
    listed = manifest.files[1]
    wrong = InventoryManifest(
        "src",
        "dst",
        "CSV",
        manifest.file_schema,
        (manifest.files[0], InventoryFile(listed.key, listed.size, "0" * 32), *manifest.files[2:]),
    )
    at = list(iter_inventory_positioned(manifest, open_of(INVENTORY_FILES)))[4][1]
    assert at[0] == 1 and at[1] > 0
    # WHEN read from there THEN the mismatch is still found, once the file has been read
    with pytest.raises(ManifestError) as caught:
        list(iter_inventory_positioned(wrong, open_of(INVENTORY_FILES), at))
    assert caught.value.code == CHECKSUM_MISMATCH


def test_a_file_shorter_than_its_position_fails_the_manifest() -> None:
    files = {"d.csv.gz": gzip.compress(b"src,a\n")}
    manifest = inventory(files)
    with pytest.raises(ManifestError, match="became shorter") as caught:
        list(iter_inventory_positioned(manifest, open_of(files), (0, 100, 5, 5)))
    assert caught.value.code == MALFORMED


def test_a_columnar_file_resumes_by_row() -> None:
    # GIVEN a columnar file read in batches (pyarrow's part replaced by its output)
    def batches(_file: IO[bytes], _wanted: dict[str, str]) -> Iterator[dict[str, list[Any]]]:
        yield {"bucket": ["s", "s", "s"], "key": ["k0", "k1", "k2"]}
        yield {"bucket": ["s", "s"], "key": ["k3", "k4"]}

    data = b"columnar bytes"
    entry = InventoryFile("f.parquet", len(data), hashlib.md5(data).hexdigest())
    manifest = InventoryManifest("src", "dst", "Parquet", ("Bucket", "Key"), (entry,))

    def read(skip: int) -> list[tuple[ManifestTask, Position]]:
        opener = lambda _key: io.BytesIO(data)  # noqa: E731
        return list(_columnar_file_tasks(entry, manifest, batches, opener, number=2, skip=skip))

    whole = read(0)
    assert [(t.key, at) for t, at in whole][3] == ("k3", (2, 3, 3, 0))
    # WHEN resumed at each row THEN the rest comes out the same
    for n, (_, at) in enumerate(whole):
        assert read(at[1]) == whole[n:]


# -- chunk planning ---------------------------------------------------------------------------


def test_planning_resumed_at_any_chunk_cuts_the_same_chunks() -> None:
    # GIVEN tasks of random sizes (so chunks close on bytes as well as on counts)
    rng = random.Random(7)
    tasks = [
        (ManifestTask(rng.choice(["b1", "b2"]), "k" * rng.randint(1, 400), None), (0, n, n, n))
        for n in range(500)
    ]
    whole = list(plan_positioned(tasks, max_tasks=37, max_bytes=4000))
    assert [c for c, _ in whole] == list(plan_chunks([t for t, _ in tasks], max_tasks=37, max_bytes=4000))
    assert whole[-1][1] is None
    # WHEN planning resumes where each chunk's successor starts
    for n, (chunk, after) in enumerate(whole[:-1]):
        assert after is not None
        resumed = plan_positioned(
            tasks[after[1] :],
            max_tasks=37,
            max_bytes=4000,
            first_index=chunk.index + 1,
            first_ordinal=chunk.first_ordinal + len(chunk.tasks),
        )
        # THEN the same chunks follow, numbered the same
        assert list(resumed) == whole[n + 1 :]


def test_each_chunk_carries_where_the_next_starts() -> None:
    tasks = [(ManifestTask("b", f"k{n}", None), (0, 10 * n, n, n)) for n in range(5)]
    planned = list(plan_positioned(tasks, max_tasks=2))
    assert [(c.index, c.first_ordinal, len(c.tasks), after) for c, after in planned] == [
        (0, 0, 2, (0, 20, 2, 2)),
        (1, 2, 2, (0, 40, 4, 4)),
        (2, 4, 1, None),
    ]
    assert all(isinstance(c, Chunk) for c, _ in planned)


def test_positions_round_trip_and_nothing_else_decodes() -> None:
    assert decode_position(encode_position((3, 12345678901, 42, 43))) == (3, 12345678901, 42, 43)
    assert decode_position(encode_position(START)) == START
    for bad in ("", "1:2:3", "1:2:3:x", "1:-2:3:4", "1:2:3:4:5", "\u0661:2:3:4"):
        with pytest.raises(ValueError, match="not a manifest position"):
            decode_position(bad)
