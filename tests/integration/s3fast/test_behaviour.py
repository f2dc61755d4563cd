"""What the lean client does beyond a single call: what it hands to boto3 and when, connections,
credentials that change, concurrent calls."""

from __future__ import annotations

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ParamValidationError

from batchops.s3fast import LeanS3Client
from batchops.s3fast.multiplex import Batch, Multiplexer
from batchops.s3fast.steps import Sleep, Steps
from tests.integration.s3fast.conftest import LEAN_AGENT, boto3_client, compare
from tests.integration.s3fast.test_equivalence import COPY_RESULT, copy
from tests.scripted_http import Answer, ScriptedServer, response, s3_error, xml


def lean_made(server: ScriptedServer) -> list[bool]:
    return [LEAN_AGENT in r.headers.get("user-agent", "") for r in server.requests]


def test_a_region_redirect_hands_the_bucket_to_boto3(server: ScriptedServer) -> None:
    # GIVEN a bucket S3 says lives in another region
    lean = LeanS3Client(boto3_client(server.url))
    moved = s3_error(301, "PermanentRedirect", "wrong region", Bucket="src")
    server.script(
        response(301, moved.split(b"\r\n\r\n", 1)[1], {"x-amz-bucket-region": "us-west-2"}), COPY_RESULT
    )
    # WHEN a lean call meets the redirect
    result = copy(lean)
    # THEN boto3 made the call again (and followed the redirect), and keeps the bucket
    assert result["CopyObjectResult"]["ETag"] == '"abc"'
    assert lean_made(server) == [True, False]
    server.script(COPY_RESULT)
    copy(lean)
    assert lean_made(server) == [False]
    server.script(COPY_RESULT)
    lean.copy_object(Bucket="other", Key="k", CopySource="src/k")
    assert lean_made(server) == [True]


def test_a_head_400_goes_to_boto3_for_this_call_only(server: ScriptedServer) -> None:
    lean = LeanS3Client(boto3_client(server.url))
    ok = response(200, headers={"Content-Length": "1"})
    server.script(response(400), ok, ok)
    lean.head_object(Bucket="b", Key="k")
    lean.head_object(Bucket="b", Key="k")
    assert lean_made(server) == [True, False, True]


@pytest.mark.parametrize(
    "params",
    [
        {
            "Bucket": "b",
            "Key": "k",
            "CopySource": "src/k",
            "ObjectLockRetainUntilDate": datetime.datetime(2030, 1, 1),
        },
        {"Bucket": "b", "Key": "k", "CopySource": "src/k", "Metadata": {"k": "tab\tvalue"}},
        {"Bucket": "arn:aws:s3:us-east-1:123456789012:accesspoint/ap", "Key": "k", "CopySource": "src/k"},
    ],
)
def test_what_is_not_plain_is_boto3s_call(server: ScriptedServer, params: dict[str, Any]) -> None:
    theirs, ours = compare(server, [COPY_RESULT], lambda c: c.copy_object(**params))
    assert ours.outcome == theirs.outcome
    assert LEAN_AGENT not in ours.requests[0].headers["user-agent"] if ours.requests else True


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("copy_object", {"Bucket": "b", "Key": "k", "CopySource": "src/k", "Metadata": {"k": "é"}}),
        ("copy_object", {"Bucket": "b", "Key": "k", "CopySource": {"Bucket": "src"}}),
        ("head_object", {"Bucket": "b", "Key": ""}),
        ("head_object", {"Bucket": "b/x", "Key": "k"}),
        ("delete_objects", {"Bucket": "b", "Delete": {"Objects": [{"Key": 1}]}}),
        ("restore_object", {"Bucket": "b", "Key": "k", "Days": 1}),
    ],
)
def test_invalid_parameters_fail_as_in_boto3(
    server: ScriptedServer, method: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ParamValidationError) as theirs:
        getattr(boto3_client(server.url), method)(**params)
    with pytest.raises(ParamValidationError) as ours:
        getattr(LeanS3Client(boto3_client(server.url)), method)(**params)
    assert str(ours.value) == str(theirs.value)
    assert server.requests == []


def test_positional_arguments_fail_as_in_boto3(server: ScriptedServer) -> None:
    with pytest.raises(TypeError, match="only accepts keyword arguments"):
        LeanS3Client(boto3_client(server.url)).head_object("b", "k")


