"""The benchmarks' stub S3 endpoint (tests/bench/stub_s3.py) answers boto3 as S3 would.

Every benchmark figure is only as good as this stub: a call it answered wrongly would fail the
peer, and a counter that miscounted would make requests per object lie. So each call the
executor and the peers make goes through boto3 over HTTP here, and boto3 must parse the answer.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.bench.measure import StubServer

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

pytestmark = pytest.mark.integration

MANIFEST = b"bench-src,src/obj-00000000\nbench-src,src/obj-00000001\n"


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubServer]:
    objects = tmp_path_factory.mktemp("objects")
    (objects / "manifests").mkdir()
    (objects / "manifests" / "m.csv").write_bytes(MANIFEST)
    server = StubServer(objects, keep_puts=True)
    yield server
    server.stop()


@pytest.fixture
def s3(stub: StubServer) -> S3Client:
    stub.reset()
    stub.configure(delay_ms=0, list_prefix="src/obj-", list_count=0)
    config = Config(retries={"mode": "standard", "max_attempts": 1}, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=stub.endpoint, config=config)


def test_copy_object_answers_a_copy_result_and_is_counted_once(s3: S3Client, stub: StubServer) -> None:
    # GIVEN the stub; WHEN boto3 copies one object
    result = s3.copy_object(Bucket="dst", Key="a/b c", CopySource={"Bucket": "src", "Key": "a/b c"})
    # THEN it parses a CopyObjectResult, and the stub counted exactly that request
    assert result["CopyObjectResult"]["ETag"].startswith('"')
    assert result["CopyObjectResult"]["LastModified"].year >= 2024
    assert stub.stats()["operations"] == {"CopyObject": 1}


def test_a_real_file_is_served_with_its_md5_etag_ranges_and_if_match(s3: S3Client) -> None:
    # GIVEN a manifest file in the objects directory
    etag = f'"{hashlib.md5(MANIFEST).hexdigest()}"'
    # WHEN it is read as the executor reads a manifest (If-Match), in a range, and with a stale ETag
    whole = s3.get_object(Bucket="manifests", Key="m.csv", IfMatch=etag)
    part = s3.get_object(Bucket="manifests", Key="m.csv", Range="bytes=10-19")
    head = s3.head_object(Bucket="manifests", Key="m.csv")
    with pytest.raises(ClientError) as stale:
        s3.get_object(Bucket="manifests", Key="m.csv", IfMatch='"0123"')
    # THEN the bytes, length and ETag are the file's, and a stale ETag is refused as S3 refuses it
    assert whole["Body"].read() == MANIFEST
    assert whole["ETag"] == etag
    assert part["Body"].read() == MANIFEST[10:20]
    assert part["ContentRange"] == f"bytes 10-19/{len(MANIFEST)}"
    assert head["ContentLength"] == len(MANIFEST)
    assert head["ETag"] == etag
    assert stale.value.response["Error"]["Code"] == "PreconditionFailed"


def test_other_keys_are_synthetic_objects(s3: S3Client) -> None:
    head = s3.head_object(Bucket="src", Key="src/obj-00000007")
    body = s3.get_object(Bucket="src", Key="src/obj-00000007")["Body"].read()
    assert head["ContentLength"] == len(body) == 1024
    assert head["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


def test_put_objects_are_kept_for_checks_and_dropped_by_reset(s3: S3Client, stub: StubServer) -> None:
    # GIVEN a report file uploaded as the report writer uploads it (a file, so Expect: 100-continue)
    s3.put_object(Bucket="reports", Key="job-1/results/a.csv", Body=b"b,k,,succeeded,200,,Successful\n")
    # WHEN it is read back, and again after a reset
    kept = s3.get_object(Bucket="reports", Key="job-1/results/a.csv")["Body"].read()
    stub.reset()
    after = s3.get_object(Bucket="reports", Key="job-1/results/a.csv")["Body"].read()
    # THEN the kept bytes come back until the reset drops them
    assert kept == b"b,k,,succeeded,200,,Successful\n"
    assert len(after) == 1024


def test_delete_objects_reports_every_key_and_quiet_reports_none(s3: S3Client, stub: StubServer) -> None:
    # GIVEN 1,000 keys, one with a version and XML-special characters
    objects: list[ObjectIdentifierTypeDef] = [{"Key": f"k/{n:04d}"} for n in range(999)]
    objects.append({"Key": "a&b<c>", "VersionId": "v1"})
    # WHEN they are deleted in one request, then quietly in another
    loud = s3.delete_objects(Bucket="b", Delete={"Objects": objects})
    quiet = s3.delete_objects(Bucket="b", Delete={"Objects": objects[:10], "Quiet": True})
    # THEN every key is reported deleted (keys and version exact), none in quiet mode
    assert [d["Key"] for d in loud["Deleted"]] == [o["Key"] for o in objects]
    assert loud["Deleted"][-1]["VersionId"] == "v1"
    assert "Deleted" not in quiet
    stats = stub.stats()
    assert stats["operations"] == {"DeleteObjects": 2}
    assert stats["deleted_keys"] == 1010


def test_single_delete_restore_create_bucket_tagging_and_acl(s3: S3Client, stub: StubServer) -> None:
    assert s3.create_bucket(Bucket="new-bucket")["Location"] == "/new-bucket"
    assert s3.delete_object(Bucket="b", Key="k")["ResponseMetadata"]["HTTPStatusCode"] == 204
    restore = s3.restore_object(
        Bucket="b", Key="k", RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}}
    )
    assert restore["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert s3.get_object_tagging(Bucket="b", Key="k")["TagSet"] == [{"Key": "stub", "Value": "canned"}]
    grants = s3.get_object_acl(Bucket="b", Key="k")["Grants"]
    assert grants[0]["Permission"] == "FULL_CONTROL"
    assert grants[0]["Grantee"]["Type"] == "CanonicalUser"
    assert stub.stats()["operations"] == {
        "CreateBucket": 1,
        "DeleteObject": 1,
        "GetObjectAcl": 1,
        "GetObjectTagging": 1,
        "RestoreObject": 1,
    }


def test_multipart_copy_and_upload_assemble_the_parts(s3: S3Client, stub: StubServer) -> None:
    # GIVEN a kept source object
    s3.put_object(Bucket="b", Key="source", Body=b"0123456789")
    # WHEN a multipart upload gets one uploaded part and one copied range, and is completed
    upload = s3.create_multipart_upload(Bucket="b", Key="big")["UploadId"]
    first = s3.upload_part(Bucket="b", Key="big", UploadId=upload, PartNumber=1, Body=b"AB")["ETag"]
    second = s3.upload_part_copy(
        Bucket="b",
        Key="big",
        UploadId=upload,
        PartNumber=2,
        CopySource={"Bucket": "b", "Key": "source"},
        CopySourceRange="bytes=2-4",
    )["CopyPartResult"]["ETag"]
    done = s3.complete_multipart_upload(
        Bucket="b",
        Key="big",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": first, "PartNumber": 1}, {"ETag": second, "PartNumber": 2}]},
    )
    aborted = s3.abort_multipart_upload(Bucket="b", Key="other", UploadId="gone")
    # THEN the object is the parts in order, and every call was answered and counted
    assert done["ETag"].endswith('-2"')
    assert s3.get_object(Bucket="b", Key="big")["Body"].read() == b"AB234"
    assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert stub.stats()["operations"] == {
        "AbortMultipartUpload": 1,
        "CompleteMultipartUpload": 1,
        "CreateMultipartUpload": 1,
        "GetObject": 1,
        "PutObject": 1,
        "UploadPart": 1,
        "UploadPartCopy": 1,
    }


@pytest.mark.parametrize("operation", ["v2", "v1"])
def test_listings_page_through_the_synthetic_keys(s3: S3Client, stub: StubServer, operation: str) -> None:
    # GIVEN a synthetic listing of 2,500 keys
    stub.configure(list_prefix="src/obj-", list_count=2500)
    # WHEN boto3's paginator walks it (v2 by continuation token, v1 by marker)
    paginator = s3.get_paginator("list_objects_v2" if operation == "v2" else "list_objects")
    pages: list[Any] = list(paginator.paginate(Bucket="any", Prefix="src/"))
    # THEN every key comes exactly once, in order, over three pages of at most 1,000
    keys = [item["Key"] for page in pages for item in page["Contents"]]
    assert keys == [f"src/obj-{n:08d}" for n in range(2500)]
    assert [len(page["Contents"]) for page in pages] == [1000, 1000, 500]
    assert pages[0]["Contents"][0]["Size"] == 1024


def test_a_listing_with_a_delimiter_groups_common_prefixes(s3: S3Client, stub: StubServer) -> None:
    stub.configure(list_prefix="src/obj-", list_count=10)
    page = s3.list_objects_v2(Bucket="any", Delimiter="/")
    assert page["CommonPrefixes"] == [{"Prefix": "src/"}]
    assert "Contents" not in page
    assert s3.list_objects_v2(Bucket="any", Prefix="zzz/")["KeyCount"] == 0


def test_virtual_host_style_names_the_bucket_in_the_host(stub: StubServer) -> None:
    # GIVEN a virtual-host-style client for http://localhost:<port>, sent through the stub as an
    # HTTP proxy so that <bucket>.localhost needs no DNS
    stub.reset()
    config = Config(
        s3={"addressing_style": "virtual"},
        proxies={"http": stub.endpoint},
        retries={"mode": "standard", "max_attempts": 1},
    )
    s3 = boto3.client("s3", endpoint_url=f"http://localhost:{stub.port}", config=config)
    # WHEN it copies and deletes
    s3.copy_object(Bucket="vhost", Key="k", CopySource={"Bucket": "src", "Key": "k"})
    deleted = s3.delete_objects(Bucket="vhost", Delete={"Objects": [{"Key": "x/y"}]})
    # THEN the stub read the bucket from the Host header and the key from the path
    assert deleted["Deleted"] == [{"Key": "x/y"}]
    assert stub.stats()["operations"] == {"CopyObject": 1, "DeleteObjects": 1}


def test_stats_count_connections_and_requests_per_connection(s3: S3Client, stub: StubServer) -> None:
    # GIVEN a reset stub; WHEN one client makes five calls on its kept-alive connection
    for n in range(5):
        s3.head_object(Bucket="b", Key=f"k{n}")
    first = stub.stats()
    stub.reset()
    cleared = stub.stats()
    # THEN one connection carried five requests, the control calls count nowhere, and reset clears
    assert first["requests"] == 5
    assert first["connections"]["opened"] == 1
    assert first["connections"]["requests_per_connection"] == [5]
    assert cleared["requests"] == 0
    assert cleared["connections"]["opened"] == 0
    assert cleared["connections"]["requests_per_connection"] == []


def test_the_delay_holds_every_answer(s3: S3Client, stub: StubServer) -> None:
    # GIVEN a 200 ms delay; WHEN a call is made; THEN its answer took at least that long
    stub.configure(delay_ms=200)
    started = time.perf_counter()
    s3.head_object(Bucket="b", Key="k")
    assert time.perf_counter() - started >= 0.2


def test_calls_the_stub_does_not_know_are_refused_and_counted(s3: S3Client, stub: StubServer) -> None:
    with pytest.raises(ClientError) as refused:
        s3.get_bucket_versioning(Bucket="b")
    assert refused.value.response["Error"]["Code"] == "NotImplemented"
    assert stub.stats()["operations"] == {"Unknown": 1}


def test_control_endpoints_reject_unknown_names(stub: StubServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stub.endpoint}/__nothing", timeout=5)
    assert refused.value.code == 400


def test_the_objects_directory_cannot_be_escaped(s3: S3Client, tmp_path: Path) -> None:
    # A key with ".." segments never reads outside the objects directory: it is a synthetic object.
    body = s3.get_object(Bucket="manifests", Key="../manifests/m.csv")["Body"].read()
    assert body != MANIFEST
