"""A copy made as steps and multiplexed (the engine's way on the lean client) is the copy
``copy_task`` makes: the same outcome, the same object, whichever directive (one CopyObject made
as steps, or a copy that reads its source first, made blocking on the pool)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from batchops.ops.copy import CopySettings, copy_task, copy_task_steps
from batchops.s3fast.multiplex import Multiplexer
from tests.conftest import new_bucket
from tests.integration.ops.test_copy import copy_op, grants_of, put

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

NEW_METADATA = (
    "<NewObjectMetadata><ContentType>application/json</ContentType>"
    "<UserMetadata><member><Key>team</Key><Value>ops</Value></member></UserMetadata></NewObjectMetadata>"
)
NEW_TAGS = "<NewObjectTagging><COSTag><Key>env</Key><Value>dev</Value></COSTag></NewObjectTagging>"
OPERATIONS = {
    "no directive": "",
    "metadata replaced": f"<MetadataDirective>Replaced</MetadataDirective>{NEW_METADATA}",
    "metadata added": f"<MetadataDirective>Add</MetadataDirective>{NEW_METADATA}",
    "tags replaced": f"<TaggingDirective>Replaced</TaggingDirective>{NEW_TAGS}",
    "tags added": f"<TaggingDirective>Add</TaggingDirective>{NEW_TAGS}",
    "acl copied": "<AccessControlDirective>Copy</AccessControlDirective>",
    "storage class": "<StorageClass>STANDARD_IA</StorageClass>",
}


@pytest.fixture
def buckets(s3: S3Client) -> tuple[str, str]:
    return new_bucket(s3), new_bucket(s3)


def state(s3: S3Client, bucket: str, key: str, acl: bool = True) -> tuple[Any, ...]:
    head = s3.head_object(Bucket=bucket, Key=key)
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    return (
        head["ContentLength"],
        head["ContentType"],
        head["Metadata"],
        head.get("StorageClass"),
        tags,
        grants_of(s3, bucket, key) if acl else None,
    )


@pytest.mark.parametrize("children", OPERATIONS.values(), ids=OPERATIONS.keys())
@pytest.mark.parametrize("multipart", [False, True], ids=["single", "multipart threshold"])
def test_a_copy_made_as_steps_is_the_blocking_copy(
    s3: S3Client, buckets: tuple[str, str], children: str, multipart: bool
) -> None:
    # GIVEN a source object with content type, metadata, tags and a public ACL
    src, dst = buckets
    put(s3, src, "k", ContentType="text/plain", Metadata={"keep": "1"}, Tagging="owner=me", ACL="public-read")
    settings = CopySettings(multipart_threshold=1) if multipart else CopySettings()
    # WHEN it is copied blocking (copy_task) and multiplexed (copy_task_steps), to two prefixes
    blocking = copy_task(
        s3,
        src,
        "k",
        None,
        copy_op(dst, f"{children}<TargetKeyPrefix>b/</TargetKeyPrefix>"),
        settings=settings,
    )
    op = copy_op(dst, f"{children}<TargetKeyPrefix>m/</TargetKeyPrefix>")
    with ThreadPoolExecutor(2) as pool:
        mux = Multiplexer(pool)
        try:
            (multiplexed,), stopped = mux.run(
                [partial(copy_task_steps, s3, src, "k", None, op, settings=settings)], 1, lambda: False
            )
        finally:
            mux.close()
    # THEN the outcomes and the copies are the same
    assert not stopped
    assert multiplexed == blocking
    assert blocking.succeeded
    # (moto answers GetObjectAcl of a multipart upload's object with a 500)
    assert state(s3, dst, "m/k", acl=not multipart) == state(s3, dst, "b/k", acl=not multipart)


def test_a_failed_copy_made_as_steps_fails_as_the_blocking_one(
    s3: S3Client, buckets: tuple[str, str]
) -> None:
    src, dst = buckets
    op = copy_op(dst)
    blocking = copy_task(s3, src, "missing", None, op, settings=CopySettings())
    with ThreadPoolExecutor(2) as pool:
        mux = Multiplexer(pool)
        try:
            (multiplexed,), _ = mux.run(
                [partial(copy_task_steps, s3, src, "missing", None, op, settings=CopySettings())],
                1,
                lambda: False,
            )
        finally:
            mux.close()
    assert (multiplexed.succeeded, multiplexed.http_status, multiplexed.error_code) == (
        False,
        404,
        "NoSuchKey",
    )
    assert multiplexed == blocking
