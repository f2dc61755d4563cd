"""The ops run on the S3 client the engine uses: boto3's, and the lean one (batchops.s3fast).

The lean client reaches moto through a fault proxy (faults are injected there); at the end of
each test every request of a lean operation must have been the lean client's own, so a test
cannot pass because the lean client quietly handed its calls to boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from batchops.s3fast import lean_s3_client
from batchops.s3fast.client import LEAN_OPERATIONS
from tests.fault_proxy import FaultProxy
from tests.faults import route_through

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MakeS3 = Callable[..., "S3Client"]


@pytest.fixture(params=["boto3", "lean"])
def make_s3(request: pytest.FixtureRequest, moto_endpoint: str) -> Iterator[MakeS3]:
    proxies: list[FaultProxy] = []

    def make(max_attempts: int = 4) -> S3Client:
        # as tests/conftest.py's s3 fixture: explicit retries, path-style on moto
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts}, s3={"addressing_style": "path"}
        )
        if request.param == "boto3":
            return boto3.client("s3", endpoint_url=moto_endpoint, config=config)
        proxy = FaultProxy(moto_endpoint)
        proxies.append(proxy)
        client = lean_s3_client(boto3.client("s3", endpoint_url=proxy.url, config=config))
        route_through(client, proxy)
        return client

    yield make
    lean_operations = set(LEAN_OPERATIONS.values())
    for proxy in proxies:
        proxy.stop()
        handed_over = [
            (operation, r.url)
            for operation, r in proxy.seen
            if operation in lean_operations and b"batchops-s3fast" not in r.headers.get("User-Agent", b"")
        ]
        assert handed_over == [], "the lean client handed these calls to boto3"


@pytest.fixture
def s3(make_s3: MakeS3) -> S3Client:
    return make_s3()
