"""Write the rows a rule's filters keep as a COSBatchOperations_CSV_V1 manifest in S3.

The job created for a filtered rule points at this object instead of the inventory, pinned by the
ETag returned here. Format, and why:

- **Header-less ``bucket,key,versionId``**, described to CreateJob by ``FIELDS``. The VersionId
  column is always written, empty when a record has none, so one Fields value describes every
  manifest (readers, ours included, take an empty VersionId as "the current version").
- **Keys are URL-encoded** with ``quote_plus(key, safe="/")``, as S3 Inventory writes them and as
  both S3 and COS require: a space becomes ``+``, a ``+`` ``%2B``, a comma, quote, CR or LF a
  ``%XX`` escape. The reader decodes with ``unquote_plus`` exactly once, so every key round-trips
  byte for byte (and keys never need CSV quoting). Bucket and version cells are quoted per
  RFC 4180 if they ever need it. Lines end in ``\\n``, as S3's own manifests and inventories do.
- **Spooled, then uploaded**: rows stream to a temporary file, so memory stays flat whatever the
  inventory's size, and nothing is uploaded unless every record was read. That matters because
  inventory readers raise a checksum mismatch only after a data file's rows were yielded: a
  corrupt inventory must not leave a manifest that a retry or a sweep could pick up. The upload
  uses boto3's managed transfer from the file's *name* (it then reads each part lazily from
  disk; from an open file object it would copy each multipart part into memory).
- **ETag from a HEAD** after the upload, as S3 returns it (quotes included): ``upload_file``
  returns nothing, and for a multipart upload the ETag is not an MD5 we could compute. The key
  should be one only this rule writes (a rerun on the same inventory rewrites identical bytes);
  a different writer racing on the same key between upload and HEAD would not be noticed.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from batchops.manifest.inventory import InventoryRecord

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3.client import S3Client

__all__ = ["CONTENT_TYPE", "FIELDS", "FORMAT", "FilteredManifest", "write_filtered_manifest"]

FORMAT = "COSBatchOperations_CSV_V1"
FIELDS = ("Bucket", "Key", "VersionId")
"""Spec/Fields of every filtered manifest; the VersionId cell is empty for a record without one."""
CONTENT_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True, slots=True)
class FilteredManifest:
    """Where the filtered manifest is and how to pin it in CreateJob.

    ``etag`` is exactly as S3 gave it (usually with its double quotes); ``version_id`` is None
    unless the bucket is versioned; ``rows`` is how many records were kept (0 is possible: the
    caller decides whether an empty job is worth creating).
    """

    bucket: str
    key: str
    etag: str
    rows: int
    version_id: str | None


def write_filtered_manifest(
    s3_client: S3Client,
    records: Iterable[InventoryRecord],
    keep: Callable[[InventoryRecord], bool],
    bucket: str,
    key: str,
    *,
    transfer_config: TransferConfig | None = None,
) -> FilteredManifest:
    """Stream ``records`` through ``keep`` into a CSV manifest at ``bucket/key`` (see module rules).

    Exceptions from ``records`` or ``keep`` (a ManifestError from the inventory) propagate before
    anything is uploaded; S3 errors from the upload or the HEAD propagate as boto3 raises them.
    The temporary file is removed in every case.
    """
    if not bucket or not key:
        raise ValueError(f"the filtered manifest needs a bucket and a key, not {bucket!r}/{key!r}")
    with tempfile.TemporaryDirectory(prefix="batchops-filtered-", ignore_cleanup_errors=True) as spool_dir:
        path = Path(spool_dir) / "manifest.csv"
        rows = _spool(records, keep, path)
        s3_client.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"ContentType": CONTENT_TYPE},
            Config=transfer_config,  # None: boto3's default TransferConfig
        )
    head = s3_client.head_object(Bucket=bucket, Key=key)
    return FilteredManifest(
        bucket=bucket,
        key=key,
        etag=head["ETag"],
        rows=rows,
        version_id=head.get("VersionId") or None,
    )


def _manifest_row(record: InventoryRecord) -> tuple[str, str, str]:
    """The CSV cells of one record: bucket, URL-encoded key, version ID or empty."""
    task = record.task
    return task.bucket, quote_plus(task.key, safe="/"), task.version_id or ""


def _spool(records: Iterable[InventoryRecord], keep: Callable[[InventoryRecord], bool], path: Path) -> int:
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as text:
        writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        for record in records:
            if keep(record):
                writer.writerow(_manifest_row(record))
                rows += 1
    return rows
