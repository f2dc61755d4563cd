"""Write a completion report to S3 in the layout of S3 Batch Operations reports.

::

    <prefix>/job-<job_id>/results/<sha1 of "<job_id>/<status>[/<n>]">.csv   one or more per task status
    <prefix>/job-<job_id>/manifest.json                                  written last

Rows stream straight to S3, with nothing on disk and memory flat whatever the number of rows:
each results file is a multipart upload fed from an in-memory buffer of about ``part_bytes``
(one buffer per task status), and a file that reaches ``file_bytes`` is completed and the
status's rows go on in a next file, as S3 Batch Operations writes several results files per
job. Each file's MD5 is computed on the way, since S3 gives no MD5 of a multipart object. A file
that ends smaller than one part goes up as a single PutObject.

Why the names are what they are:

- A results file is named by the SHA-1 of ``"<job_id>/<status>"`` (the first file of a status)
  or ``"<job_id>/<status>/<n>"`` (the next ones), not of its content, so a finalize that is
  retried (at-least-once delivery, a killed worker) overwrites the same keys instead of leaving
  a second set of results beside the first.
- ``manifest.json`` is put last, so its presence means every results file it lists is complete.
  It is the index: a reader goes through it, never lists ``results/``. (A retried finalize that
  writes fewer files than an earlier attempt leaves that attempt's extra files unlisted.)
- MD5Checksum is the MD5 of the bytes we uploaded, as S3 gives it, not the object's ETag (which
  for a multipart upload is not an MD5 of the content).

A report too long for one invocation is written in steps (``Engine.finalize`` with a deadline):
``complete_files`` completes every file in progress at a clean point, and a writer made for the
next step with ``written`` (the files completed so far) numbers its files on after them. So no
file, upload or running MD5 ever spans two steps: a step's files are whole when it stops, and
the last step's ``finish`` lists every step's files in manifest.json. ``on_upload`` is told of
each multipart upload as it is created (status, file number, upload id), before its first part,
so that the finalizer can record it and a successor abort it if this writer dies with it in
progress.

A report that cannot be written leaves no multipart upload behind: every failure aborts the
uploads in progress. ``may_write`` is asked before every request that writes: the finalizer
passes whether it still holds its job, so a finalizer that lost the job to another one stops
(``ReportAbandonedError``) instead of writing over the other's report. The caller feeds rows in a
stable order so that a rerun is byte-identical.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from batchops.report.rows import (
    REPORT_SCHEMA,
    TASK_STATUS_FAILED,
    TASK_STATUS_SUCCEEDED,
    TASK_STATUSES,
    ReportRow,
    format_row,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
RESULTS_CONTENT_TYPE = "text/csv; charset=utf-8"
MANIFEST_CONTENT_TYPE = "application/json"
MIN_PART_BYTES = 5 * 1024**2
"""S3's smallest part (every part but the last)."""
MAX_PARTS = 10_000
"""S3's most parts in one upload."""
PART_BYTES = 8 * 1024**2
FILE_BYTES = 1024**3
"""A results file closes before it passes this: 128 parts of PART_BYTES; 117 bytes a row
(docs/SCALE.md) make about 9.2M rows a file."""


class ReportAbandonedError(Exception):
    """``may_write`` said no: the writer stopped, aborted its uploads and wrote no manifest."""


@dataclass(frozen=True, slots=True)
class ReportLocation:
    """Where a finished report lives; ``rows_written`` has a count for every task status (of the
    rows this writer added: a report written in steps counts only its last step's)."""

    bucket: str
    manifest_key: str
    result_keys: tuple[str, ...]
    rows_written: dict[str, int]


def report_root(prefix: str | None, job_id: str) -> str:
    """``<prefix>/job-<job_id>``, or ``job-<job_id>`` without a prefix; trailing ``/`` is dropped."""
    base = (prefix or "").rstrip("/")
    return f"{base}/job-{job_id}" if base else f"job-{job_id}"


