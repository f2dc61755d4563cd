"""Manifests read over HTTP from a moto S3 server: ETag pinning, versions, errors, inventories."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

from batchops.manifest.csv_manifest import iter_csv_positioned, iter_csv_tasks
from batchops.manifest.inventory import iter_inventory_tasks, parse_inventory_manifest
from batchops.manifest.source import (
    inventory_file_opener,
    normalize_etag,
    open_manifest,
    read_small_object,
)
from batchops.manifest.tasks import (
    ACCESS_DENIED,
    CHECKSUM_MISMATCH,
    ETAG_MISMATCH,
    NOT_FOUND,
    TOO_LARGE,
    UNREADABLE,
    ManifestError,
    ManifestTask,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.integration

FIELDS = ("Bucket", "Key", "VersionId")
MANIFEST = b'src,object%20key%20with%20spaces,\nsrc,"a,b%2Bc+d",\nsrc,%E4%B8%AD%2F%252B,v1\n'
EXPECTED = [
    ManifestTask("src", "object key with spaces", None),
    ManifestTask("src", "a,b+c d", None),
    ManifestTask("src", "\u4e2d/%2B", "v1"),
]


@pytest.fixture
def s3(moto_endpoint: str) -> S3Client:
    return boto3.client(
        "s3", endpoint_url=moto_endpoint, config=Config(retries={"mode": "standard", "max_attempts": 1})
    )


@pytest.fixture
def bucket(s3: S3Client) -> str:
    name = f"manifests-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def put(s3: S3Client, bucket: str, key: str, body: bytes) -> tuple[str, str | None]:
    reply = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return reply["ETag"], reply.get("VersionId")


def read_tasks(
    s3: S3Client, bucket: str, key: str, etag: str, version_id: str | None = None
) -> list[ManifestTask]:
    with open_manifest(s3, bucket, key, etag, version_id) as stream:
        return list(iter_csv_tasks(stream, FIELDS))


def test_the_right_etag_reads_the_manifest(s3: S3Client, bucket: str) -> None:
    # GIVEN a manifest object and its ETag as S3 returns it (quoted)
    etag, _ = put(s3, bucket, "manifest.csv", MANIFEST)
    assert etag.startswith('"')
    # WHEN it is read with the ETag quoted, bare, or padded
    # THEN every spelling reads the same tasks
    for spelling in (etag, normalize_etag(etag), f"  {etag} "):
        assert read_tasks(s3, bucket, "manifest.csv", spelling) == EXPECTED


def test_a_wrong_etag_fails_naming_both_etags(s3: S3Client, bucket: str) -> None:
    # GIVEN a manifest overwritten after the job recorded its ETag
    old, _ = put(s3, bucket, "manifest.csv", MANIFEST)
    new, _ = put(s3, bucket, "manifest.csv", MANIFEST + b"src,extra,\n")
    # WHEN the job opens it with the old ETag
    with pytest.raises(ManifestError) as caught:
        open_manifest(s3, bucket, "manifest.csv", old, None)
    # THEN it fails with an ETag mismatch naming the expected and the current ETag
    assert caught.value.code == ETAG_MISMATCH
    assert normalize_etag(old) in str(caught.value)
    assert f"ETag is now {normalize_etag(new)}" in str(caught.value)
    assert f"{bucket}/manifest.csv" in str(caught.value)


def test_a_manifest_resumed_from_a_byte_is_still_pinned(s3: S3Client, bucket: str) -> None:
    # GIVEN a manifest, in a versioned bucket, and where its second row starts
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    etag, version = put(s3, bucket, "manifest.csv", MANIFEST)
    second = MANIFEST.index(b"\n") + 1
    # WHEN it is opened from that byte (a prepare resumed part-way)
    with open_manifest(s3, bucket, "manifest.csv", etag, version, first_byte=second) as stream:
        rest = list(iter_csv_positioned(stream, FIELDS, (0, second, 1, 1)))
    # THEN the rows from there come back
    assert [t for t, _ in rest] == EXPECTED[1:]
    # AND once the object was overwritten, the ranged read is refused like a whole one
    put(s3, bucket, "manifest.csv", MANIFEST + b"src,extra,\n")
    with pytest.raises(ManifestError) as caught:
        open_manifest(s3, bucket, "manifest.csv", etag, None, first_byte=second)
    assert caught.value.code == ETAG_MISMATCH


@pytest.mark.parametrize("missing", ["key", "bucket"])
def test_a_missing_manifest_is_not_found(s3: S3Client, bucket: str, missing: str) -> None:
    target = bucket if missing == "key" else f"{bucket}-gone"
    with pytest.raises(ManifestError, match=f"{target}/nope.csv does not exist") as caught:
        open_manifest(s3, target, "nope.csv", "abc", None)
    assert caught.value.code == NOT_FOUND


def test_a_pinned_version_is_read_after_the_object_was_overwritten(s3: S3Client, bucket: str) -> None:
    # GIVEN a versioned bucket where the manifest was overwritten after the job pinned version 1
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    etag1, version1 = put(s3, bucket, "manifest.csv", MANIFEST)
    etag2, version2 = put(s3, bucket, "manifest.csv", b"src,other,\n")
    assert version1 and version2 and version1 != version2
    # WHEN read with the pinned version and its ETag
    # THEN version 1's tasks come back
    assert read_tasks(s3, bucket, "manifest.csv", etag1, version1) == EXPECTED
    # AND the current version is the other one, refused with version 1's ETag
    assert read_tasks(s3, bucket, "manifest.csv", etag2) == [ManifestTask("src", "other", None)]
    with pytest.raises(ManifestError) as caught:
        open_manifest(s3, bucket, "manifest.csv", etag1, None)
    assert caught.value.code == ETAG_MISMATCH


def test_a_version_that_does_not_exist_is_not_found(s3: S3Client, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    etag, _ = put(s3, bucket, "manifest.csv", MANIFEST)
    with pytest.raises(ManifestError, match="does not exist") as caught:
        open_manifest(s3, bucket, "manifest.csv", etag, "no-such-version")
    assert caught.value.code == NOT_FOUND


def inject(s3: S3Client, status: int, code: str) -> None:
    """Answer every GetObject with ``status``/``code`` before it reaches moto (the real parser runs)."""
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    def hook(**_: Any) -> AWSResponse:
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
        return AWSResponse("http://injected", status, headers, Raw())

    events: Any = s3.meta.events  # the stubs type hooks as returning None; before-send may answer
    events.register("before-send.s3.GetObject", hook)


@pytest.mark.parametrize(
    "case",
    [
        (403, "AccessDenied", ACCESS_DENIED, False),
        (403, "InvalidObjectState", UNREADABLE, False),
        (500, "InternalError", UNREADABLE, True),
        (503, "SlowDown", UNREADABLE, True),
    ],
)
def test_storage_errors_map_to_failure_codes(
    s3: S3Client, bucket: str, case: tuple[int, str, str, bool]
) -> None:
    # GIVEN a manifest whose GET answers with an error
    status, code, expected, transient = case
    etag, _ = put(s3, bucket, "manifest.csv", MANIFEST)
    inject(s3, status, code)
    # WHEN the job opens it
    with pytest.raises(ManifestError) as caught:
        open_manifest(s3, bucket, "manifest.csv", etag, None)
    # THEN the error maps to its FailureCode, transient only when a retry may help
    assert (caught.value.code, caught.value.transient) == (expected, transient)
    assert f"{bucket}/manifest.csv" in str(caught.value)


def test_a_small_object_is_read_whole_and_a_large_one_refused(s3: S3Client, bucket: str) -> None:
    etag, _ = put(s3, bucket, "manifest.json", b"x" * 100)
    assert read_small_object(s3, bucket, "manifest.json", etag, None, max_bytes=100) == b"x" * 100
    with pytest.raises(ManifestError, match="larger than 99 bytes") as caught:
        read_small_object(s3, bucket, "manifest.json", etag, None, max_bytes=99)
    assert caught.value.code == TOO_LARGE


# -- an S3 inventory end to end --------------------------------------------------------------------

SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
ROWS = [
    [
        '"src","plain.txt","v1","true","false","1","2024-01-01T00:00:00.000Z","e1"',
        '"src","with+space%2Bplus","","true","false","2","2024-01-01T00:00:00.000Z","e2"',
    ],
    ['"src","%E2%82%AC%2F%0Aline","v3","true","false","3","2024-01-01T00:00:00.000Z","e3"'],
]


def land_inventory(s3: S3Client, bucket: str, corrupt_md5_of: int | None = None) -> tuple[str, str]:
    """Write two gzip data files and manifest.json the way S3 Inventory does; return its key and ETag."""
    prefix = "inventory/src/config-1"
    files = []
    for n, rows in enumerate(ROWS):
        data = gzip.compress(("\n".join(rows) + "\n").encode())
        key = f"{prefix}/data/{uuid.uuid4()}.csv.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        md5 = hashlib.md5(data).hexdigest()
        if n == corrupt_md5_of:
            md5 = hashlib.md5(b"something else").hexdigest()
        files.append({"key": key, "size": len(data), "MD5checksum": md5})
    manifest = {
        "sourceBucket": "src",
        "destinationBucket": f"arn:aws:s3:::{bucket}",
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": files,
    }
    key = f"{prefix}/2024-01-01T00-00Z/manifest.json"
    etag, _ = put(s3, bucket, key, json.dumps(manifest).encode())
    return key, etag


def inventory_tasks(s3: S3Client, bucket: str, key: str, etag: str) -> list[ManifestTask]:
    manifest = parse_inventory_manifest(read_small_object(s3, bucket, key, etag, None))
    assert manifest.destination_bucket == bucket
    return list(iter_inventory_tasks(manifest, inventory_file_opener(s3, manifest.destination_bucket)))


def test_an_s3_inventory_is_read_end_to_end(s3: S3Client, bucket: str) -> None:
    # GIVEN an inventory landed in the destination bucket
    key, etag = land_inventory(s3, bucket)
    # WHEN the job's manifest.json is read and its data files streamed
    # THEN every row becomes a task, keys decoded once, MD5s verified
    assert inventory_tasks(s3, bucket, key, etag) == [
        ManifestTask("src", "plain.txt", "v1"),
        ManifestTask("src", "with space+plus", None),
        ManifestTask("src", "\u20ac/\nline", "v3"),
    ]


def test_an_inventory_file_with_a_wrong_md5_fails_the_manifest(s3: S3Client, bucket: str) -> None:
    # GIVEN an inventory whose second data file does not match its listed MD5
    key, etag = land_inventory(s3, bucket, corrupt_md5_of=1)
    # WHEN read
    with pytest.raises(
        ManifestError, match=r"inventory file inventory/src/config-1/data/.*\.csv\.gz has MD5"
    ) as caught:
        inventory_tasks(s3, bucket, key, etag)
    # THEN the failure is a checksum mismatch naming the file
    assert caught.value.code == CHECKSUM_MISMATCH


def test_a_missing_inventory_data_file_is_not_found(s3: S3Client, bucket: str) -> None:
    key, etag = land_inventory(s3, bucket)
    manifest = parse_inventory_manifest(read_small_object(s3, bucket, key, etag, None))
    s3.delete_object(Bucket=bucket, Key=manifest.files[0].key)
    with pytest.raises(ManifestError, match=f"{bucket}/{manifest.files[0].key} does not exist") as caught:
        list(iter_inventory_tasks(manifest, inventory_file_opener(s3, bucket)))
    assert caught.value.code == NOT_FOUND
