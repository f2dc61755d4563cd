"""Write a completion report to S3 in the layout of S3 Batch Operations reports.

::

    <prefix>/job-<job_id>/results/<sha1 of "<job_id>/<status>">.csv   one file per task status present
    <prefix>/job-<job_id>/manifest.json                               written last

Rows stream to one spool file per task status in a private temporary directory, with each file's
MD5 computed on the way, so memory stays flat whatever the number of rows; only the disk holds
the report (on Lambda that is ``/tmp``, whose size bounds the largest report one finalize can
write). ``finish`` uploads the spools with boto3's managed transfer from their *file names*: for a
file name s3transfer reads each part lazily from disk, whereas for an open file object it copies
every multipart part into memory first.

Why the names are what they are:

- A results file is named by the SHA-1 of ``"<job_id>/<status>"``, not of its content, so a
  finalize that is retried (at-least-once delivery, a killed worker) overwrites the same keys
  instead of leaving a second set of results beside the first.
- ``manifest.json`` is put last, so its presence means every results file it lists is complete.
  It is the index: a reader goes through it, never lists ``results/``. (A retried finalize that
  writes fewer statuses than an earlier attempt leaves that attempt's extra file unlisted.)
- MD5Checksum is the MD5 of the bytes we uploaded, as S3 gives it, not the object's ETag (which
  for a multipart upload is not an MD5 of the content).

Two finalizers racing on one job could interleave their results and manifests; the caller runs
one finalize per job at a time and feeds rows in a stable order so a rerun is byte-identical.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from batchops.report.rows import (
    REPORT_SCHEMA,
    TASK_STATUS_FAILED,
    TASK_STATUS_SUCCEEDED,
    TASK_STATUSES,
    ReportRow,
    format_row,
)

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3.client import S3Client

MANIFEST_NAME = "manifest.json"
RESULTS_CONTENT_TYPE = "text/csv; charset=utf-8"
MANIFEST_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class ReportLocation:
    """Where a finished report lives; ``rows_written`` has a count for every task status."""

    bucket: str
    manifest_key: str
    result_keys: tuple[str, ...]
    rows_written: dict[str, int]


def report_root(prefix: str | None, job_id: str) -> str:
    """``<prefix>/job-<job_id>``, or ``job-<job_id>`` without a prefix; trailing ``/`` is dropped."""
    base = (prefix or "").rstrip("/")
    return f"{base}/job-{job_id}" if base else f"job-{job_id}"


def results_key(prefix: str | None, job_id: str, status: str) -> str:
    name = hashlib.sha1(f"{job_id}/{status}".encode(), usedforsecurity=False).hexdigest()
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


class _Spool:
    """One task status's rows on disk, with the running MD5 of what was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[bytes] = path.open("wb")
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.rows = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.md5.update(data)
        self.rows += 1


class ReportWriter:
    """Stream report rows to disk, then upload the results files and manifest.json.

    Use it as a context manager: leaving the block removes the spool files whether or not
    ``finish`` ran or succeeded. ``finish`` may be called again after it raised (the spools are
    kept until it succeeds); after it succeeded it returns the same location without uploading.
    ``failed_only`` and what follows are keyword-only: a bare ``True`` in a call says nothing.
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
        transfer_config: TransferConfig | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("the report bucket must not be empty")
        if not job_id or "/" in job_id:
            raise ValueError(f"job_id must be non-empty and hold no '/': {job_id!r}")
        self._s3 = s3_client
        self._bucket = bucket
        self._prefix = prefix
        self._job_id = job_id
        self._format = report_format
        self._failed_only = failed_only
        self._clock = clock
        # None: boto3's default TransferConfig, made by upload_file itself (so that importing the
        # writer does not import boto3).
        self._transfer = transfer_config
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._spools: dict[str, _Spool] = {}
        self._finishing = False
        self._closed = False
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

    def add(self, row: ReportRow) -> None:
        """Append a row to its status's results file (succeeded rows are dropped when failed_only)."""
        if self._finishing or self._closed:
            raise RuntimeError("rows cannot be added once finish() has been called or the writer is closed")
        if self._failed_only and row.succeeded:
            return
        self._spool(row.task_status).write(format_row(row).encode("utf-8"))

    def finish(self) -> ReportLocation:
        """Upload every non-empty results file, then manifest.json; return where the report is."""
        if self._location is not None:
            return self._location
        if self._closed:
            raise RuntimeError("the writer is closed; its rows are gone")
        self._finishing = True
        results: list[dict[str, str]] = []
        for status in TASK_STATUSES:
            spool = self._spools.get(status)
            if spool is None or spool.rows == 0:
                continue
            spool.file.close()
            key = results_key(self._prefix, self._job_id, status)
            self._s3.upload_file(
                str(spool.path),
                self._bucket,
                key,
                ExtraArgs={"ContentType": RESULTS_CONTENT_TYPE},
                Config=self._transfer,
            )
            results.append(
                {
                    "TaskExecutionStatus": status,
                    "Bucket": self._bucket,
                    "MD5Checksum": spool.md5.hexdigest(),
                    "Key": key,
                }
            )
        body = self._manifest_body(results)
        key = manifest_key(self._prefix, self._job_id)
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
            result_keys=tuple(result["Key"] for result in results),
            rows_written={
                TASK_STATUS_SUCCEEDED: self._rows(TASK_STATUS_SUCCEEDED),
                TASK_STATUS_FAILED: self._rows(TASK_STATUS_FAILED),
            },
        )
        self.close()
        return self._location

    def close(self) -> None:
        """Remove the spool files; safe to call more than once."""
        self._closed = True
        for spool in self._spools.values():
            spool.file.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _spool(self, status: str) -> _Spool:
        spool = self._spools.get(status)
        if spool is None:
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="batchops-report-", ignore_cleanup_errors=True)
            spool = _Spool(Path(self._dir.name) / f"{status}.csv")
            self._spools[status] = spool
        return spool

    def _rows(self, status: str) -> int:
        spool = self._spools.get(status)
        return spool.rows if spool is not None else 0

    def _manifest_body(self, results: list[dict[str, str]]) -> bytes:
        manifest: dict[str, Any] = {
            "Format": self._format,
            "ReportCreationDate": iso_millis(self._clock()),
            "Results": results,
            "ReportSchema": REPORT_SCHEMA,
        }
        return json.dumps(manifest, indent=4).encode("utf-8")
