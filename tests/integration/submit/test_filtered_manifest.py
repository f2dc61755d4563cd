"""Filtered manifests against a moto server: a 100k-row inventory filtered, round-trips, flat memory."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.config import Config

from batchops.manifest.csv_manifest import iter_csv_tasks
from batchops.manifest.inventory import (
    InventoryRecord,
    iter_inventory_records,
    parse_inventory_manifest,
)
from batchops.manifest.source import inventory_file_opener, read_small_object
from batchops.manifest.tasks import CHECKSUM_MISMATCH, ManifestError, ManifestTask
from batchops.submit.filtered_manifest import (
    CONTENT_TYPE,
    FIELDS,
    FilteredManifest,
    write_filtered_manifest,
)
from batchops.submit.filters import matcher, parse_filters
from tests.conftest import ROOT, new_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.integration

SOURCE = "photo-archive-1250000000"
SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE", "INTELLIGENT_TIERING")
PREFIXES = ("photos/", "logs/", "tmp/photos/", "Photos/")
FIRST_MODIFIED = datetime(2026, 6, 1, tzinfo=UTC)
NOW = datetime(2026, 8, 4, tzinfo=UTC)  # 30 days before is mid-way through the 100k rows

FILTERS: dict[str, Any] = {
    "keyPrefixes": ["photos/"],
    "sizeGreaterThan": 1000,
    "sizeLessThan": 50000,
    "storageClasses": ["STANDARD", "standard_ia"],
    "latestVersionOnly": True,
    "excludeDeleteMarkers": True,
    "modifiedBefore": "30d",
}


def task(key: str, version_id: str | None = None) -> InventoryRecord:
    return InventoryRecord(ManifestTask(SOURCE, key, version_id), 1, None, None, None, None)


def read_back(s3: S3Client, written: FilteredManifest) -> list[ManifestTask]:
    body = s3.get_object(Bucket=written.bucket, Key=written.key, IfMatch=written.etag)["Body"]
    with body:
        return list(iter_csv_tasks(body, FIELDS))


# -- round trips -------------------------------------------------------------------------------

AWKWARD_KEYS = (
    "plain/key.txt",
    "with space/and  two.txt",
    " leading and trailing ",
    "a+b",
    "a%2Bb",
    "100%",
    "%%41%zz",
    "unicode/日本語/é-café-Ω.txt",
    "decomposed/e\u0301.txt",
    "comma,in,key",
    'quote"in"key',
    "new\nline",
    "carriage\r\nreturn",
    "tab\tand;semicolon",
    "+",
    "/",
    "a//b/",
    "emoji/😀",
    "x" * 1024,
)


def test_awkward_keys_round_trip_through_the_csv_reader(s3: S3Client) -> None:
    # GIVEN records whose keys need URL-encoding, some with version IDs and some without
    bucket = new_bucket(s3)
    records = [task(key, None if n % 2 else f"v{n}.x_Y") for n, key in enumerate(AWKWARD_KEYS)]
    # WHEN every record is written
    written = write_filtered_manifest(s3, records, lambda record: True, bucket, "filtered/awkward.csv")
    # THEN reading it back as a COSBatchOperations_CSV_V1 manifest with FIELDS gives the same tasks
    assert written.rows == len(AWKWARD_KEYS)
    assert read_back(s3, written) == [record.task for record in records]
    # AND the bytes are header-less bucket,key,version lines with keys form-encoded
    body = s3.get_object(Bucket=bucket, Key=written.key)["Body"].read().decode()
    lines = body.split("\n")
    assert lines[:4] == [
        f"{SOURCE},plain/key.txt,v0.x_Y",
        f"{SOURCE},with+space/and++two.txt,",
        f"{SOURCE},+leading+and+trailing+,v2.x_Y",
        f"{SOURCE},a%2Bb,",
    ]
    assert lines[4] == f"{SOURCE},a%252Bb,v4.x_Y"
    assert lines[-1] == ""
    assert len(lines) == len(AWKWARD_KEYS) + 1


def test_version_ids_that_need_csv_quoting_round_trip(s3: S3Client) -> None:
    # GIVEN version IDs no real store issues, but which the writer must not corrupt
    bucket = new_bucket(s3)
    records = [task("k1", 'odd,"version"'), task("k2", "new\nline"), task("k3", "plain")]
    # WHEN written
    written = write_filtered_manifest(s3, records, lambda r: True, bucket, "m.csv")
    # THEN they are RFC 4180-quoted and read back unchanged
    body = s3.get_object(Bucket=bucket, Key="m.csv")["Body"].read().decode()
    assert body.startswith(f'{SOURCE},k1,"odd,""version"""\n')
    assert read_back(s3, written) == [record.task for record in records]