@pytest.mark.parametrize(
    "config",
    [
        Config(retries={"mode": "legacy"}),
        Config(retries={"mode": "adaptive"}),
        Config(signature_version=UNSIGNED),
        Config(signature_version="s3"),
    ],
)
def test_configurations_it_cannot_honour_leave_every_call_to_boto3(
    server: ScriptedServer, config: Config
) -> None:
    client = boto3.client("s3", endpoint_url=server.url, config=config)
    lean = LeanS3Client(client)
    assert not lean.is_lean
    server.script(COPY_RESULT)
    copy(lean)
    assert lean_made(server) == [False]


def test_a_proxy_leaves_the_calls_to_boto3(server: ScriptedServer) -> None:
    # GIVEN a client that would go through a proxy (the scripted server stands in for it)
    client = boto3.client(
        "s3",
        endpoint_url="http://s3.internal.example",
        config=Config(
            retries={"mode": "standard"}, proxies={"http": server.url}, s3={"addressing_style": "path"}
        ),
    )
    lean = LeanS3Client(client)
    server.script(COPY_RESULT)
    copy(lean)
    assert lean_made(server) == [False]
    assert server.requests[0].target.startswith("http://s3.internal.example/")


def test_refreshable_credentials_are_read_on_every_call(server: ScriptedServer) -> None:
    # GIVEN credentials that renew on every read (they are always within their refresh window)
    serial = iter(range(100))

    def renew() -> dict[str, str]:
        n = next(serial)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {
            "access_key": f"AKID{n}",
            "secret_key": f"s{n}",
            "token": f"t{n}",
            "expiry_time": expiry.isoformat(),
        }

    session = botocore.session.get_session()
    session._credentials = RefreshableCredentials.create_from_metadata(renew(), renew, "test")  # type: ignore[attr-defined]
    client = boto3.Session(botocore_session=session).client(
        "s3",
        endpoint_url=server.url,
        config=Config(retries={"mode": "standard"}, s3={"addressing_style": "path"}),
    )
    lean = LeanS3Client(client)
    # WHEN two calls are made
    server.script(COPY_RESULT, COPY_RESULT)
    copy(lean)
    copy(lean)
    # THEN each was signed with the credentials of its moment
    keys = [r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in server.requests]
    tokens = [r.headers["x-amz-security-token"] for r in server.requests]
    assert all(lean_made(server))
    assert keys[0] != keys[1] and tokens[0] != tokens[1]
    assert keys[1].replace("AKID", "t") == tokens[1]


def test_calls_share_keep_alive_connections(server: ScriptedServer) -> None:
    lean = LeanS3Client(boto3_client(server.url))
    server.default = Answer(COPY_RESULT)
    for _ in range(20):
        copy(lean)
    assert server.connections == 1


def test_a_connection_the_server_closed_is_not_reused(server: ScriptedServer) -> None:
    lean = LeanS3Client(boto3_client(server.url))
    server.script(Answer(COPY_RESULT, close_after=True), COPY_RESULT)
    first = copy(lean)
    threading.Event().wait(0.05)  # the server's FIN arrives
    second = copy(lean)
    assert (first["ResponseMetadata"]["RetryAttempts"], second["ResponseMetadata"]["RetryAttempts"]) == (0, 0)
    assert server.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n" + COPY_RESULT,
        COPY_RESULT.replace(
            b"Content-Length", b"X-Was-Length"
        ),  # a body that runs to the end of the connection
        COPY_RESULT.replace(b"HTTP/1.1", b"HTTP/1.0"),
        COPY_RESULT.replace(b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nConnection: close\r\n"),
    ],
)
def test_http_framing(server: ScriptedServer, answer: bytes) -> None:
    lean = LeanS3Client(boto3_client(server.url))
    no_length = b"X-Was-Length" in answer
    server.script(Answer(answer, close_after=no_length), COPY_RESULT)
    assert copy(lean)["CopyObjectResult"]["ETag"] == '"abc"'
    assert copy(lean)["ResponseMetadata"]["RetryAttempts"] == 0
    reused = b"HTTP/1.0" not in answer and b"Connection: close" not in answer and not no_length
    assert server.connections == (1 if reused else 2)


