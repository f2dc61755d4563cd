"""Inventory manifests in both shapes, and their gzip CSV data files read with MD5 checks."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
from collections.abc import Callable
from typing import BinaryIO

import pytest

from batchops.manifest.inventory import (
    InventoryFile,
    InventoryManifest,
    iter_inventory_tasks,
    parse_inventory_manifest,
)
from batchops.manifest.tasks import (
    CHECKSUM_MISMATCH,
    FORMAT_UNSUPPORTED,
    MALFORMED,
    ManifestError,
    ManifestTask,
)

# Verbatim from shared/reference/batch-operations.md §3 (S3) and §1.6 (COS).
S3_MANIFEST = b"""{
    "sourceBucket": "example-source-bucket",
    "destinationBucket": "arn:aws:s3:::example-inventory-destination-bucket",
    "version": "2016-11-30",
    "creationTimestamp" : "1514944800000",
    "fileFormat": "CSV",
    "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm",
    "files": [
        {
            "key": "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
            "size": 2147483647,
            "MD5checksum": "f11166069f1990abeb9c97ace9cdfabc"
        }
    ]
}"""

COS_MANIFEST = b"""{
 "sourceAppid": "1250000000",
 "sourceBucket": "example-source-bucket",
 "destinationAppid": "1250000000",
 "destinationBucket": "example-inventory-destination-bucket",
 "fileFormat": "CSV",
 "listObjectCount": "13",
 "listStorageSize": "7212835",
 "filterObjectCount": "13",
 "filterStorageSize": "7212835",
 "fileSchema": "Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus",
 "files": [
  {
   "key": "cos_bucket_inventory/1250000000/examplebucket/inventory01/04d73d9debc73d9f0bf85af461abde6c.csv.gz",
   "size": "502",
   "md5Checksum": "7d40288a09c25b302ad6cb5fced54f35"
  }
 ]
}"""

S3_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size"


def test_s3_shape_parses() -> None:
    manifest = parse_inventory_manifest(S3_MANIFEST)
    assert manifest.source_bucket == "example-source-bucket"
    assert manifest.destination_bucket == "example-inventory-destination-bucket"
    assert manifest.file_format == "CSV"
    assert manifest.file_schema[:4] == ("Bucket", "Key", "VersionId", "IsLatest")
    assert len(manifest.file_schema) == 18
    assert manifest.files == (
        InventoryFile(
            "Inventory/example-source-bucket/2016-11-06T21-32Z/files/939c6d46-85a9-4ba8-87bd-9db705a579ce.csv.gz",
            2147483647,
            "f11166069f1990abeb9c97ace9cdfabc",
        ),
    )
    assert manifest.source_appid is None


def test_cos_shape_parses() -> None:
    manifest = parse_inventory_manifest(COS_MANIFEST)
    assert manifest.source_bucket == "example-source-bucket"
    assert manifest.destination_bucket == "example-inventory-destination-bucket"
    assert manifest.file_schema[:3] == ("Appid", "Bucket", "Key")
    assert manifest.files == (
        InventoryFile(
            "cos_bucket_inventory/1250000000/examplebucket/inventory01/04d73d9debc73d9f0bf85af461abde6c.csv.gz",
            502,
            "7d40288a09c25b302ad6cb5fced54f35",
        ),
    )
    assert manifest.source_appid == "1250000000"


def edited(base: bytes, **changes: object) -> bytes:
    doc = json.loads(base)
    for name, value in changes.items():
        if value is None:
            doc.pop(name)
        else:
            doc[name] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "code", "why"),
    [
        (b"{not json", MALFORMED, "not valid JSON"),
        (b"[]", MALFORMED, "must be a JSON object"),
        (edited(S3_MANIFEST, sourceBucket=None), MALFORMED, "'sourceBucket'"),
        (edited(S3_MANIFEST, destinationBucket=7), MALFORMED, "'destinationBucket'"),
        (
            edited(S3_MANIFEST, destinationBucket="arn:aws:s3:::Bad_Name"),
            MALFORMED,
            "not a valid bucket name",
        ),
        (edited(S3_MANIFEST, files=None), MALFORMED, "'files' list"),
        (edited(S3_MANIFEST, files=[{"size": 1}]), MALFORMED, r"files\[1\] needs a non-empty string 'key'"),
        (edited(S3_MANIFEST, files=[{"key": "k", "size": "-1"}]), MALFORMED, "non-negative integer 'size'"),
        (edited(S3_MANIFEST, files=[{"key": "k", "size": True}]), MALFORMED, "non-negative integer 'size'"),
        (edited(S3_MANIFEST, files=[{"key": "k", "size": 1, "MD5checksum": "xyz"}]), MALFORMED, "32 hex"),
        (edited(S3_MANIFEST, fileSchema="Bucket, Size"), MALFORMED, "no Key column"),
        (edited(S3_MANIFEST, fileSchema="Bucket, Key, Key"), MALFORMED, "'key' more than once"),
        (edited(S3_MANIFEST, fileSchema="Bucket,, Key"), MALFORMED, "empty column name"),
        (edited(S3_MANIFEST, fileFormat="Avro"), FORMAT_UNSUPPORTED, "'Avro' is not supported"),
    ],
)
def test_bad_manifests_fail_clearly(data: bytes, code: str, why: str) -> None:
    with pytest.raises(ManifestError, match=why) as caught:
        parse_inventory_manifest(data)
    assert caught.value.code == code


def test_format_names_are_normalized_and_a_missing_md5_is_none() -> None:
    manifest = parse_inventory_manifest(
        edited(S3_MANIFEST, fileFormat="parquet", files=[{"key": "k", "size": "10"}])
    )
    assert manifest.file_format == "Parquet"
    assert manifest.files == (InventoryFile("k", 10, None),)


# -- data files ---------------------------------------------------------------------------------


class Store:
    """Data files by key; remembers what was opened and whether each stream was closed."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.opened: list[io.BytesIO] = []

    def open(self, key: str) -> BinaryIO:
        stream = io.BytesIO(self.files[key])
        self.opened.append(stream)
        return stream


def gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def manifest_of(files: dict[str, bytes], schema: str = S3_SCHEMA, md5: bool = True) -> InventoryManifest:
    return InventoryManifest(
        source_bucket="src",
        destination_bucket="dst",
        file_format="CSV",
        file_schema=tuple(name.strip() for name in schema.split(",")),
        files=tuple(
            InventoryFile(key, len(data), hashlib.md5(data).hexdigest() if md5 else None)
            for key, data in files.items()
        ),
    )


def read_all(manifest: InventoryManifest, open_file: Callable[[str], BinaryIO]) -> list[ManifestTask]:
    return list(iter_inventory_tasks(manifest, open_file))


def test_csv_data_files_yield_decoded_tasks_in_manifest_order() -> None:
    # GIVEN two gzip CSV files of an S3 versioned inventory
    files = {
        "data/1.csv.gz": gz(
            '"src","a+b%2Bc","v1","true","false","3"\n"src","caf%C3%A9","","true","false","4"\n'
        ),
        "data/2.csv.gz": gz('"src","dir%2Fx%252B","v9","false","false","5"\n'),
    }
    store = Store(files)
    # WHEN the tasks are read
    result = read_all(manifest_of(files), store.open)
    # THEN keys are decoded once, an empty VersionId is None, and every stream was closed
    assert result == [
        ManifestTask("src", "a b+c", "v1"),
        ManifestTask("src", "caf\u00e9", None),
        ManifestTask("src", "dir/x%2B", "v9"),
    ]
    assert all(stream.closed for stream in store.opened)


def test_cos_data_files_have_an_appid_column_first() -> None:
    files = {
        "d.csv.gz": gz("1250000000,examplebucket-1250000000,dir%2Ffile+1.txt,12,2024-01-01,etag,STANDARD\n")
    }
    schema = "Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass"
    assert read_all(manifest_of(files, schema), Store(files).open) == [
        ManifestTask("examplebucket-1250000000", "dir/file 1.txt", None)
    ]


def test_a_header_row_is_skipped() -> None:
    files = {"d.csv.gz": gz("Bucket,Key,VersionId\nsrc,k,\n")}
    assert read_all(manifest_of(files, "Bucket, Key, VersionId"), Store(files).open) == [
        ManifestTask("src", "k", None)
    ]


def test_an_md5_mismatch_names_the_file() -> None:
    # GIVEN a data file whose listed MD5 is not its own
    files = {"ok.csv.gz": gz("src,a\n"), "bad.csv.gz": gz("src,b\n")}
    manifest = manifest_of(files, "Bucket, Key")
    wrong = InventoryFile("bad.csv.gz", 1, "0" * 32)
    manifest = InventoryManifest(
        manifest.source_bucket,
        manifest.destination_bucket,
        "CSV",
        manifest.file_schema,
        (manifest.files[0], wrong),
    )
    store = Store(files)
    # WHEN read
    seen: list[ManifestTask] = []
    with pytest.raises(
        ManifestError, match=r"bad\.csv\.gz has MD5 [0-9a-f]{32} but manifest\.json lists 0{32}"
    ) as caught:
        seen.extend(iter_inventory_tasks(manifest, store.open))
    # THEN the job fails with a checksum mismatch once that file is read, and its stream is closed
    assert caught.value.code == CHECKSUM_MISMATCH
    assert seen == [ManifestTask("src", "a", None), ManifestTask("src", "b", None)]
    assert all(stream.closed for stream in store.opened)


