"""Both clients against one scripted loopback server: what each sent, what each returned."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from batchops.s3fast import LeanS3Client
from batchops.s3fast.multiplex import Multiplexer
from tests.scripted_http import Answer, Recorded, ScriptedServer, serving

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

LEAN_AGENT = "batchops-s3fast"
UNCOMPARED_HEADERS = frozenset({"user-agent", "amz-sdk-invocation-id"})


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from serving()


_VIA = {"lean": "blocking"}


@pytest.fixture(params=["blocking", "multiplexed"])
def lean_via(request: pytest.FixtureRequest) -> Iterator[str]:
    """``compare`` makes the lean client's calls blocking (as a thread does) or multiplexed (as
    the engine's chunk runner does, ``s3fast.multiplex``): both must be boto3's twin."""
    _VIA["lean"] = request.param
    yield request.param
    _VIA["lean"] = "blocking"


class Multiplexed:
    """A lean client whose calls are made through a Multiplexer, one at a time."""

    def __init__(self, lean: LeanS3Client) -> None:
        self.lean = lean

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            with ThreadPoolExecutor(2) as pool:
                mux = Multiplexer(pool)
                try:
                    results, _ = mux.run([lambda: self.lean.steps(method, kwargs)], 1, lambda: False)
                finally:
                    mux.close()
            return results[0]

        return call


def boto3_client(
    url: str, max_attempts: int = 3, read_timeout: float = 5, pool: int = 10, **s3: Any
) -> S3Client:
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts - 1},  # botocore counts retries here
        read_timeout=read_timeout,
        connect_timeout=2,
        max_pool_connections=pool,
        s3={"addressing_style": "path", **s3},  # type: ignore[arg-type]
    )
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="eu-west-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret/key+test",
        aws_session_token="session-token",
        config=config,
    )


@dataclass
class Run:
    outcome: tuple[Any, ...]
    requests: list[Recorded]


def run(server: ScriptedServer, client: Any, script: list[Answer | bytes], call: Callable[[Any], Any]) -> Run:
    server.script(*script)
    try:
        outcome: tuple[Any, ...] = ("ok", call(client))
    except Exception as exc:
        outcome = (
            "error",
            [cls.__name__ for cls in type(exc).__mro__],
            str(exc),
            getattr(exc, "response", None),
        )
    return Run(outcome, list(server.requests))


def compare(
    server: ScriptedServer,
    script: list[Answer | bytes],
    call: Callable[[Any], Any],
    *,
    url: str | None = None,
    **config: Any,
) -> tuple[Run, Run]:
    """(boto3's run, the lean client's run) of ``call`` on the same script, the lean client
    signing at the time boto3 signed (so whole requests can be compared)."""
    endpoint = url or server.url
    theirs = run(server, boto3_client(endpoint, **config), script, call)
    # boto3's signing times, attempt by attempt (a retry may sign in a later second)
    stamps = [r.headers["x-amz-date"] for r in theirs.requests] or ["20240101T000000Z"]
    clock = iter([*stamps, *[stamps[-1]] * 100])
    lean = LeanS3Client(boto3_client(endpoint, **config), clock=lambda: next(clock))
    ours = run(server, Multiplexed(lean) if _VIA["lean"] == "multiplexed" else lean, script, call)
    return theirs, ours


def assert_same(
    server: ScriptedServer, script: list[Answer | bytes], call: Callable[[Any], Any], **config: Any
) -> Run:
    """The lean client made every request itself, the same requests as boto3, and came to the
    same result: the same dict, or the same exception with the same message and response."""
    theirs, ours = compare(server, script, call, **config)
    assert all(LEAN_AGENT in r.headers.get("user-agent", "") for r in ours.requests), "a call went to boto3"
    assert len(ours.requests) == len(theirs.requests)
    for mine, boto3s in zip(ours.requests, theirs.requests, strict=True):
        mine_request, boto3_request = request_of(mine), request_of(boto3s)
        assert mine_request[:2] == boto3_request[:2]
        differing = {
            name: (mine_request[2].get(name), boto3_request[2].get(name))
            for name in mine_request[2].keys() | boto3_request[2].keys()
            if mine_request[2].get(name) != boto3_request[2].get(name)
        }
        assert differing == {}
        assert mine_request[3] == boto3_request[3]
    assert ours.outcome == theirs.outcome
    return ours


def request_of(recorded: Recorded) -> tuple[str, str, dict[str, str], bytes]:
    headers = {k: v for k, v in recorded.headers.items() if k not in UNCOMPARED_HEADERS}
    return recorded.method, recorded.target, headers, recorded.body
