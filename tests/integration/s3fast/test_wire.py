"""The lean client sends what boto3 sends: for random parameters of every lean operation (over
HTTP, to a scripted server), and for every way botocore places a bucket (virtual host or path,
AWS or custom endpoints, regions, dual-stack, accelerate), compared before sending."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from hypothesis import HealthCheck, given, settings

from batchops.s3fast import LeanS3Client
from tests.integration.s3fast.conftest import assert_same
from tests.scripted_http import Answer, ScriptedServer, response, serving, xml
from tests.unit.s3fast.test_serialize import OPERATIONS

METHODS = {
    "CopyObject": "copy_object",
    "HeadObject": "head_object",
    "DeleteObject": "delete_object",
    "DeleteObjects": "delete_objects",
    "RestoreObject": "restore_object",
}
ANSWERS = {
    "CopyObject": xml(200, "<CopyObjectResult><ETag>&quot;e&quot;</ETag></CopyObjectResult>"),
    "HeadObject": response(200, headers={"Content-Length": "3", "ETag": '"e"'}),
    "DeleteObject": response(204),
    "DeleteObjects": xml(200, "<DeleteResult></DeleteResult>"),
    "RestoreObject": response(202),
}


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ScriptedServer]:
    yield from serving()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_random_parameters_go_out_as_boto3_sends_them(name: str, shared_server: ScriptedServer) -> None:
    shared_server.default = Answer(ANSWERS[name])

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(OPERATIONS[name])
    def check(params: dict[str, Any]) -> None:
        assert_same(shared_server, [], lambda client: getattr(client, METHODS[name])(**params))

    check()


CALLS: dict[str, dict[str, Any]] = {
    "copy_object": {
        "Key": "a b/~é",
        "CopySource": {"Bucket": "src.b", "Key": "k+1"},
        "MetadataDirective": "COPY",
    },
    "head_object": {"Key": "/lead//x", "VersionId": "v+1"},
    "delete_object": {"Key": "k"},
    "delete_objects": {"Delete": {"Objects": [{"Key": "a"}], "Quiet": True}},
    "restore_object": {"Key": "k", "RestoreRequest": {"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}}},
}


def captured(client: Any, method: str, params: dict[str, Any]) -> AWSPreparedRequest:
    """The request boto3 would send (answered in place, nothing leaves the process)."""
    seen: list[AWSPreparedRequest] = []

    def answer(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        seen.append(request)
        raise _Captured

    client.meta.events.register("before-send.s3.*", answer)
    with pytest.raises(_Captured):
        getattr(client, method)(**params)
    return seen[0]


class _Captured(Exception):
    pass


@pytest.mark.parametrize(
    ("endpoint", "region", "s3"),
    [
        (None, "us-east-1", {"addressing_style": "auto"}),
        (None, "eu-west-1", {"addressing_style": "virtual"}),
        (None, "eu-west-1", {"addressing_style": "path"}),
        (None, "ap-southeast-2", {"use_dualstack_endpoint": True}),
        (None, "us-east-1", {"us_east_1_regional_endpoint": "regional"}),
        (None, "eu-central-1", {"use_accelerate_endpoint": True}),
        ("http://localhost:9000", "us-east-1", {"addressing_style": "virtual"}),
        ("https://minio.example:9000", "eu-west-1", {"addressing_style": "path"}),
        ("https://s3.example.com", "eu-west-1", {"addressing_style": "auto"}),
    ],
)
@pytest.mark.parametrize("bucket", ["bkt", "b.dotted", "Upper_Case"])
@pytest.mark.parametrize("method", sorted(CALLS))
def test_every_bucket_placement_is_botocores(
    endpoint: str | None, region: str, s3: Any, bucket: str, method: str
) -> None:
    # GIVEN a client configured one of the ways botocore places buckets
    ignore_env: Any = {"ignore_configured_endpoint_urls": endpoint is None}

    def client() -> Any:
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="AKID",
            aws_secret_access_key="secret",
            # the suite sets AWS_ENDPOINT_URL; these clients must see the real AWS endpoints
            config=Config(retries={"mode": "standard"}, s3=s3, **ignore_env),
        )

    params = {"Bucket": bucket, **CALLS[method]}
    try:
        theirs = captured(client(), method, params)
    except Exception as refused:
        # a combination boto3 refuses (accelerate needs virtual hosts): the lean client too
        with pytest.raises(type(refused)) as ours_refused:
            getattr(LeanS3Client(client()), method)(**params)
        assert str(ours_refused.value) == str(refused)
        return
    # WHEN the lean client prepares and signs the same call at the same time
    date: Any = theirs.headers["X-Amz-Date"]
    stamp = date.decode() if isinstance(date, bytes) else str(date)
    lean = LeanS3Client(client(), clock=lambda: stamp)
    engine = lean._lean
    assert engine is not None
    name = {v: k for k, v in METHODS.items()}[method]
    operation = engine._operations[name]
    assert operation is not None
    request = engine.prepare(operation, dict(params), bucket)
    ours = engine.signed_headers(request, 1, "inv")
    # THEN the URL and every header boto3 signs or sends are the same
    assert request.url == theirs.url
    theirs_headers = {
        k.lower(): (v.decode() if isinstance(v, bytes) else v)
        for k, v in theirs.headers.items()
        if k.lower() not in ("user-agent", "amz-sdk-invocation-id")
    }
    ours_headers = {
        k.lower(): v for k, v in ours.items() if k.lower() not in ("user-agent", "amz-sdk-invocation-id")
    }
    assert ours_headers == theirs_headers
