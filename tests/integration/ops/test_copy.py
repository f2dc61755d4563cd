"""COSPutObjectCopy against a moto S3 server over HTTP: every directive, versions, multipart."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from batchops.api.create_job import parse_create_job
from batchops.jobs.model import PutObjectCopy
from batchops.ops.copy import CopySettings, copy_task
from tests.conftest import SEED_XML, new_bucket
from tests.faults import count_only, first, inject, s3_error
from tests.integration.ops.conftest import MakeS3

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

DEFAULT = CopySettings()
MIB = 1024 * 1024


def copy_op(target: str, children: str = "") -> PutObjectCopy:
    """A COSPutObjectCopy parsed from XML exactly as CreateJob parses it."""
    root = etree.fromstring(SEED_XML.read_bytes())
    op_el = root.find("Operation")
    assert op_el is not None
    op_el.clear()
    op_el.append(
        etree.fromstring(
            f"<COSPutObjectCopy>{children}<TargetResource>arn:aws:s3:::{target}</TargetResource></COSPutObjectCopy>"
        )
    )
    op = parse_create_job(etree.tostring(root)).operation
    assert isinstance(op, PutObjectCopy)
    return op


@pytest.fixture
def buckets(s3: S3Client) -> tuple[str, str]:
    return new_bucket(s3), new_bucket(s3)


def put(s3: S3Client, bucket: str, key: str, body: bytes = b"hello", **extra: object) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)  # type: ignore[arg-type]


def test_default_copy_keeps_content_metadata_and_tags(s3: S3Client, buckets: tuple[str, str]) -> None:
    # GIVEN an object with metadata and tags
    src, dst = buckets
    put(s3, src, "dir/a b+c.txt", ContentType="text/plain", Metadata={"team": "data"}, Tagging="env=prod")
    # WHEN it is copied with no directive
    outcome = copy_task(s3, src, "dir/a b+c.txt", None, copy_op(dst), settings=DEFAULT)
    # THEN the copy has the same bytes, content type, metadata and tags
    assert (outcome.succeeded, outcome.http_status, outcome.message) == (True, 200, "Successful")
    got = s3.get_object(Bucket=dst, Key="dir/a b+c.txt")
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"team": "data"}
    assert s3.get_object_tagging(Bucket=dst, Key="dir/a b+c.txt")["TagSet"] == [
        {"Key": "env", "Value": "prod"}
    ]


@pytest.mark.parametrize(
    ("children", "key", "expected"),
    [
        ("<TargetKeyPrefix>backup/</TargetKeyPrefix>", "picture.jpg", "backup/picture.jpg"),
        (
            "<PrefixReplace>true</PrefixReplace><ResourcesPrefix>pic</ResourcesPrefix><TargetKeyPrefix>abc</TargetKeyPrefix>",
            "picture.jpg",
            "abcture.jpg",
        ),
        ("<PrefixReplace>true</PrefixReplace><TargetKeyPrefix>new/</TargetKeyPrefix>", "x.jpg", "new/x.jpg"),
        ("<PrefixReplace>true</PrefixReplace><ResourcesPrefix>old/</ResourcesPrefix>", "old/x.jpg", "x.jpg"),
    ],
)
def test_target_key_prefix_rules(
    s3: S3Client, buckets: tuple[str, str], children: str, key: str, expected: str
) -> None:
    src, dst = buckets
    put(s3, src, key)
    assert copy_task(s3, src, key, None, copy_op(dst, children), settings=DEFAULT).succeeded
    assert s3.get_object(Bucket=dst, Key=expected)["Body"].read() == b"hello"


def test_a_key_outside_the_resources_prefix_fails_its_task(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(s3, src, "other.jpg")
    op = copy_op(dst, "<PrefixReplace>true</PrefixReplace><ResourcesPrefix>pic</ResourcesPrefix>")
    outcome = copy_task(s3, src, "other.jpg", None, op, settings=DEFAULT)
    assert (outcome.succeeded, outcome.error_code) == (False, "InvalidTargetKey")


def test_metadata_replaced_and_added(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(
        s3,
        src,
        "k",
        ContentType="text/plain",
        CacheControl="no-cache",
        Metadata={"team": "data", "keep": "1"},
    )
    new = (
        "<NewObjectMetadata><ContentType>application/json</ContentType>"
        "<UserMetadata><member><Key>team</Key><Value>ops</Value></member>"
        "<member><Key>added</Key><Value>yes</Value></member></UserMetadata></NewObjectMetadata>"
    )
    # Replaced: only what the job says
    op = copy_op(
        dst, f"<MetadataDirective>Replaced</MetadataDirective>{new}<TargetKeyPrefix>r/</TargetKeyPrefix>"
    )
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    replaced = s3.head_object(Bucket=dst, Key="r/k")
    assert replaced["ContentType"] == "application/json"
    assert replaced["Metadata"] == {"team": "ops", "added": "yes"}
    assert "CacheControl" not in replaced
    # Add: the source's, with the job's on top
    op = copy_op(dst, f"<MetadataDirective>Add</MetadataDirective>{new}<TargetKeyPrefix>a/</TargetKeyPrefix>")
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    added = s3.head_object(Bucket=dst, Key="a/k")
    assert added["ContentType"] == "application/json"
    assert added["CacheControl"] == "no-cache"
    assert added["Metadata"] == {"team": "ops", "keep": "1", "added": "yes"}


def test_tagging_replaced_and_added(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(s3, src, "k", Tagging="env=prod&owner=me")
    new = "<NewObjectTagging><COSTag><Key>env</Key><Value>dev</Value></COSTag><COSTag><Key>x</Key><Value>1</Value></COSTag></NewObjectTagging>"
    op = copy_op(
        dst, f"<TaggingDirective>Replaced</TaggingDirective>{new}<TargetKeyPrefix>r/</TargetKeyPrefix>"
    )
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=dst, Key="r/k")["TagSet"]}
    assert tags == {"env": "dev", "x": "1"}
    op = copy_op(dst, f"<TaggingDirective>Add</TaggingDirective>{new}<TargetKeyPrefix>a/</TargetKeyPrefix>")
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=dst, Key="a/k")["TagSet"]}
    assert tags == {"env": "dev", "owner": "me", "x": "1"}


def grants_of(s3: S3Client, bucket: str, key: str) -> set[tuple[str, str]]:
    acl = s3.get_object_acl(Bucket=bucket, Key=key)
    return {
        (str(g["Grantee"].get("URI") or g["Grantee"].get("ID")), str(g["Permission"])) for g in acl["Grants"]
    }


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def test_acl_directives(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(s3, src, "k", ACL="public-read")
    # Replaced with a canned ACL
    op = copy_op(
        dst,
        "<AccessControlDirective>Replaced</AccessControlDirective>"
        "<CannedAccessControlList>private</CannedAccessControlList><TargetKeyPrefix>canned/</TargetKeyPrefix>",
    )
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    assert (ALL_USERS, "READ") not in grants_of(s3, dst, "canned/k")
    # Copy keeps the source's grants
    op = copy_op(
        dst, "<AccessControlDirective>Copy</AccessControlDirective><TargetKeyPrefix>copy/</TargetKeyPrefix>"
    )
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    assert (ALL_USERS, "READ") in grants_of(s3, dst, "copy/k")
    # Add puts the job's grants beside the source's
    grant = (
        "<AccessControlGrants><COSGrant><Grantee><Identifier>abc123</Identifier><TypeIdentifier>ID</TypeIdentifier>"
        "</Grantee><Permission>READ_ACP</Permission></COSGrant></AccessControlGrants>"
    )
    op = copy_op(
        dst,
        f"<AccessControlDirective>Add</AccessControlDirective>{grant}<TargetKeyPrefix>add/</TargetKeyPrefix>",
    )
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    assert {(ALL_USERS, "READ"), ("abc123", "READ_ACP")} <= grants_of(s3, dst, "add/k")


def test_storage_class_and_encryption(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(s3, src, "k")
    op = copy_op(
        dst,
        "<MetadataDirective>Replaced</MetadataDirective><NewObjectMetadata><SSEAlgorithm>AES256</SSEAlgorithm>"
        "</NewObjectMetadata><StorageClass>STANDARD_IA</StorageClass>",
    )
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    head = s3.head_object(Bucket=dst, Key="k")
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"


def test_the_manifest_version_is_the_source(s3: S3Client) -> None:
    src, dst = new_bucket(s3, versioned=True), new_bucket(s3)
    put(s3, src, "k", b"first")
    version = s3.head_object(Bucket=src, Key="k")["VersionId"]
    put(s3, src, "k", b"second")
    assert copy_task(s3, src, "k", version, copy_op(dst), settings=DEFAULT).succeeded
    assert s3.get_object(Bucket=dst, Key="k")["Body"].read() == b"first"


def test_date_constraints_are_sent(s3: S3Client, buckets: tuple[str, str]) -> None:
    # moto ignores these conditions, so assert what is sent, not what moto enforces
    src, dst = buckets
    put(s3, src, "k")
    seen = inject(s3, "CopyObject", count_only())
    op = copy_op(
        dst,
        "<ModifiedSinceConstraint>2019-12-19T18:00:30Z</ModifiedSinceConstraint>"
        "<UnModifiedSinceConstraint>2030-01-01T00:00:00Z</UnModifiedSinceConstraint>",
    )
    assert copy_task(s3, src, "k", None, op, settings=DEFAULT).succeeded
    headers = seen.seen[0].headers
    assert headers["x-amz-copy-source-if-modified-since"] == b"Thu, 19 Dec 2019 18:00:30 GMT"
    assert headers["x-amz-copy-source-if-unmodified-since"] == b"Tue, 01 Jan 2030 00:00:00 GMT"


def test_a_failed_precondition_is_a_failed_task(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(s3, src, "k")
    inject(
        s3,
        "CopyObject",
        first(1, lambda: s3_error(412, "PreconditionFailed", "At least one precondition failed")),
    )
    op = copy_op(dst, f"<ModifiedSinceConstraint>{datetime.now(UTC).isoformat()}</ModifiedSinceConstraint>")
    outcome = copy_task(s3, src, "k", None, op, settings=DEFAULT)
    assert (outcome.succeeded, outcome.http_status, outcome.error_code) == (False, 412, "PreconditionFailed")
    assert not outcome.transient


def test_one_request_per_object_by_default(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(s3, src, "k")
    every = inject(s3, "*", count_only())
    assert copy_task(s3, src, "k", None, copy_op(dst), settings=DEFAULT).succeeded
    assert len(every.seen) == 1


def test_missing_source_and_transient_errors(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    missing = copy_task(s3, src, "nope", None, copy_op(dst), settings=DEFAULT)
    assert (missing.succeeded, missing.http_status, missing.error_code) == (False, 404, "NoSuchKey")
    put(s3, src, "k")
    # Two 503s are retried by botocore; the copy succeeds
    inject(s3, "CopyObject", first(2, lambda: s3_error(503, "SlowDown", "Please reduce your request rate.")))
    assert copy_task(s3, src, "k", None, copy_op(dst), settings=DEFAULT).succeeded


def test_persistent_throttling_is_a_transient_failure(
    s3: S3Client, buckets: tuple[str, str], make_s3: MakeS3
) -> None:
    src, dst = buckets
    put(s3, src, "k")
    # botocore backs off throttles from 1 s: two attempts keep this test short
    impatient = make_s3(max_attempts=2)
    inject(
        impatient,
        "CopyObject",
        first(99, lambda: s3_error(503, "SlowDown", "Please reduce your request rate.")),
    )
    outcome = copy_task(impatient, src, "k", None, copy_op(dst), settings=DEFAULT)
    assert (outcome.succeeded, outcome.error_code, outcome.transient) == (False, "SlowDown", True)


SMALL_PARTS = CopySettings(multipart_threshold=5 * MIB, part_size=5 * MIB, part_concurrency=3)


def test_multipart_copy_above_the_threshold(s3: S3Client, buckets: tuple[str, str]) -> None:
    # GIVEN a 12 MiB object and a 5 MiB threshold
    src, dst = buckets
    body = os.urandom(12 * MIB)
    put(s3, src, "big", body, ContentType="video/mp4", Metadata={"m": "1"}, Tagging="t=1")
    # WHEN copied, with the first part copy failing once (retried)
    parts = inject(s3, "UploadPartCopy", first(1, lambda: s3_error(500, "InternalError")))
    outcome = copy_task(s3, src, "big", None, copy_op(dst), settings=SMALL_PARTS)
    # THEN the copy is whole, with the source's attributes, in 3 parts
    assert outcome.succeeded, outcome
    assert "3 parts" in outcome.message
    assert len(parts.seen) == 4
    got = s3.get_object(Bucket=dst, Key="big")
    assert hashlib.md5(got["Body"].read()).digest() == hashlib.md5(body).digest()
    assert (got["ContentType"], got["Metadata"]) == ("video/mp4", {"m": "1"})
    assert s3.get_object_tagging(Bucket=dst, Key="big")["TagSet"] == [{"Key": "t", "Value": "1"}]


def test_multipart_copy_with_a_part_failing_for_good_aborts(s3: S3Client, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    put(s3, src, "big", os.urandom(11 * MIB))
    inject(
        s3,
        "UploadPartCopy",
        lambda request, _count: (
            s3_error(403, "AccessDenied", "Access Denied")
            if b"partNumber=2" in request.url.encode()
            else None
        ),
    )
    outcome = copy_task(s3, src, "big", None, copy_op(dst), settings=SMALL_PARTS)
    assert (outcome.succeeded, outcome.http_status, outcome.error_code) == (False, 403, "AccessDenied")
    assert s3.list_multipart_uploads(Bucket=dst).get("Uploads", []) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=dst)


def test_a_source_too_large_for_copy_object_falls_back_to_multipart(
    s3: S3Client, buckets: tuple[str, str]
) -> None:
    # GIVEN S3's answer for a source above 5 GB (injected: moto holds no such object)
    src, dst = buckets
    put(s3, src, "k", b"x" * 100)
    too_large = (
        "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
    )
    inject(s3, "CopyObject", first(1, lambda: s3_error(400, "InvalidRequest", too_large)))
    # WHEN copied with default settings
    outcome = copy_task(s3, src, "k", None, copy_op(dst), settings=DEFAULT)
    # THEN it is copied in parts
    assert outcome.succeeded, outcome
    assert "multipart" in outcome.message
    assert s3.get_object(Bucket=dst, Key="k")["Body"].read() == b"x" * 100