def test_the_etag_is_s3s_and_pins_the_object(s3: S3Client) -> None:
    # GIVEN an unversioned bucket
    bucket = new_bucket(s3)
    # WHEN a manifest is written
    written = write_filtered_manifest(
        s3, [task("a"), task("b")], lambda r: r.task.key == "b", bucket, "m.csv"
    )
    # THEN the result holds the ETag exactly as HEAD gives it (quoted), no version, one row
    head = s3.head_object(Bucket=bucket, Key="m.csv")
    assert written == FilteredManifest(bucket, "m.csv", head["ETag"], 1, None)
    assert written.etag.startswith('"') and written.etag.endswith('"')
    assert head["ContentType"] == CONTENT_TYPE
    assert written.etag.strip('"') == hashlib.md5(f"{SOURCE},b,\n".encode()).hexdigest()


def test_a_versioned_bucket_gives_the_version_written(s3: S3Client) -> None:
    # GIVEN a versioned bucket with an older manifest at the same key
    bucket = new_bucket(s3, versioned=True)
    old = write_filtered_manifest(s3, [task("old")], lambda r: True, bucket, "m.csv")
    # WHEN a new manifest is written over it
    new = write_filtered_manifest(s3, [task("new")], lambda r: True, bucket, "m.csv")
    # THEN each result names its own version, and the pinned version reads back its own rows
    assert old.version_id and new.version_id and old.version_id != new.version_id
    versions = s3.list_object_versions(Bucket=bucket, Prefix="m.csv")["Versions"]
    assert {v["VersionId"] for v in versions} == {old.version_id, new.version_id}
    body = s3.get_object(Bucket=bucket, Key="m.csv", VersionId=old.version_id)["Body"]
    assert list(iter_csv_tasks(body, FIELDS)) == [ManifestTask(SOURCE, "old", None)]


