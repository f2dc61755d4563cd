"""CSV manifests: COSBatchOperations_CSV_V1 and S3BatchOperations_CSV_20180820, read as a stream.

Rules, and why:

- **No header row**; the columns are named by the job's ``Spec/Fields`` (``Ignore``, ``Bucket``,
  ``Key``, ``VersionId``), Bucket and Key exactly once, VersionId at most once.
- **RFC 4180** quoting: commas, doubled quotes, CR and LF may appear inside a quoted field.
- **UTF-8**, a leading BOM ignored (spreadsheets write one). Invalid UTF-8 fails the manifest.
- **Keys are URL-decoded exactly once** with form decoding (``unquote_plus``): S3 Inventory and
  S3 Batch Operations write a space as ``+`` and a literal ``+`` as ``%2B``; ``%252B`` therefore
  names the key ``%2B``. A ``%`` not followed by two hex digits stays as it is; a ``%XX`` sequence
  that is not UTF-8 fails the row (it cannot name an S3 key, and guessing could act on the wrong
  object). Keys are never Unicode-normalized: NFC and NFD spellings are different keys.
- **Spaces.** S3 manifests have none around fields; the COS documentation shows
  ``bucket, key, versionId`` with a space after each comma. So spaces right after a comma are
  skipped before any field (the CSV reader's ``skipinitialspace``, which happens before a
  quote opens), and Bucket and VersionId are also stripped of trailing spaces and tabs (neither
  can contain one). Nothing else is removed from a key: a key that begins with a space must be
  URL-encoded (``%20`` or ``+``) or CSV-quoted (``bucket," key"``), and trailing spaces of a key
  are kept as written.
- **Every row has exactly as many columns as Fields names.** A row with more is refused rather
  than truncated: an unquoted comma in a hand-written key would otherwise silently make the job
  act on a different object.
- Blank lines are skipped. An empty VersionId means "no version" (None). An empty Bucket or Key
  fails the manifest, naming the 1-based row (and the line, when quoted newlines make them differ).
- **Resuming.** ``iter_csv_positioned`` gives each task the byte offset where its row starts, so
  that preparing can stop after any chunk and go on with a ranged GET from there. The offset is
  counted by the line reader that feeds ``csv.reader`` (``streams.iter_lines``), never by a
  buffer: ``csv.reader`` asks for one line at a time, as a record needs it, and reads nothing
  ahead, so a quoted field holding newlines still ends where its record ends.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO
from urllib.parse import unquote_plus

from batchops.manifest.position import START, Position
from batchops.manifest.row_blocks import AROUND_CELL, CsvColumns, RowBlock, read_row_blocks
from batchops.manifest.streams import (
    BUFFER_SIZE,
    ByteSource,
    Offset,
    SourceReader,
    as_binary_io,
    iter_lines,
)
from batchops.manifest.tasks import MALFORMED, ManifestError, ManifestTask

__all__ = [
    "FIELD_NAMES",
    "CsvColumns",
    "as_binary_io",
    "iter_csv_blocks",
    "iter_csv_positioned",
    "iter_csv_tasks",
    "parse_fields",
]

FIELD_NAMES = ("Ignore", "Bucket", "Key", "VersionId")


def parse_fields(fields: Sequence[str]) -> CsvColumns:
    """Validate a manifest's Spec/Fields and locate its columns."""
    unknown = [name for name in fields if name not in FIELD_NAMES]
    if unknown:
        raise ManifestError(
            MALFORMED,
            f"manifest Fields {list(fields)} name unknown column(s) {unknown}; "
            f"each must be one of {', '.join(FIELD_NAMES)}",
        )
    for name, allowed in (("Bucket", (1,)), ("Key", (1,)), ("VersionId", (0, 1))):
        if fields.count(name) not in allowed:
            once = "exactly once" if allowed == (1,) else "at most once"
            raise ManifestError(MALFORMED, f"manifest Fields {list(fields)} must name {name} {once}")
    version = fields.index("VersionId") if "VersionId" in fields else None
    return CsvColumns(fields.index("Bucket"), fields.index("Key"), version, len(fields))


def iter_csv_tasks(stream: BinaryIO | ByteSource, fields: Sequence[str]) -> Iterator[ManifestTask]:
    """Yield a task per row of a header-less CSV manifest, streaming (see the module rules).

    ``stream`` is not closed: whoever opened it closes it (a generator abandoned half-way leaves
    it open too).
    """
    for block in iter_csv_blocks(stream, fields):
        yield from block.tasks()