def test_md5_covers_the_whole_compressed_file_even_past_the_last_row() -> None:
    # GIVEN a file with two gzip members: the reader must hash every byte, not stop early
    data = gz("src,a\n") + gz("src,b\n")
    files = {"d.csv.gz": data}
    assert [t.key for t in read_all(manifest_of(files, "Bucket, Key"), Store(files).open)] == ["a", "b"]


def test_a_corrupt_file_reports_the_checksum_when_it_has_one() -> None:
    # GIVEN a gzip file damaged in storage after its MD5 was listed
    good = gz("src,a\n" * 100)
    damaged = good[:20] + bytes([good[20] ^ 0xFF]) + good[21:]
    manifest = manifest_of({"d.csv.gz": good}, "Bucket, Key")
    # WHEN read
    with pytest.raises(ManifestError) as caught:
        read_all(manifest, Store({"d.csv.gz": damaged}).open)
    # THEN the checksum, not the gzip format, is blamed
    assert caught.value.code == CHECKSUM_MISMATCH


def test_a_file_that_is_not_gzip_is_malformed() -> None:
    files = {"d.csv.gz": b"src,a\n"}
    with pytest.raises(ManifestError, match=r"d\.csv\.gz is not a readable gzip file") as caught:
        read_all(manifest_of(files, "Bucket, Key"), Store(files).open)
    assert caught.value.code == MALFORMED


def test_a_bad_row_names_the_file_and_row() -> None:
    files = {"d.csv.gz": gz("src,a\nsrc,\n")}
    with pytest.raises(ManifestError, match=r"inventory file d\.csv\.gz, row 2 has an empty Key"):
        read_all(manifest_of(files, "Bucket, Key", md5=False), Store(files).open)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
@pytest.mark.parametrize("file_format", ["ORC", "Parquet"])
def test_columnar_inventories_without_pyarrow_fail_before_reading(file_format: str) -> None:
    # GIVEN an ORC or Parquet inventory and no pyarrow
    manifest = parse_inventory_manifest(edited(S3_MANIFEST, fileFormat=file_format))
    store = Store({})
    # WHEN its tasks are read
    with pytest.raises(ManifestError, match=f"{file_format} inventories need pyarrow") as caught:
        read_all(manifest, store.open)
    # THEN the job fails with a clear reason and no file was opened
    assert caught.value.code == FORMAT_UNSUPPORTED
    assert "use a CSV inventory" in str(caught.value)
    assert store.opened == []


@pytest.mark.parametrize("file_format", ["ORC", "Parquet"])
def test_columnar_inventories_with_pyarrow(file_format: str) -> None:
    pa = pytest.importorskip("pyarrow")
    # GIVEN an inventory file written by pyarrow as S3 writes them (snake_case, keys not encoded)
    table = pa.table(
        {
            "bucket": ["src", "src"],
            "key": ["a+b c", "dir/%2B"],
            "version_id": ["v1", None],
            "is_latest": [True, True],
        }
    )
    sink = io.BytesIO()
    if file_format == "ORC":
        importlib.import_module("pyarrow.orc").write_table(table, sink)
    else:
        importlib.import_module("pyarrow.parquet").write_table(table, sink)
    files = {"d": sink.getvalue()}
    manifest = InventoryManifest(
        "src",
        "dst",
        "ORC" if file_format == "ORC" else "Parquet",
        ("Bucket", "Key", "VersionId", "IsLatest"),
        (InventoryFile("d", len(files["d"]), hashlib.md5(files["d"]).hexdigest()),),
    )
    # WHEN read
    # THEN keys are used as stored and a missing version is None
    assert read_all(manifest, Store(files).open) == [
        ManifestTask("src", "a+b c", "v1"),
        ManifestTask("src", "dir/%2B", None),
    ]
    # AND a wrong MD5 is caught before any task is yielded
    corrupt = InventoryManifest(
        manifest.source_bucket,
        manifest.destination_bucket,
        manifest.file_format,
        manifest.file_schema,
        (InventoryFile("d", 1, "f" * 32),),
    )
    iterator = iter_inventory_tasks(corrupt, Store(files).open)
    with pytest.raises(ManifestError) as caught:
        next(iterator)
    assert caught.value.code == CHECKSUM_MISMATCH