def test_nothing_kept_writes_an_empty_manifest(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    written = write_filtered_manifest(s3, [task("a")], lambda r: False, bucket, "empty.csv")
    assert written.rows == 0
    assert s3.get_object(Bucket=bucket, Key="empty.csv")["Body"].read() == b""


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile at a private directory so a test can see the spool come and go."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def test_a_failing_inventory_uploads_nothing_and_leaves_no_spool(s3: S3Client, spool_dir: Path) -> None:
    # GIVEN records that end in a checksum mismatch, as a corrupt inventory file does
    bucket = new_bucket(s3)

    def corrupt() -> Iterator[InventoryRecord]:
        yield task("a")
        yield task("b")
        raise ManifestError(CHECKSUM_MISMATCH, "inventory file x.csv.gz has MD5 ...")

    # WHEN a manifest is written from them
    with pytest.raises(ManifestError):
        write_filtered_manifest(s3, corrupt(), lambda r: True, bucket, "m.csv")
    # THEN no object was uploaded and the spool is gone
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert list(spool_dir.iterdir()) == []
    # AND a successful write cleans up too
    write_filtered_manifest(s3, [task("a")], lambda r: True, bucket, "m.csv")
    assert list(spool_dir.iterdir()) == []


def test_a_missing_bucket_or_key_is_refused(s3: S3Client) -> None:
    with pytest.raises(ValueError, match="needs a bucket and a key"):
        write_filtered_manifest(s3, [], lambda r: True, "", "k")


# -- a 100k-row inventory ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truth:
    """What the generator put in one inventory row, as plain values."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    size: int | None
    modified: datetime
    storage_class: str | None


def generate(rows: int) -> list[Truth]:
    """Objects with 1-3 versions each; every 11th object's latest version is a delete marker."""
    truth: list[Truth] = []
    obj = 0
    while len(truth) < rows:
        prefix = PREFIXES[obj % len(PREFIXES)]
        name = f'{obj % 50:02d}/img {obj}+%2B é,"x".jpg' if obj % 5 == 0 else f"img-{obj:06d}.jpg"
        versions = 1 + obj % 3
        for v in range(versions):
            if len(truth) == rows:
                break
            latest = v == versions - 1
            marker = latest and obj % 11 == 0
            size = (obj * 7919 + v * 104729) % 120_000
            if obj % 97 == 0:
                size = 1000
            elif obj % 89 == 0:
                size = 50000
            truth.append(
                Truth(
                    key=prefix + name,
                    version_id=f"{obj:07d}v{v}Ab_Cd.Ef",
                    is_latest=latest,
                    is_delete_marker=marker,
                    size=None if marker else size,
                    modified=FIRST_MODIFIED + timedelta(minutes=obj * 2 + v, milliseconds=obj % 1000),
                    storage_class=None if marker else CLASSES[(obj + v) % len(CLASSES)],
                )
            )
        obj += 1
    return truth


def inventory_line(row: Truth) -> str:
    """One S3 inventory CSV row: every cell quoted, the key URL-encoded, as S3 writes them."""
    modified = f"{row.modified:%Y-%m-%dT%H:%M:%S}.{row.modified.microsecond // 1000:03d}Z"
    cells = [
        SOURCE,
        quote_plus(row.key, safe="/"),
        row.version_id,
        str(row.is_latest).lower(),
        str(row.is_delete_marker).lower(),
        "" if row.size is None else str(row.size),
        modified,
        "" if row.is_delete_marker else hashlib.md5(row.key.encode()).hexdigest(),
        row.storage_class or "",
    ]
    return ",".join(f'"{cell}"' for cell in cells) + "\n"


def expected_tasks(truth: list[Truth]) -> list[ManifestTask]:
    """FILTERS applied by hand, straight from the generated values."""
    cutoff = NOW - timedelta(days=30)
    return [
        ManifestTask(SOURCE, row.key, row.version_id)
        for row in truth
        if row.key.startswith("photos/")
        and row.size is not None
        and 1000 < row.size < 50000
        and row.storage_class in ("STANDARD", "STANDARD_IA")
        and row.is_latest
        and not row.is_delete_marker
        and row.modified < cutoff
    ]


@dataclass(frozen=True, slots=True)
class Inventory:
    bucket: str
    manifest_key: str
    expected: list[ManifestTask]
    not_markers: int


def upload_inventory(s3: S3Client, bucket: str, rows: int, files: int = 2) -> Inventory:
    """An S3-shaped inventory of ``rows`` rows in ``files`` gzip data files, plus its manifest.json."""
    truth = generate(rows)
    base = f"inventory/{SOURCE}/config-{rows}"
    listed = []
    per_file = -(-rows // files)
    for n in range(files):
        data = gzip.compress(
            "".join(inventory_line(row) for row in truth[n * per_file : (n + 1) * per_file]).encode(),
            compresslevel=1,
        )
        key = f"{base}/data/{uuid.uuid4()}.csv.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        listed.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {
        "sourceBucket": SOURCE,
        "destinationBucket": f"arn:aws:s3:::{bucket}",
        "version": "2016-11-30",
        "creationTimestamp": "1790000000000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": listed,
    }
    manifest_key = f"{base}/2026-10-01T00-00Z/manifest.json"
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    not_markers = sum(1 for row in truth if not row.is_delete_marker)
    return Inventory(bucket, manifest_key, expected_tasks(truth), not_markers)


@pytest.fixture(scope="module")
def inventories(moto_endpoint: str) -> dict[int, Inventory]:
    """10k- and 100k-row inventories, built once for this module's tests."""
    config = Config(retries={"mode": "standard", "max_attempts": 4}, s3={"addressing_style": "path"})
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, config=config)
    bucket = new_bucket(s3)
    return {rows: upload_inventory(s3, bucket, rows) for rows in (10_000, 100_000)}


def test_a_100k_row_inventory_is_filtered_to_exactly_the_expected_rows(
    s3: S3Client, inventories: dict[int, Inventory]
) -> None:
    # GIVEN a 100,000-row S3 inventory in two gzip files: versions, delete markers, sizes, dates,
    # storage classes, and keys that need URL-encoding
    inventory = inventories[100_000]
    manifest = parse_inventory_manifest(
        read_small_object(s3, inventory.bucket, inventory.manifest_key, None, None)
    )
    assert len(manifest.files) == 2
    # WHEN its records go through a prefix + size + storage class + latest + no-marker + age filter
    records = iter_inventory_records(manifest, inventory_file_opener(s3, manifest.destination_bucket))
    keep = matcher(parse_filters("photos", FILTERS), NOW)
    written = write_filtered_manifest(s3, records, keep, inventory.bucket, "filtered/photos.csv")
    # THEN the manifest read back from S3 holds exactly the rows computed by hand, in inventory order
    got = read_back(s3, written)
    assert written.rows == len(inventory.expected) == len(got)
    assert got == inventory.expected
    # AND the filter was selective but not trivially so, and awkward keys made it through
    assert 500 < written.rows < 20_000
    assert any("+%2B é," in t.key for t in got)