def test_concurrent_calls(server: ScriptedServer) -> None:
    # GIVEN one lean client shared by 32 threads, with as many pooled connections (a smaller pool
    # discards what it cannot keep, and new connections are opened in their place)
    lean = LeanS3Client(boto3_client(server.url, pool=32))
    server.default = Answer(COPY_RESULT, delay=0.01)
    # WHEN they make 400 calls
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda _: copy(lean)["CopyObjectResult"]["ETag"], range(400)))
    # THEN every call succeeded on its own connection's answer, over at most one connection per thread
    assert results == ['"abc"'] * 400
    assert len(server.requests) == 400 and all(lean_made(server))
    assert server.connections <= 32


def test_multiplexed_calls(server: ScriptedServer) -> None:
    # GIVEN one lean client, its calls multiplexed 32 at a time on one thread
    lean = LeanS3Client(boto3_client(server.url, pool=32))
    server.default = Answer(COPY_RESULT, delay=0.01)
    params = {"Bucket": "dst", "Key": "k", "CopySource": "src/k"}
    starts = [lambda: lean.steps("copy_object", dict(params)) for _ in range(400)]
    # WHEN they make 400 calls
    with ThreadPoolExecutor(max_workers=4) as pool:
        mux = Multiplexer(pool)
        try:
            results, stopped = mux.run(starts, 32, lambda: False)
        finally:
            mux.close()
    # THEN every call succeeded on its own answer, several at once (over several connections),
    # never more than 32
    assert not stopped
    assert [r["CopyObjectResult"]["ETag"] for r in results] == ['"abc"'] * 400
    assert len(server.requests) == 400 and all(lean_made(server))
    assert 1 < server.connections <= 32


def test_a_stop_check_that_fails_stops_the_starting_and_is_raised(server: ScriptedServer) -> None:
    # GIVEN multiplexed calls whose stop check fails as the third is about to start
    lean = LeanS3Client(boto3_client(server.url))
    server.default = Answer(COPY_RESULT, delay=0.01)
    params = {"Bucket": "dst", "Key": "k", "CopySource": "src/k"}
    looks = iter([False, False])

    def should_stop() -> bool:
        return next(looks)

    with ThreadPoolExecutor(max_workers=2) as pool:
        mux = Multiplexer(pool)
        try:
            # WHEN they run, then THEN the failure is raised, once the two started have finished
            with pytest.raises(StopIteration):
                mux.run([lambda: lean.steps("copy_object", dict(params))] * 5, 4, should_stop)
        finally:
            mux.close()
    assert len(server.requests) == 2


def test_a_restore_body_and_checksum_header(server: ScriptedServer) -> None:
    server.script(response(202))
    LeanS3Client(boto3_client(server.url)).restore_object(
        Bucket="b", Key="k", RestoreRequest={"Days": 3, "GlacierJobParameters": {"Tier": "Standard"}}
    )
    (sent,) = server.requests
    assert sent.body.endswith(
        b"<Days>3</Days><GlacierJobParameters><Tier>Standard</Tier></GlacierJobParameters></RestoreRequest>"
    )
    assert sent.headers["x-amz-sdk-checksum-algorithm"] == "CRC32"


def test_delete_objects_sends_every_key(server: ScriptedServer) -> None:
    server.script(xml(200, "<DeleteResult/>"))
    keys = [{"Key": f"k/{n:04d} &<>"} for n in range(1000)]
    LeanS3Client(boto3_client(server.url)).delete_objects(Bucket="b", Delete={"Objects": keys, "Quiet": True})
    (sent,) = server.requests
    assert sent.body.count(b"<Object>") == 1000
    assert b"<Key>k/0999 &amp;&lt;&gt;</Key>" in sent.body


def test_wrapping_twice_wraps_once(server: ScriptedServer) -> None:
    from batchops.s3fast import lean_s3_client

    lean = lean_s3_client(boto3_client(server.url))
    assert lean_s3_client(lean) is lean


def _sleeper(name: str, seconds: float, running: list[int], most: list[int]) -> Steps[str]:
    running[0] += 1
    most[0] = max(most[0], running[0])
    yield Sleep(seconds)
    running[0] -= 1
    return name


