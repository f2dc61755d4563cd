"""Property: for the parameters it takes, the fast serializer lays out exactly the request dict
botocore's serializer does (URL path, query, headers, body bytes), after the same parameter
handlers; for anything else it declines, and the call goes to boto3."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from botocore.handlers import escape_xml_payload, remove_bucket_from_url_paths_from_model
from botocore.model import OperationModel
from botocore.serialize import create_serializer
from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.s3fast.client import PARAMETER_HANDLERS
from batchops.s3fast.serialize import FastSerializer

SERVICE = boto3.client("s3", region_name="us-east-1").meta.service_model
SERIALIZER = create_serializer("rest-xml", include_validation=True)

keys = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=30
) | st.sampled_from(["a b+c", "/lead", "d//e", "~x%20y", "é\nü", "a&b<c>d", "\r"])
words = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
dates = st.datetimes(
    min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2099, 1, 1)
) | st.datetimes(
    min_value=datetime.datetime(1971, 1, 1),
    max_value=datetime.datetime(2099, 1, 1),
    timezones=st.sampled_from([datetime.UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30))]),
)
buckets = st.from_regex(r"[a-z0-9][a-z0-9.\-]{2,20}", fullmatch=True)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of ``fields``, in any order."""
    return st.fixed_dictionaries({}, optional=fields).flatmap(
        lambda chosen: st.permutations(list(chosen.items())).map(dict)
    )


def params(
    required: dict[str, st.SearchStrategy[Any]], **extra: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(st.fixed_dictionaries(required), optional(**extra)).map(
        lambda pair: {**pair[0], **pair[1]}
    )


copy_sources = st.builds(
    lambda bucket, key, version: {
        "Bucket": bucket,
        "Key": key,
        **({"VersionId": version} if version else {}),
    },
    buckets,
    keys,
    st.none() | words,
)
metadata = st.dictionaries(st.from_regex(r"[A-Za-z0-9-]{1,10}", fullmatch=True), words, max_size=3)
OPERATIONS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "CopyObject": params(
        {"Bucket": buckets, "Key": keys, "CopySource": copy_sources},
        MetadataDirective=st.sampled_from(["COPY", "REPLACE"]),
        TaggingDirective=st.sampled_from(["COPY", "REPLACE"]),
        Tagging=words,
        Metadata=metadata,
        ContentType=words,
        CacheControl=words,
        Expires=dates,
        CopySourceIfModifiedSince=dates,
        CopySourceIfUnmodifiedSince=dates,
        StorageClass=st.sampled_from(["STANDARD_IA", "GLACIER"]),
        ServerSideEncryption=st.sampled_from(["AES256", "aws:kms"]),
        ACL=st.sampled_from(["private", "public-read"]),
        GrantRead=words,
        BucketKeyEnabled=st.booleans(),
        ExpectedBucketOwner=st.from_regex(r"[0-9]{12}", fullmatch=True),
    ),
    "HeadObject": params(
        {"Bucket": buckets, "Key": keys},
        VersionId=words,
        PartNumber=st.integers(min_value=1, max_value=10000),
        IfMatch=words,
        IfModifiedSince=dates,
        Range=words,
        ResponseContentType=words,
    ),
    "DeleteObject": params(
        {"Bucket": buckets, "Key": keys},
        VersionId=words,
        MFA=words,
        BypassGovernanceRetention=st.booleans(),
        IfMatchSize=st.integers(min_value=0, max_value=2**40),
    ),
    "DeleteObjects": params(
        {
            "Bucket": buckets,
            "Delete": optional(Quiet=st.booleans()).flatmap(
                lambda quiet: st.lists(
                    st.builds(
                        lambda k, v: {"Key": k, **({"VersionId": v} if v else {})}, keys, st.none() | words
                    ),
                    min_size=1,
                    max_size=5,
                ).flatmap(lambda objects: st.permutations([("Objects", objects), *quiet.items()]).map(dict))
            ),
        },
    ),
    "RestoreObject": params(
        {"Bucket": buckets, "Key": keys},
        VersionId=words,
        RestoreRequest=optional(
            Days=st.integers(min_value=1, max_value=3650),
            GlacierJobParameters=st.sampled_from(["Bulk", "Standard", "Expedited"]).map(
                lambda t: {"Tier": t}
            ),
            Tier=st.sampled_from(["Bulk", "Standard"]),
            Description=words,
        ),
    ),
}


def model_of(name: str) -> OperationModel:
    model = SERVICE.operation_model(name)
    remove_bucket_from_url_paths_from_model(params={}, model=model, context={})
    return model


def handled(name: str, given_params: dict[str, Any]) -> dict[str, Any]:
    copied = dict(given_params)
    for handler in PARAMETER_HANDLERS[name]:
        handler(params=copied, model=SERVICE.operation_model(name), context={})
    return copied


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_the_fast_serializer_lays_out_botocores_request(name: str) -> None:
    model = model_of(name)
    fast = FastSerializer(model)

    @settings(max_examples=150, deadline=None)
    @given(OPERATIONS[name])
    def check(given_params: dict[str, Any]) -> None:
        # GIVEN plain parameters, through botocore's parameter handlers
        prepared = handled(name, given_params)
        # WHEN both serialize them
        theirs = SERIALIZER.serialize_to_request(dict(prepared), model)
        if name == "DeleteObjects":
            escape_xml_payload(theirs)
        ours = fast.serialize(dict(prepared))
        # THEN the fast path takes them, and its request is botocore's
        assert ours is not None
        for field in ("url_path", "query_string", "method", "headers", "body"):
            assert ours[field] == theirs[field], field

    check()


@pytest.mark.parametrize(
    ("name", "declined"),
    [
        ("HeadObject", {"Bucket": "b", "Key": ""}),  # botocore: Key too short
        ("HeadObject", {"Bucket": "b"}),  # Key missing
        ("HeadObject", {"Bucket": "b", "Key": "k", "VersionId": None}),
        ("HeadObject", {"Bucket": "b", "Key": "k", "PartNumber": "1"}),  # a str for an integer
        ("HeadObject", {"Bucket": "b", "Key": "k", "PartNumber": True}),
        ("HeadObject", {"Bucket": "b", "Key": "k", "IfModifiedSince": "2024-01-01"}),  # parsed by botocore
        ("HeadObject", {"Bucket": "b", "Key": "k", "Unknown": "x"}),
        ("CopyObject", {"Bucket": "b", "Key": "k", "CopySource": "s/k", "Metadata": {"a": 1}}),
        (
            "CopyObject",
            {
                "Bucket": "b",
                "Key": "k",
                "CopySource": "s/k",
                "ObjectLockRetainUntilDate": datetime.datetime(2030, 1, 1),
            },
        ),
        ("DeleteObjects", {"Bucket": "b", "Delete": {"Objects": []}}),
        ("DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "k", "ETag": "x"}]}}),
        ("DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": ""}]}}),
        ("DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "k"}], "Quiet": "false"}}),
        ("RestoreObject", {"Bucket": "b", "Key": "k", "RestoreRequest": {"Type": "SELECT"}}),
        ("RestoreObject", {"Bucket": "b", "Key": "k", "RestoreRequest": {"Days": "7"}}),
    ],
)
def test_anything_not_plain_is_left_to_boto3(name: str, declined: dict[str, Any]) -> None:
    assert FastSerializer(model_of(name)).serialize(declined) is None
