"""One parser for every resource spelling, with clear errors."""

from __future__ import annotations

import pytest

from batchops.manifest.resources import Resource, ResourceError, parse_bucket, parse_object, parse_resource


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000",
            Resource("destinationbucket-1250000000", None, "ap-chengdu", "1250000000"),
        ),
        (
            "qcs::cos:ap-chengdu::sourcebucket-1250000000/manifests/batch-copy-manifest.csv",
            Resource("sourcebucket-1250000000", "manifests/batch-copy-manifest.csv", "ap-chengdu", None),
        ),
        ("arn:aws:s3:::my-bucket", Resource("my-bucket")),
        ("arn:aws-cn:s3:::my.bucket/a/b:c d/", Resource("my.bucket", "a/b:c d/")),
    ],
)
def test_accepted_spellings(text: str, expected: Resource) -> None:
    assert parse_resource(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("s3://bucket/key", "is not a resource name"),
        ("my-bucket", "is not a resource name"),
        ("qcs::cos:::bucket-1", "needs a region"),
        ("qcs::cos:ap-chengdu:uid/:bucket-1", "uid/<appid>"),
        ("arn:aws:s3:us-east-1::bucket", "empty region and account"),
        ("arn:aws:s3:::B", "not a valid bucket name"),
        ("arn:aws:s3:::a..b", "not a valid bucket name"),
        ("arn:aws:s3:::bucket/", "key after 'bucket/' is empty"),
        ("arn:aws:s3:::bucket/" + "k" * 1025, "longer than 1024 bytes"),
    ],
)
def test_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(ResourceError, match=why):
        parse_resource(text)


def test_bucket_and_object_expectations() -> None:
    with pytest.raises(ResourceError, match="a bucket is expected"):
        parse_bucket("arn:aws:s3:::bucket/key")
    with pytest.raises(ResourceError, match="an object is expected"):
        parse_object("arn:aws:s3:::bucket")
