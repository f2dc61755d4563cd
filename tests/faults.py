"""Fault injection: the real retry and parsing code runs.

A boto3 client is injected through botocore's before-send hook. A lean client (batchops.s3fast)
sends without botocore's hooks, so it is built on a fault proxy (``tests.fault_proxy``) and
``route_through`` records which; ``inject`` then registers on the proxy, and the injected
answers reach it over HTTP. (botocore's Stubber bypasses retries, so it cannot show that a
transient error is retried.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders

from batchops.s3fast import LeanS3Client
from tests.fault_proxy import FaultProxy


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> AWSResponse:
    http_headers = HTTPHeaders()
    for name, value in (headers or {}).items():
        http_headers[name] = value
    return AWSResponse("http://injected", status, http_headers, _Raw(body))


def s3_error(status: int, code: str, message: str = "injected") -> AWSResponse:
    body = (
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>inj</RequestId></Error>".encode()
    )
    return response(status, body, {"Content-Type": "application/xml"})


@dataclass
class Injector:
    """Answers matching requests itself while ``decide`` returns a response; counts every request."""

    decide: Callable[[AWSPreparedRequest, int], AWSResponse | None]
    seen: list[AWSPreparedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        with self._lock:
            self.seen.append(request)
            count = len(self.seen)
        return self.decide(request, count)


_PROXIES: dict[int, tuple[Any, FaultProxy]] = {}
"""By id, holding the client too: a collected client's id can be reused by a new one."""


def route_through(client: Any, proxy: FaultProxy) -> None:
    """``client`` talks to S3 through ``proxy``: faults for it are injected there."""
    _PROXIES[id(client)] = (client, proxy)


def inject(
    client: Any, operation: str, decide: Callable[[AWSPreparedRequest, int], AWSResponse | None]
) -> Injector:
    """Register on ``before-send.<service>.<operation>`` of one client (``*`` for every operation),
    or on its fault proxy."""
    injector = Injector(decide)
    routed = _PROXIES.get(id(client))
    if routed is not None and routed[0] is client:
        routed[1].inject(operation, injector)
        return injector
    if isinstance(client, LeanS3Client):
        raise AssertionError("a lean client's calls skip botocore's hooks: build it on a FaultProxy")
    service = client.meta.service_model.service_name.replace(" ", "-").lower()
    client.meta.events.register(f"before-send.{service}.{operation}", injector)
    return injector


def first(
    n: int, answer: Callable[[], AWSResponse]
) -> Callable[[AWSPreparedRequest, int], AWSResponse | None]:
    """Fail the first ``n`` matching requests, then let requests through."""
    return lambda _request, count: answer() if count <= n else None


def count_only() -> Callable[[AWSPreparedRequest, int], AWSResponse | None]:
    return lambda _request, _count: None