# The memory runs happen in child processes so tracemalloc sees only the reader and writer (the
# moto server lives in this process and keeps every object it stores in memory). They keep every
# row but the delete markers, so the 100k run spools about 6.5 MB and uploads it in two parts.
#
# The peak is measured in two phases, split where write_filtered_manifest calls upload_file:
# - reading, filtering and spooling the records, which is what could grow with the inventory;
# - the upload, where botocore holds up to ~2 MiB per request in flight (it reads the body in
#   1 MiB chunks for the checksum and copies each) whatever the file's size, so a 650 kB manifest
#   costs 650 kB there and a 6.5 MB one 2 MiB: flat, but not 1.5x flat between these two sizes.
BROAD_FILTERS = {"excludeDeleteMarkers": True}
_CHILD = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from datetime import datetime
    import boto3
    from boto3.s3.transfer import TransferConfig
    from batchops.manifest.inventory import iter_inventory_records, parse_inventory_manifest
    from batchops.manifest.source import inventory_file_opener, read_small_object
    from batchops.submit.filtered_manifest import write_filtered_manifest
    from batchops.submit.filters import matcher, parse_filters

    endpoint, bucket, manifest_key, out_key, filters, now = sys.argv[1:7]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    phases = {}
    upload_file = s3.upload_file

    def measured_upload(*args, **kwargs):
        phases["spool_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        upload_file(*args, **kwargs)
        phases["upload_peak"] = tracemalloc.get_traced_memory()[1]

    s3.upload_file = measured_upload
    tracemalloc.start()
    manifest = parse_inventory_manifest(read_small_object(s3, bucket, manifest_key, None, None))
    records = iter_inventory_records(manifest, inventory_file_opener(s3, manifest.destination_bucket))
    keep = matcher(parse_filters("photos", json.loads(filters)), datetime.fromisoformat(now))
    config = TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2, max_concurrency=1)
    written = write_filtered_manifest(s3, records, keep, bucket, out_key, transfer_config=config)
    print(json.dumps({**phases, "rows": written.rows, "etag": written.etag}))
    """
)


def start(moto_endpoint: str, inventory: Inventory, out_key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "batchops"), str(ROOT)])}
    filters = json.dumps(BROAD_FILTERS)
    args = [moto_endpoint, inventory.bucket, inventory.manifest_key, out_key, filters, NOW.isoformat()]
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def measured(child: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_memory_stays_flat_from_10k_to_100k_rows(
    s3: S3Client, moto_endpoint: str, inventories: dict[int, Inventory]
) -> None:
    # GIVEN inventories of 10,000 and 100,000 rows
    # WHEN each is read, filtered and written as a manifest in a process of its own (side by side)
    keys = {rows: f"filtered/memory-{rows}.csv" for rows in (10_000, 100_000)}
    children = [start(moto_endpoint, inventories[rows], key) for rows, key in keys.items()]
    small, large = (measured(child) for child in children)
    # THEN both kept every row but the delete markers
    assert small["rows"] == inventories[10_000].not_markers
    assert large["rows"] == inventories[100_000].not_markers > 90_000
    # AND reading, filtering and spooling ten times the rows peaked within 1.5x
    assert large["spool_peak"] <= small["spool_peak"] * 1.5, (small, large)
    # AND the upload stayed within botocore's fixed per-request buffers, the whole run within a few MB
    assert large["upload_peak"] < 3 * 1024**2, large
    assert max(large["spool_peak"], large["upload_peak"]) < 4 * 1024**2, large
    # AND the large manifest went up in parts, and its ETag is the multipart one HEAD reports
    head = s3.head_object(Bucket=inventories[100_000].bucket, Key=keys[100_000])
    assert large["etag"] == head["ETag"]
    assert head["ETag"].strip('"').endswith("-2")