def test_batches_share_one_window_that_stays_full_across_their_ends() -> None:
    # GIVEN three batches of tasks, the first ending with a slow one, two in flight at most
    running, most = [0], [0]

    def batch(*tasks: tuple[str, float]) -> Batch:
        return Batch([partial(_sleeper, name, s, running, most) for name, s in tasks], lambda: False)

    first = batch(("a0", 0.01), ("a1", 0.3))
    rest = iter([batch(("b0", 0.01), ("b1", 0.01), ("b2", 0.01)), batch()])
    asked_while: list[int] = []
    finished: list[list[str]] = []

    def following() -> Batch | None:
        asked_while.append(running[0])
        return next(rest, None)

    # WHEN they run
    with ThreadPoolExecutor(max_workers=1) as pool:
        mux = Multiplexer(pool)
        try:
            mux.run_batches(first, 2, following, lambda b: finished.append(b.results))
        finally:
            mux.close()
    # THEN the second ran in the first's slow tail (and finished first), never more than two at
    # once, each batch's results in order; the next batch was asked for as a slot freed up, and
    # no more once one said there was none
    assert finished == [["b0", "b1", "b2"], [], ["a0", "a1"]]
    assert most[0] == 2
    assert asked_while == [1, 1, 1]


def test_a_task_that_raises_stops_the_asking_and_its_batch_says_so() -> None:
    # GIVEN a batch whose second task raises, and more batches to follow
    def fails() -> Steps[str]:
        yield Sleep(0.01)
        raise ValueError("a bug")

    running, most = [0], [0]
    first = Batch([partial(_sleeper, "a0", 0.05, running, most), fails, fails], lambda: False)
    asked: list[bool] = []
    finished: list[Batch] = []

    def following() -> Batch | None:
        asked.append(True)
        return Batch([partial(_sleeper, "b0", 0.01, running, most)], lambda: False)

    # WHEN it runs, two at a time
    with ThreadPoolExecutor(max_workers=1) as pool:
        mux = Multiplexer(pool)
        try:
            mux.run_batches(first, 2, following, finished.append)
        finally:
            mux.close()
    # THEN the task started before the error finished, nothing else started, and the batch is
    # handed over with its error
    assert finished == [first] and asked == []
    assert first.results[0] == "a0" and isinstance(first.error, ValueError)
    assert len(first.results) == 2


def test_an_error_from_following_is_raised_once_the_running_tasks_are_through() -> None:
    # GIVEN a batch, and a following that fails
    running, most = [0], [0]
    first = Batch([partial(_sleeper, f"a{n}", 0.02, running, most) for n in range(3)], lambda: False)
    finished: list[Batch] = []

    def following() -> Batch | None:
        raise OSError("the ledger did not answer")

    # WHEN they run, then THEN the error is raised after the first batch was through and handed over
    with ThreadPoolExecutor(max_workers=1) as pool:
        mux = Multiplexer(pool)
        try:
            with pytest.raises(OSError, match="ledger"):
                mux.run_batches(first, 2, following, finished.append)
        finally:
            mux.close()
    assert finished == [first] and first.results == ["a0", "a1", "a2"] and running[0] == 0


def test_the_batch_at_hand_is_still_handed_over_when_finished_fails() -> None:
    # GIVEN two batches, handing over the first fails
    running, most = [0], [0]
    first = Batch([partial(_sleeper, "a0", 0.02, running, most)], lambda: False)
    second = Batch([partial(_sleeper, f"b{n}", 0.05, running, most) for n in range(3)], lambda: False)
    rest = iter([second])
    handed: list[Batch] = []

    def finished(batch: Batch) -> None:
        handed.append(batch)
        if batch is first:
            raise RuntimeError("the ledger did not answer")

    # WHEN they run, then THEN the failure is raised once the second's started tasks are done,
    # and the second is handed over too, stopped where it was
    with ThreadPoolExecutor(max_workers=1) as pool:
        mux = Multiplexer(pool)
        try:
            with pytest.raises(RuntimeError, match="ledger"):
                mux.run_batches(first, 2, lambda: next(rest, None), finished)
        finally:
            mux.close()
    assert handed == [first, second]
    assert second.stopped and second.results == ["b0"] and running[0] == 0
