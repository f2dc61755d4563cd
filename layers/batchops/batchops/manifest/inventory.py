"""Inventory manifests: COSInventoryReport_CSV_V1 and S3InventoryReport_CSV_20161130.

The job's manifest object is an inventory ``manifest.json``; it lists data files in the
inventory's destination bucket, whose rows are the tasks. Two shapes exist:

- **S3**: ``destinationBucket`` is an ARN, ``files[].size`` a number, the checksum
  ``MD5checksum``; fileSchema ``Bucket, Key, VersionId, IsLatest, ...``.
- **COS**: ``sourceAppid``, ``destinationBucket`` a plain name, sizes as strings, the checksum
  ``md5Checksum``; fileSchema ``Appid, Bucket, Key, ...``.

CSV data files are gzip-compressed and header-less, with the columns fileSchema names; their keys
are URL-encoded and decoded exactly as CSV manifests' keys are (see ``csv_manifest``). Neither
S3 nor COS documents whether a data file may start with a header row, so a first row whose
Bucket cell reads ``Bucket`` and Key cell ``Key`` is skipped: ``Bucket`` can never be a bucket
name (bucket names are lowercase), so no real row is lost.

Each data file is streamed (gunzip, CSV) and its MD5 (of the compressed bytes, as listed in
manifest.json) is computed on the way; a mismatch is raised once the file has been read,
**after** its tasks were yielded. Consumers must therefore read the whole manifest (as Preparing
does when it counts tasks and plans chunks) before acting on any task.

``iter_inventory_positioned`` gives each task where its row starts (data file, offset, row; see
``manifest.position``), so that preparing can stop after any chunk and go on later: gzip cannot
seek, so a file resumed part-way is read again from its first byte, its text up to the offset
decompressed and dropped (not parsed), and its MD5 still checked over every byte.

ORC and Parquet inventories are read with pyarrow when it is installed (it is optional: too big
for the Lambda layer). Their keys are not URL-encoded, so they are used as stored. Each file is
spooled to a temporary file (pyarrow needs to seek) and verified before any of its rows is used.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO, Literal, TypeVar

from batchops.manifest.csv_manifest import CsvColumns, iter_csv_rows, task_from_row, where_row
from batchops.manifest.position import START, Position
from batchops.manifest.resources import ResourceError, parse_bucket
from batchops.manifest.row_blocks import RowBlock, blocks_of, read_row_blocks
from batchops.manifest.streams import (
    BUFFER_SIZE,
    GUNZIP_STEP,
    Gunzip,
    ReadAhead,
    SourceReader,
    SupportsRead,
    drain,
)
from batchops.manifest.tasks import (
    CHECKSUM_MISMATCH,
    FORMAT_UNSUPPORTED,
    MALFORMED,
    ManifestError,
    ManifestTask,
)

InventoryFormat = Literal["CSV", "ORC", "Parquet"]
_FORMATS: dict[str, InventoryFormat] = {"csv": "CSV", "orc": "ORC", "parquet": "Parquet"}
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
_COLUMNAR_BATCH_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class InventoryFile:
    """One data file; ``size`` is its (compressed) size in bytes, ``md5`` lowercase hex or None."""

    key: str
    size: int
    md5: str | None


@dataclass(frozen=True, slots=True)
class InventoryManifest:
    source_bucket: str
    destination_bucket: str
    file_format: InventoryFormat
    file_schema: tuple[str, ...]
    files: tuple[InventoryFile, ...]
    source_appid: str | None = None


def parse_inventory_manifest(data: bytes) -> InventoryManifest:
    """Parse an S3- or COS-shaped inventory manifest.json; ManifestMalformed says what is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(MALFORMED, f"the inventory manifest.json is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(MALFORMED, "the inventory manifest.json must be a JSON object")
    file_format = _file_format(_text(doc, "fileFormat"))
    schema = tuple(name.strip() for name in _text(doc, "fileSchema").split(","))
    if any(not name for name in schema):
        raise ManifestError(MALFORMED, f"inventory fileSchema {', '.join(schema)!r} has an empty column name")
    _schema_columns(schema)
    files = doc.get("files")
    if not isinstance(files, list):
        raise ManifestError(MALFORMED, "the inventory manifest.json needs a 'files' list")
    appid = doc.get("sourceAppid")
    if appid is not None and not isinstance(appid, str | int):
        raise ManifestError(MALFORMED, "inventory 'sourceAppid' must be a string")
    return InventoryManifest(
        source_bucket=_text(doc, "sourceBucket"),
        destination_bucket=_bucket_name(_text(doc, "destinationBucket")),
        file_format=file_format,
        file_schema=schema,
        files=tuple(_file(entry, n) for n, entry in enumerate(files, start=1)),
        source_appid=None if appid is None else str(appid),
    )


def iter_inventory_tasks(
    manifest: InventoryManifest, open_file: Callable[[str], BinaryIO]
) -> Iterator[ManifestTask]:
    """Yield every task of every data file, in the order manifest.json lists them.

    ``open_file(key)`` opens a data file of the destination bucket; the stream it returns is
    closed here. Raises ManifestChecksumMismatch (naming the file) after a file whose MD5 differs.
    """
    for block in iter_inventory_blocks(manifest, open_file):
        yield from block.tasks()


def iter_inventory_positioned(
    manifest: InventoryManifest, open_file: Callable[[str], BinaryIO], start: Position = START
) -> Iterator[tuple[ManifestTask, Position]]:
    """``iter_inventory_tasks`` from ``start`` (a position it yielded), with where each row starts.

    The file ``start`` names is read again from its first byte (see ``manifest.position``), so
    its MD5 is still checked over the whole file, by whichever run reads it to its end.
    """
    for block in iter_inventory_blocks(manifest, open_file, start):
        yield from zip(block.tasks(), block.positions(), strict=True)


def iter_inventory_blocks(
    manifest: InventoryManifest, open_file: Callable[[str], BinaryIO], start: Position = START
) -> Iterator[RowBlock]:
    """The tasks of ``iter_inventory_positioned`` a block of rows at a time (``manifest.row_blocks``)."""
    first_file = start[0]
    if first_file > len(manifest.files):
        raise ValueError(f"position {start} is past the inventory's {len(manifest.files)} files")
    files = list(enumerate(manifest.files))[first_file:]
    if manifest.file_format == "CSV":
        columns = _schema_columns(manifest.file_schema)

        def task(row: list[str], where: str) -> ManifestTask:
            return task_from_row(row, columns, where)

        def is_header(row: list[str]) -> bool:
            return _is_header(row, columns)

        for number, entry in files:
            at = start if number == first_file else (number, 0, 0, 0)

            def blocks(rows: SupportsRead, what: str, at: Position = at) -> Iterator[RowBlock]:
                def exact(rest: BinaryIO, where: Position) -> Iterator[tuple[ManifestTask, Position]]:
                    return _rows_from(rest, what, columns, task, where)

                # (the text comes from a ReadAhead, GUNZIP_STEP at a time: see _read_csv_data_file)
                return read_row_blocks(rows, columns, at, exact, is_header, read_size=GUNZIP_STEP)

            yield from _read_csv_data_file(entry, open_file, at, blocks, ahead=True)
        return
    reader = _columnar_reader(manifest.file_format)
    for number, entry in files:
        skip = start[1] if number == first_file else 0
        tasks = _columnar_file_tasks(entry, manifest, reader, open_file, number=number, skip=skip)
        yield from blocks_of(tasks, _COLUMNAR_BATCH_ROWS)


# -- manifest.json fields ---------------------------------------------------------------------


def _text(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(MALFORMED, f"the inventory manifest.json needs a non-empty string {name!r}")
    return value.strip()


def _file_format(value: str) -> InventoryFormat:
    found = _FORMATS.get(value.lower())
    if found is None:
        raise ManifestError(
            FORMAT_UNSUPPORTED, f"inventory fileFormat {value!r} is not supported; use CSV, ORC or Parquet"
        )
    return found


def _bucket_name(value: str) -> str:
    """S3 writes the destination as ``arn:aws:s3:::name``, COS as a plain name."""
    if not value.startswith(("arn:", "qcs::")):
        return value
    try:
        return parse_bucket(value).bucket
    except ResourceError as exc:
        raise ManifestError(MALFORMED, f"inventory destinationBucket: {exc}") from exc


def _schema_columns(schema: tuple[str, ...]) -> CsvColumns:
    folded = [name.lower() for name in schema]
    for name in ("bucket", "key", "versionid"):
        if folded.count(name) > 1:
            raise ManifestError(MALFORMED, f"inventory fileSchema names {name!r} more than once")
    for name in ("bucket", "key"):
        if name not in folded:
            raise ManifestError(
                MALFORMED, f"inventory fileSchema {', '.join(schema)!r} has no {name.capitalize()} column"
            )
    version = folded.index("versionid") if "versionid" in folded else None
    return CsvColumns(folded.index("bucket"), folded.index("key"), version, len(schema))


def _file(entry: object, number: int) -> InventoryFile:
    where = f"inventory files[{number}]"
    if not isinstance(entry, dict):
        raise ManifestError(MALFORMED, f"{where} must be a JSON object")
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        raise ManifestError(MALFORMED, f"{where} needs a non-empty string 'key'")
    size = entry.get("size")
    if isinstance(size, str) and size.strip().isdigit():
        size = int(size.strip())
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestError(MALFORMED, f"{where} ({key}) needs a non-negative integer 'size'")
    md5 = entry.get("MD5checksum", entry.get("md5Checksum"))
    if md5 in (None, ""):
        return InventoryFile(key, size, None)
    if not isinstance(md5, str) or not _MD5.match(md5):
        raise ManifestError(MALFORMED, f"{where} ({key}) has an MD5 checksum that is not 32 hex digits")
    return InventoryFile(key, size, md5.lower())


# -- CSV data files ---------------------------------------------------------------------------


def _is_header(row: list[str], columns: CsvColumns) -> bool:
    return (
        len(row) >= columns.needed
        and row[columns.bucket].strip() == "Bucket"
        and row[columns.key].strip() == "Key"
    )


def _verify(entry: InventoryFile, digest: Any, rest: BinaryIO | None = None) -> None:
    """Hash what is left of the file (``rest``) and compare with manifest.json, when it gives an MD5."""
    if entry.md5 is None:
        return
    if rest is not None:
        drain(rest)
    actual = digest.hexdigest()
    if actual != entry.md5:
        raise ManifestError(
            CHECKSUM_MISMATCH,
            f"inventory file {entry.key} has MD5 {actual} but manifest.json lists {entry.md5}; "
            "the file is corrupt or was replaced",
        )


# -- ORC and Parquet data files (pyarrow, optional) --------------------------------------------

ColumnarReader = Callable[[IO[bytes], dict[str, str]], Iterator[dict[str, list[Any]]]]


def _columnar_reader(file_format: InventoryFormat) -> ColumnarReader:
    """Import pyarrow lazily; without it, fail before any file is opened."""
    module = "pyarrow.orc" if file_format == "ORC" else "pyarrow.parquet"
    try:
        reader_module = importlib.import_module(module)
    except ImportError as exc:
        raise ManifestError(
            FORMAT_UNSUPPORTED,
            f"{file_format} inventories need pyarrow, which is not installed; install it "
            "(pip install pyarrow) or use a CSV inventory",
        ) from exc
    if file_format == "ORC":
        return lambda file, wanted: _orc_batches(reader_module, file, wanted)
    return lambda file, wanted: _parquet_batches(reader_module, file, wanted)


def _resolve(names: list[str], wanted: dict[str, str]) -> dict[str, str]:
    """Map our names (bucket, key, version) to the file's columns, ignoring case and '_'."""
    by_fold = {name.lower().replace("_", ""): name for name in names}
    found = {role: by_fold[fold] for role, fold in wanted.items() if fold in by_fold}
    return found


def _orc_batches(orc: Any, file: IO[bytes], wanted: dict[str, str]) -> Iterator[dict[str, list[Any]]]:
    reader = orc.ORCFile(file)
    columns = _resolve(list(reader.schema.names), wanted)
    for stripe in range(reader.nstripes):
        batch = reader.read_stripe(stripe, columns=list(columns.values()))
        yield {role: batch.column(name).to_pylist() for role, name in columns.items()}


def _parquet_batches(pq: Any, file: IO[bytes], wanted: dict[str, str]) -> Iterator[dict[str, list[Any]]]:
    reader = pq.ParquetFile(file)
    columns = _resolve(list(reader.schema_arrow.names), wanted)
    for batch in reader.iter_batches(batch_size=_COLUMNAR_BATCH_ROWS, columns=list(columns.values())):
        yield {role: batch.column(name).to_pylist() for role, name in columns.items()}


def _columnar_file_tasks(
    entry: InventoryFile,
    manifest: InventoryManifest,
    read_batches: ColumnarReader,
    open_file: Callable[[str], BinaryIO],
    *,
    number: int = 0,
    skip: int = 0,
) -> Iterator[tuple[ManifestTask, Position]]:
    """The tasks of data file ``number`` after its first ``skip`` rows, each with its position
    (its row index is its offset: columnar files are read whole, so no byte offset helps)."""
    what = f"inventory file {entry.key}"
    with tempfile.TemporaryFile() as spool:
        digest = hashlib.md5(usedforsecurity=False)
        stream = open_file(entry.key)
        try:
            while piece := stream.read(BUFFER_SIZE):
                digest.update(piece)
                spool.write(piece)
        finally:
            stream.close()
        _verify(entry, digest)
        spool.seek(0)
        wanted = {"bucket": "bucket", "key": "key", "version": "versionid"}
        row_number = 0
        try:
            batches = read_batches(spool, wanted)
            for batch in batches:
                if "bucket" not in batch or "key" not in batch:
                    raise ManifestError(MALFORMED, f"{what} has no bucket or no key column")
                versions = batch.get("version") or [None] * len(batch["key"])
                for bucket, key, version in zip(batch["bucket"], batch["key"], versions, strict=True):
                    row_number += 1
                    if row_number <= skip:
                        continue
                    if not bucket or not key:
                        raise ManifestError(MALFORMED, f"{what}, row {row_number} has an empty bucket or key")
                    task = ManifestTask(str(bucket), str(key), str(version) if version else None)
                    yield task, (number, row_number - 1, row_number - 1, 0)
        except ManifestError:
            raise
        except Exception as exc:  # pyarrow raises its own hierarchy (ArrowInvalid, OSError, ...)
            raise ManifestError(
                MALFORMED, f"{what} is not a readable {manifest.file_format} file: {exc}"
            ) from exc


# -- inventory records: a task plus the columns object filters need ---------------------------


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    """One inventory row: its task and the metadata filters look at.

    A field is None when fileSchema has no such column or the row's cell is empty (S3 leaves
    Size and StorageClass empty on delete markers); filters treat None as "unknown", never as a
    value. ``last_modified`` is always timezone-aware UTC.
    """

    task: ManifestTask
    size: int | None
    last_modified: datetime | None
    storage_class: str | None
    is_latest: bool | None
    is_delete_marker: bool | None


def iter_inventory_records(
    manifest: InventoryManifest, open_file: Callable[[str], BinaryIO]
) -> Iterator[InventoryRecord]:
    """Yield a record per row, streaming and checking MD5s exactly as ``iter_inventory_tasks`` does.

    As there, a checksum mismatch is raised after the file's records were yielded, so consume the
    whole iterator before acting on any record. CSV inventories only: records exist for object
    filters, which S3's manifest generator also applies to CSV inventories only, and reading
    metadata columns from ORC or Parquet would need pyarrow, which the Lambda layer does not ship.
    A cell that cannot be read (a Size that is not a whole number, an unknown date or boolean)
    fails the manifest: a guess would make a filter keep or drop the wrong objects.
    """
    if manifest.file_format != "CSV":
        raise ManifestError(
            FORMAT_UNSUPPORTED,
            f"object filters need a CSV inventory; this one is {manifest.file_format}",
        )
    columns = _schema_columns(manifest.file_schema)
    extra = _record_columns(manifest.file_schema)

    def record(row: list[str], where: str) -> InventoryRecord:
        return _record_from_row(row, columns, extra, where)

    for number, entry in enumerate(manifest.files):
        for item, _ in _csv_file_rows(entry, columns, open_file, record, (number, 0, 0, 0)):
            yield item


@dataclass(frozen=True, slots=True)
class _RecordColumns:
    """Where the metadata columns sit in a row (None: fileSchema does not have it)."""

    size: int | None
    last_modified: int | None
    storage_class: int | None
    is_latest: int | None
    is_delete_marker: int | None

    @property
    def needed(self) -> int:
        """Columns a row must have to reach every metadata column (0 when there is none)."""
        found = (self.size, self.last_modified, self.storage_class, self.is_latest, self.is_delete_marker)
        return 1 + max((index for index in found if index is not None), default=-1)


def _record_columns(schema: tuple[str, ...]) -> _RecordColumns:
    folded = [name.lower() for name in schema]

    def index(name: str) -> int | None:
        if folded.count(name) > 1:
            raise ManifestError(MALFORMED, f"inventory fileSchema names {name!r} more than once")
        return folded.index(name) if name in folded else None

    return _RecordColumns(
        size=index("size"),
        last_modified=index("lastmodifieddate"),
        storage_class=index("storageclass"),
        is_latest=index("islatest"),
        is_delete_marker=index("isdeletemarker"),
    )


_CsvItem = TypeVar("_CsvItem")
_Read = TypeVar("_Read")


def _csv_file_rows(
    entry: InventoryFile,
    columns: CsvColumns,
    open_file: Callable[[str], BinaryIO],
    build: Callable[[list[str], str], _CsvItem],
    start: Position,
) -> Iterator[tuple[_CsvItem, Position]]:
    """Stream one gzip CSV data file from ``start``, skipping a header row, checking its MD5 once
    read, and turning each row into an item with ``build``, yielded with where its row starts."""

    def rows(stream: SupportsRead, what: str) -> Iterator[tuple[_CsvItem, Position]]:
        return _rows_from(stream, what, columns, build, start)

    return _read_csv_data_file(entry, open_file, start, rows)


def _rows_from(
    stream: SupportsRead,
    what: str,
    columns: CsvColumns,
    build: Callable[[list[str], str], _CsvItem],
    start: Position,
) -> Iterator[tuple[_CsvItem, Position]]:
    """The rows of a data file's text (``stream`` begins at ``start``) row by row, a header row
    at the file's start skipped."""
    first = start[1] == 0
    for row_number, line, row, at in iter_csv_rows(stream, what, start):
        if first and _is_header(row, columns):
            first = False
            continue
        first = False
        yield build(row, f"{what}, {where_row(row_number, line)}"), at


def _read_csv_data_file(
    entry: InventoryFile,
    open_file: Callable[[str], BinaryIO],
    start: Position,
    read: Callable[[SupportsRead, str], Iterator[_Read]],
    *,
    ahead: bool = False,
) -> Iterator[_Read]:
    """Open one gzip CSV data file, decompress it from ``start`` on and hand its text to
    ``read``, checking its MD5 once read; a file that is not gzip, or not the one manifest.json
    lists, fails the manifest. ``ahead``: decompress on a thread of its own, 4 MiB a step and
    two steps ahead (planning, which splits rows fast enough to gain by it; it costs about 15 MB
    of memory, the same for any size of file)."""
    digest = hashlib.md5(usedforsecurity=False)
    stream = open_file(entry.key)
    try:
        compressed = io.BufferedReader(
            SourceReader(stream, close_source=False, on_data=digest.update), BUFFER_SIZE
        )
        what = f"inventory file {entry.key}"
        try:
            text = Gunzip(compressed, GUNZIP_STEP if ahead else 4 * BUFFER_SIZE)
            if not _skip(text, start[1]):
                # (its MD5, when listed, is checked on the way out and tells more)
                raise ManifestError(MALFORMED, f"{what} became shorter while the job was being prepared")
            if ahead:
                with ReadAhead(text, block_size=GUNZIP_STEP, depth=2) as reading:
                    yield from read(reading, what)
            else:
                yield from read(text, what)
        except (OSError, EOFError, zlib.error) as exc:
            _verify(entry, digest, compressed)
            raise ManifestError(MALFORMED, f"{what} is not a readable gzip file: {exc}") from exc
        except ManifestError as exc:
            if exc.code == MALFORMED:
                _verify(entry, digest, compressed)
            raise
        _verify(entry, digest, compressed)
    finally:
        stream.close()


def _skip(stream: SupportsRead, count: int) -> bool:
    """Read and drop ``count`` bytes; False if the stream ends first."""
    while count > 0:
        piece = stream.read(min(BUFFER_SIZE, count))
        if not piece:
            return False
        count -= len(piece)
    return True


def _record_from_row(
    row: list[str], columns: CsvColumns, extra: _RecordColumns, where: str
) -> InventoryRecord:
    task = task_from_row(row, columns, where)
    if len(row) < extra.needed:
        raise ManifestError(
            MALFORMED,
            f"{where} has {len(row)} column(s) but fileSchema puts metadata in column {extra.needed}",
        )
    return InventoryRecord(
        task=task,
        size=_size_cell(_cell(row, extra.size), where),
        last_modified=_date_cell(_cell(row, extra.last_modified), where),
        storage_class=_cell(row, extra.storage_class) or None,
        is_latest=_bool_cell(_cell(row, extra.is_latest), "IsLatest", where),
        is_delete_marker=_bool_cell(_cell(row, extra.is_delete_marker), "IsDeleteMarker", where),
    )


def _cell(row: list[str], index: int | None) -> str:
    return "" if index is None else row[index].strip(" \t")


def _size_cell(text: str, where: str) -> int | None:
    if not text:
        return None
    if not text.isascii() or not text.isdigit():
        raise ManifestError(MALFORMED, f"{where} has Size {text!r}, which is not a whole number of bytes")
    return int(text)


def _date_cell(text: str, where: str) -> datetime | None:
    """S3 writes ``2026-11-20T03:04:05.000Z``; an offset-less time is read as UTC, as inventories are."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ManifestError(
            MALFORMED, f"{where} has LastModifiedDate {text!r}, which is not an ISO-8601 time"
        ) from exc
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _bool_cell(text: str, name: str, where: str) -> bool | None:
    folded = text.lower()
    if folded in ("", "true", "false"):
        return None if not folded else folded == "true"
    raise ManifestError(MALFORMED, f"{where} has {name} {text!r}; expected true or false")
