"""Reading a CSV manifest keeps memory flat: ten times the rows, (almost) the same peak."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from batchops.manifest.csv_manifest import iter_csv_tasks
from batchops.manifest.streams import as_binary_io


def generated_body(rows: int) -> Iterator[bytes]:
    """A manifest produced on the fly in ~64 KiB pieces, like a streamed HTTP body."""
    batch: list[str] = []
    for n in range(rows):
        batch.append(f"examplebucket-1250000000,photos%2F2024%2Fimg+{n:08d}%2Bv.jpg,version-{n:012d}\n")
        if len(batch) == 700:
            yield "".join(batch).encode()
            batch.clear()
    if batch:
        yield "".join(batch).encode()


def peak_while_reading(rows: int) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        count = 0
        last = None
        with as_binary_io(generated_body(rows)) as stream:
            for task in iter_csv_tasks(stream, ("Bucket", "Key", "VersionId")):
                count += 1
                last = task
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert last is not None
    assert last.key == f"photos/2024/img {rows - 1:08d}+v.jpg"
    return peak


def test_peak_memory_does_not_grow_with_the_manifest() -> None:
    # GIVEN manifests of 20,000 and 200,000 rows (about 1.6 MB and 16 MB)
    # WHEN each is streamed through the CSV reader
    small = peak_while_reading(20_000)
    large = peak_while_reading(200_000)
    # THEN the peak stays within 1.5x and far below the manifest's size
    assert large <= small * 1.5, (small, large)
    assert large < 2_000_000, large