def results_key(prefix: str | None, job_id: str, status: str, number: int = 0) -> str:
    """The key of results file ``number`` (from 0) of a status."""
    named = f"{job_id}/{status}" if number == 0 else f"{job_id}/{status}/{number}"
    name = hashlib.sha1(named.encode(), usedforsecurity=False).hexdigest()
    return f"{report_root(prefix, job_id)}/results/{name}.csv"


def manifest_key(prefix: str | None, job_id: str) -> str:
    return f"{report_root(prefix, job_id)}/{MANIFEST_NAME}"


def iso_millis(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as S3 writes ReportCreationDate."""
    if moment.utcoffset() is None:
        raise ValueError("the report clock must return a timezone-aware datetime")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _always() -> bool:
    return True


def _content_md5(data: io.BytesIO) -> str:
    with data.getbuffer() as view:
        return base64.b64encode(hashlib.md5(view, usedforsecurity=False).digest()).decode()


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A completed results file: its status, its number among the status's files, its key and
    the MD5 (hex) of its whole content."""

    status: str
    number: int
    key: str
    md5: str


@dataclass(eq=False)
class _ResultsFile:
    """One results object being written: its unsent bytes, its parts so far, its running MD5."""

    status: str
    number: int
    key: str
    md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    size: int = 0
    buffer: io.BytesIO = field(default_factory=io.BytesIO)
    """The bytes not sent yet. It goes to S3 as it is, a file botocore reads in blocks, so a part
    is held in memory once, not copied whole for the request."""
    upload_id: str | None = None
    parts: list[CompletedPartTypeDef] = field(default_factory=list)

    def append(self, data: bytes) -> None:
        self.buffer.write(data)
        self.md5.update(data)
        self.size += len(data)


class ReportWriter:
    """Stream report rows to results files in S3, then write manifest.json.

    Use it as a context manager: leaving the block without ``finish`` (or after a failure) aborts
    the uploads in progress. A writer that failed is done: ``add`` and ``finish`` refuse, since
    rows already streamed cannot be sent again. After ``finish`` succeeded it returns the same
    location without writing. ``failed_only`` and what follows are keyword-only: a bare ``True``
    in a call says nothing.
    """

    def __init__(
        self,
        s3_client: S3Client,
        bucket: str,
        prefix: str | None,
        job_id: str,
        report_format: str,
        *,
        failed_only: bool,
        clock: Callable[[], datetime] = _utc_now,
        part_bytes: int = PART_BYTES,
        file_bytes: int = FILE_BYTES,
        may_write: Callable[[], bool] = _always,
        written: Sequence[WrittenFile] = (),
        on_upload: Callable[[str, int, str], None] | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("the report bucket must not be empty")
        if not job_id or "/" in job_id:
            raise ValueError(f"job_id must be non-empty and hold no '/': {job_id!r}")
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's smallest part)")
        # Parts are sent once the buffer holds part_bytes, so a file of file_bytes has at most
        # file_bytes // part_bytes full parts and one last part.
        if file_bytes < 1 or file_bytes // part_bytes >= MAX_PARTS:
            raise ValueError(f"file_bytes must be positive and at most {MAX_PARTS - 1} parts of part_bytes")
        self._s3 = s3_client
        self._bucket = bucket
        self._prefix = prefix
        self._job_id = job_id
        self._format = report_format
        self._failed_only = failed_only
        self._clock = clock
        self._part_bytes = part_bytes
        self._file_bytes = file_bytes
        self._may_write = may_write
        # When botocore adds checksums to requests (its default, "when_supported"), the upload
        # declares CRC32 and its completion lists each part's, as boto3's managed upload does;
        # otherwise (an endpoint configured "when_required") each part carries its Content-MD5.
        # (getattr: botocore-stubs do not know the setting yet.)
        self._crc32 = getattr(s3_client.meta.config, "request_checksum_calculation", None) == "when_supported"
        self._on_upload = on_upload
        self._open: dict[str, _ResultsFile] = {}
        # Files completed by earlier steps of the same report, then by this writer.
        self._written: list[WrittenFile] = list(written)
        self._next_number = dict.fromkeys(TASK_STATUSES, 0)
        for done in self._written:
            self._next_number[done.status] = max(self._next_number[done.status], done.number + 1)
        self._rows = dict.fromkeys(TASK_STATUSES, 0)
        self._finishing = False
        self._broken = False
        self._location: ReportLocation | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def failed_only(self) -> bool:
        """Succeeded rows are dropped (scope FailedTasksOnly)."""
        return self._failed_only

    def add(self, row: ReportRow) -> None:
        """Append a row to its status's results file (succeeded rows are dropped when failed_only)."""
        self._check_open()
        if self._failed_only and row.succeeded:
            return
        self._add_line(row.task_status, format_row(row).encode("utf-8"))

    def add_lines(self, status: str, lines: Sequence[str]) -> None:
        """Append rows of one status already formatted (``format_row``'s lines, in order): the
        same bytes, files and parts as ``add`` of each row, with the per-row work done once."""
        self._check_open()
        if not lines or (self._failed_only and status == TASK_STATUS_SUCCEEDED):
            return
        data = "".join(lines).encode("utf-8")
        results = self._open.get(status)
        if (
            results is None
            or results.size + len(data) > self._file_bytes
            or results.buffer.tell() + len(data) >= self._part_bytes
        ):
            # A new file, or a file or part ending inside these rows: row by row, as add would.
            for line in lines:
                self._add_line(status, line.encode("utf-8"))
            return
        try:
            results.append(data)
        except BaseException:
            self._fail()
            raise
        self._rows[status] += len(lines)

    def _check_open(self) -> None:
        if self._finishing or self._broken:
            raise RuntimeError("rows cannot be added once finish() has been called or the writer is closed")

    def _add_line(self, status: str, data: bytes) -> None:
        try:
            results = self._open.get(status)
            if results is None:
                results = self._open[status] = self._new_file(status, 0)
            elif results.size and results.size + len(data) > self._file_bytes:
                self._complete(results)
                results = self._open[status] = self._new_file(status, results.number + 1)
            results.append(data)
            self._rows[status] += 1
            if results.buffer.tell() >= self._part_bytes:
                self._send_part(results)
        except BaseException:
            self._fail()
            raise

    def finish(self) -> ReportLocation:
        """Complete every results file, then write manifest.json; return where the report is."""
        if self._location is not None:
            return self._location
        if self._broken:
            raise RuntimeError("the writer is closed or failed; its rows are gone")
        self._finishing = True
        with self._aborting():
            self._complete_open()
            order = {status: n for n, status in enumerate(TASK_STATUSES)}
            written = sorted(self._written, key=lambda f: (order[f.status], f.number))
            body = self._manifest_body(
                [
                    {
                        "TaskExecutionStatus": f.status,
                        "Bucket": self._bucket,
                        "MD5Checksum": f.md5,
                        "Key": f.key,
                    }
                    for f in written
                ]
            )
            key = manifest_key(self._prefix, self._job_id)
            self._check_may_write()
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=MANIFEST_CONTENT_TYPE,
                ContentMD5=base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
            )
        self._location = ReportLocation(
            bucket=self._bucket,
            manifest_key=key,
            result_keys=tuple(f.key for f in written),
            rows_written={
                TASK_STATUS_SUCCEEDED: self._rows[TASK_STATUS_SUCCEEDED],
                TASK_STATUS_FAILED: self._rows[TASK_STATUS_FAILED],
            },
        )
        return self._location

    def complete_files(self) -> tuple[WrittenFile, ...]:
        """Complete every results file in progress (a clean point to stop at); every file
        completed so far, this writer's and those it was given. Rows added after go to new files,
        numbered on."""
        if self._finishing or self._broken:
            raise RuntimeError("files cannot be completed after finish() or once the writer is closed")
        with self._aborting():
            self._complete_open()
        return tuple(self._written)

    @property
    def written_files(self) -> tuple[WrittenFile, ...]:
        """The results files completed so far (those given, then this writer's)."""
        return tuple(self._written)

    def close(self) -> None:
        """Abort the uploads still in progress (none after a successful finish); safe to repeat."""
        if self._location is None:
            self._broken = True
        self._abort_open()

    # --- one results file -------------------------------------------------------------------------

    def _new_file(self, status: str, number: int) -> _ResultsFile:
        # A status's first file of this writer comes after the files of the steps before it.
        number = max(number, self._next_number[status])
        self._next_number[status] = number + 1
        return _ResultsFile(status, number, results_key(self._prefix, self._job_id, status, number))

    def _complete_open(self) -> None:
        for status in TASK_STATUSES:
            results = self._open.get(status)
            if results is not None:
                self._complete(results)
                del self._open[status]

    def _send_part(self, results: _ResultsFile) -> None:
        self._check_may_write()
        crc32: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if self._crc32 else {}
        if results.upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=results.key, ContentType=RESULTS_CONTENT_TYPE, **crc32
            )
            results.upload_id = created["UploadId"]
            if self._on_upload is not None:
                self._on_upload(results.status, results.number, results.upload_id)
            self._check_may_write()
        body, results.buffer = results.buffer, io.BytesIO()
        body.seek(0)
        number = len(results.parts) + 1
        sent = self._s3.upload_part(
            Bucket=self._bucket,
            Key=results.key,
            UploadId=results.upload_id,
            PartNumber=number,
            Body=body,
            **(crc32 or {"ContentMD5": _content_md5(body)}),
        )
        part: CompletedPartTypeDef = {"ETag": sent["ETag"], "PartNumber": number}
        if self._crc32:
            part["ChecksumCRC32"] = sent["ChecksumCRC32"]
        results.parts.append(part)
        body.close()

    def _complete(self, results: _ResultsFile) -> None:
        if results.upload_id is None:
            # Smaller than one part: one PutObject, its Content-MD5 the file's MD5.
            self._check_may_write()
            body = results.buffer
            body.seek(0)
            self._s3.put_object(
                Bucket=self._bucket,
                Key=results.key,
                Body=body,
                ContentType=RESULTS_CONTENT_TYPE,
                ContentMD5=base64.b64encode(results.md5.digest()).decode(),
            )
        else:
            if results.buffer.tell():
                self._send_part(results)
            self._check_may_write()
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=results.key,
                UploadId=results.upload_id,
                MultipartUpload={"Parts": results.parts},
            )
            results.upload_id = None
        results.buffer = io.BytesIO()
        done = WrittenFile(results.status, results.number, results.key, results.md5.hexdigest())
        self._written.append(done)

    # --- failure --------------------------------------------------------------------------------

    def _check_may_write(self) -> None:
        if not self._may_write():
            raise ReportAbandonedError(f"report of job {self._job_id}: told to stop writing")

    @contextlib.contextmanager
    def _aborting(self) -> Iterator[None]:
        """Any exception while writing breaks the writer and aborts its uploads, then propagates."""
        try:
            yield
        except BaseException:
            self._fail()
            raise

    def _fail(self) -> None:
        self._broken = True
        self._abort_open()

    def _abort_open(self) -> None:
        for results in self._open.values():
            if results.upload_id is None:
                continue
            try:
                self._s3.abort_multipart_upload(
                    Bucket=self._bucket, Key=results.key, UploadId=results.upload_id
                )
            except Exception:  # the bucket's lifecycle rule, if any, is the last resort
                log.warning(
                    "report upload %s of %s not aborted", results.upload_id, results.key, exc_info=True
                )
            results.upload_id = None
        self._open.clear()

    def _manifest_body(self, results: list[dict[str, str]]) -> bytes:
        manifest: dict[str, Any] = {
            "Format": self._format,
            "ReportCreationDate": iso_millis(self._clock()),
            "Results": results,
            "ReportSchema": REPORT_SCHEMA,
        }
        return json.dumps(manifest, indent=4).encode("utf-8")