def iter_csv_positioned(
    stream: BinaryIO | ByteSource, fields: Sequence[str], start: Position = START
) -> Iterator[tuple[ManifestTask, Position]]:
    """``iter_csv_tasks`` with where each task's row starts; ``stream`` begins at ``start``
    (a ranged GET from its offset), which must be a position this function yielded."""
    for block in iter_csv_blocks(stream, fields, start):
        yield from zip(block.tasks(), block.positions(), strict=True)


def iter_csv_blocks(
    stream: BinaryIO | ByteSource, fields: Sequence[str], start: Position = START
) -> Iterator[RowBlock]:
    """The tasks of a CSV manifest a block of rows at a time (``manifest.row_blocks``), from
    ``start`` on, as ``iter_csv_positioned`` reads them."""
    columns = parse_fields(fields)

    def exact(rest: BinaryIO, at: Position) -> Iterator[tuple[ManifestTask, Position]]:
        return _exact_tasks(rest, columns, fields, at)

    raw = io.BufferedReader(SourceReader(stream, close_source=False), BUFFER_SIZE)
    return read_row_blocks(raw, columns, start, exact)


def _exact_tasks(
    stream: BinaryIO, columns: CsvColumns, fields: Sequence[str], start: Position
) -> Iterator[tuple[ManifestTask, Position]]:
    """Row by row through ``csv.reader``: any CSV, and the error that names a bad row."""
    for row_number, line, row, at in iter_csv_rows(stream, "the manifest", start):
        if len(row) != columns.width:
            raise ManifestError(
                MALFORMED,
                f"manifest {where_row(row_number, line)} has {len(row)} column(s) but Fields "
                f"{list(fields)} name {columns.width}; quote a key that contains a comma, or "
                "URL-encode it",
            )
        yield task_from_row(row, columns, f"manifest {where_row(row_number, line)}"), at


def iter_csv_rows(
    stream: BinaryIO | ByteSource, what: str, start: Position = START
) -> Iterator[tuple[int, int, list[str], Position]]:
    """Yield (1-based row, line where the row ends, cells, where the row starts) for every
    non-blank CSV record; ``stream`` begins at ``start``.

    Decoding and CSV errors become ManifestMalformed naming ``what`` and the row. The wrappers
    never close ``stream`` (the raw reader is told not to), so the caller keeps ownership.
    """
    file, offset, row_number, first_line = start
    raw = io.BufferedReader(SourceReader(stream, close_source=False), BUFFER_SIZE)
    consumed = Offset(offset)
    reader = csv.reader(iter_lines(raw, consumed), skipinitialspace=True, strict=True)
    while True:
        at = (file, consumed.value, row_number, first_line + reader.line_num)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = where_row(row_number + 1, first_line + reader.line_num)
            raise ManifestError(MALFORMED, f"{what} is not valid CSV at {where}: {exc}") from exc
        except UnicodeDecodeError as exc:
            where = where_row(row_number + 1, first_line + reader.line_num + 1)
            raise ManifestError(MALFORMED, f"{what} is not valid UTF-8 (near {where})") from exc
        row_number += 1
        if not row or (len(row) == 1 and not row[0].strip(AROUND_CELL)):
            continue
        yield row_number, first_line + reader.line_num, row, at


def task_from_row(row: Sequence[str], columns: CsvColumns, where: str) -> ManifestTask:
    """Build a task from one row's cells; ``where`` names the row in error messages."""
    if len(row) < columns.needed:
        raise ManifestError(
            MALFORMED, f"{where} has {len(row)} column(s); at least {columns.needed} are needed"
        )
    bucket = row[columns.bucket].strip(AROUND_CELL)
    if not bucket:
        raise ManifestError(MALFORMED, f"{where} has an empty Bucket")
    raw_key = row[columns.key]
    if not raw_key:
        raise ManifestError(MALFORMED, f"{where} has an empty Key")
    try:
        key = (
            unquote_plus(raw_key, encoding="utf-8", errors="strict")
            if "%" in raw_key or "+" in raw_key
            else raw_key
        )
    except UnicodeDecodeError as exc:
        raise ManifestError(
            MALFORMED, f"{where}: Key {raw_key!r} has %-escapes that are not UTF-8; encode keys as UTF-8"
        ) from exc
    version_id: str | None = None
    if columns.version_id is not None:
        version_id = row[columns.version_id].strip(AROUND_CELL) or None
    return ManifestTask(bucket, key, version_id)


def where_row(row_number: int, line: int) -> str:
    return f"row {row_number}" if line == row_number else f"row {row_number} (line {line})"
