"""How a chunk's tasks run: stops, transient failures, leases, and what a segment can hold."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from batchops.engine.outcomes import MAX_ENCODED_BYTES, decode_outcomes, encode_outcomes
from batchops.engine.settings import EngineSettings
from batchops.engine.tasks import run_tasks
from batchops.engine.throttle import PrefixThrottle
from batchops.jobs.model import DeleteObject, PutObjectCopy
from batchops.manifest.tasks import ManifestTask
from batchops.ops.delete import delete_tasks
from batchops.ops.outcome import failure
from batchops.s3fast import lean_s3_client
from tests.conftest import new_bucket
from tests.fault_proxy import FaultProxy
from tests.faults import count_only, inject, response, route_through, s3_error
from tests.integration.jobs_harness import (
    Service,
    csv_manifest,
    engine_settings,
    put_manifest,
    request,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@pytest.mark.parametrize("client", ["boto3", "lean"])
def test_a_stop_leaves_transiently_failed_tasks_for_the_next_run(
    s3: S3Client, moto_endpoint: str, client: str
) -> None:
    # GIVEN six copies, the fourth throttled for good, and a runner told to stop as it ends;
    # the lean client's copies are multiplexed on the runner's thread, boto3's run on the pool
    src, dst = new_bucket(s3), new_bucket(s3)
    for n in range(6):
        s3.put_object(Bucket=src, Key=f"k{n}", Body=b"x")
    s3, proxy = _client(moto_endpoint, client)
    inject(
        s3,
        "CopyObject",
        lambda request, _c: s3_error(503, "SlowDown") if request.url.endswith("/k3") else None,
    )
    calls = iter(range(100))
    settings = EngineSettings(task_concurrency=1, transient_retries=0)
    tasks = [ManifestTask(src, f"k{n}", None) for n in range(6)]
    try:
        with ThreadPoolExecutor(2) as pool:
            # WHEN it stops after the fifth task was started
            outcomes = run_tasks(
                _maybe_lean(s3, client),
                PutObjectCopy(f"arn:aws:s3:::{dst}"),
                tasks,
                settings=settings,
                pool=pool,
                should_stop=lambda: next(calls) >= 5,
            )
    finally:
        if proxy is not None:
            proxy.stop()
    # THEN the segment ends before the throttled task: it runs again, it is not a failed row
    assert [o.succeeded for o in outcomes] == [True, True, True]


def _client(moto_endpoint: str, kind: str, retries: int = 0) -> tuple[S3Client, FaultProxy | None]:
    """No retries by botocore (no throttle backoff to wait for, every SlowDown reaches the
    engine); the lean client's on a fault proxy, since its calls skip botocore's hooks."""
    config = Config(retries={"mode": "standard", "max_attempts": retries}, s3={"addressing_style": "path"})
    if kind == "boto3":
        return boto3.client("s3", endpoint_url=moto_endpoint, config=config), None
    proxy = FaultProxy(moto_endpoint)
    s3 = boto3.client("s3", endpoint_url=proxy.url, config=config)
    route_through(s3, proxy)
    return s3, proxy


def _lean_client(moto_endpoint: str) -> tuple[S3Client, FaultProxy]:
    s3, proxy = _client(moto_endpoint, "lean")
    assert proxy is not None
    return s3, proxy


def _maybe_lean(s3: S3Client, kind: str) -> S3Client:
    return lean_s3_client(s3) if kind == "lean" else s3


def test_multiplexed_tasks_keep_manifest_order_and_the_window(s3: S3Client, moto_endpoint: str) -> None:
    # GIVEN 40 copies through the lean client, the first two answered late, the sixth's source
    # missing
    src, dst = new_bucket(s3), new_bucket(s3)
    for n in range(40):
        if n != 5:
            s3.put_object(Bucket=src, Key=f"k{n:02d}", Body=b"x")
    s3, proxy = _lean_client(moto_endpoint)
    in_flight: list[int] = []
    now = [0]
    lock = threading.Lock()

    def slow(request: Any, _count: int) -> None:
        with lock:
            now[0] += 1
            in_flight.append(now[0])
        time.sleep(0.05 if request.url.endswith(("k00", "k01")) else 0.005)
        with lock:
            now[0] -= 1

    inject(s3, "CopyObject", slow)
    try:
        with ThreadPoolExecutor(4) as pool:
            # WHEN they run with 8 in flight
            outcomes = run_tasks(
                lean_s3_client(s3),
                PutObjectCopy(f"arn:aws:s3:::{dst}"),
                [ManifestTask(src, f"k{n:02d}", None) for n in range(40)],
                settings=EngineSettings(task_concurrency=8),
                pool=pool,
                should_stop=lambda: False,
            )
    finally:
        proxy.stop()
    # THEN every task has its own outcome, in manifest order, and never more than 8 ran at once
    assert [(o.succeeded, o.http_status) for o in outcomes] == [
        (False, 404) if n == 5 else (True, 200) for n in range(40)
    ]
    assert max(in_flight) <= 8


def test_an_error_in_a_multiplexed_task_is_raised_once_the_others_are_done(
    s3: S3Client, moto_endpoint: str
) -> None:
    # GIVEN copies through the lean client, one of whose keys makes the operation code raise
    src, dst = new_bucket(s3), new_bucket(s3)
    for n in range(6):
        s3.put_object(Bucket=src, Key=f"k{n}", Body=b"x")
    s3, proxy = _lean_client(moto_endpoint)
    sent = inject(s3, "CopyObject", count_only())
    tasks = [ManifestTask(src, f"k{n}", None) for n in range(6)]
    tasks[2] = ManifestTask(src, 42, None)  # type: ignore[arg-type] # not a key: a bug, not an S3 failure
    try:
        with ThreadPoolExecutor(2) as pool, pytest.raises(TypeError):
            # WHEN they run
            run_tasks(
                lean_s3_client(s3),
                PutObjectCopy(f"arn:aws:s3:::{dst}"),
                tasks,
                settings=EngineSettings(task_concurrency=2),
                pool=pool,
                should_stop=lambda: False,
            )
    finally:
        proxy.stop()
    # THEN the error is raised, after the copies already started, and no other was started
    assert len(sent.seen) <= 3


def test_outcomes_fit_one_item_whatever_their_language() -> None:
    outcomes = [
        failure(503, "SlowDown", f"\u8bf7\u6c42\u592a\u591a {n} " + "\u6f22" * 300) for n in range(1000)
    ]
    encoded = encode_outcomes(outcomes)
    assert len(encoded) <= MAX_ENCODED_BYTES
    decoded = decode_outcomes(encoded)
    assert [(o.succeeded, o.http_status, o.error_code) for o in decoded] == [(False, 503, "SlowDown")] * 1000


def test_keys_xml_cannot_carry_are_deleted_one_by_one(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    batched = inject(s3, "DeleteObjects", count_only())
    single = inject(s3, "DeleteObject", count_only())
    outcomes = delete_tasks(
        s3, [(bucket, "plain", None), (bucket, "carriage\rreturn", None), (bucket, "k" * 1025, None)]
    )
    assert len(single.seen) == 1 and len(batched.seen) == 1
    body = batched.seen[0].body
    assert isinstance(body, bytes) and b"carriage" not in body
    assert outcomes[0].succeeded
    assert (outcomes[2].succeeded, outcomes[2].error_code) == (False, "KeyTooLongError")


def test_a_task_longer_than_the_lease_keeps_its_chunk(make_service: Callable[..., Service]) -> None:
    # GIVEN copies that each take longer than the lease, and two workers
    svc = make_service(engine_settings(chunk_max_tasks=4, workers=2, task_concurrency=1, lease_seconds=0.3))
    copies = inject(svc.s3, "CopyObject", lambda _r, _c: time.sleep(0.4))
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    for n in range(4):
        svc.s3.put_object(Bucket=src, Key=f"k{n}", Body=b"x")
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"k{n}") for n in range(4)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    # WHEN the job runs
    job = svc.wait(svc.create(request(src, "m.csv", etag, copy, src)), "Complete")
    # THEN the heartbeat kept the lease: the other worker never ran the chunk as well
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "4"
    assert len(copies.seen) == 4


def test_deletes_run_in_one_request_per_chunk(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    sent = inject(s3, "DeleteObjects", count_only())
    with ThreadPoolExecutor(1) as pool:
        outcomes = run_tasks(
            s3,
            DeleteObject(),
            [ManifestTask(bucket, f"k{n}", None) for n in range(1500)],
            settings=EngineSettings(),
            pool=pool,
            should_stop=lambda: False,
        )
    assert len(outcomes) == 1500 and len(sent.seen) == 2


class InFlight:
    """Answers each DeleteObjects (of versioned keys: a quiet request) after a pause, with an error
    on the first key it names; counts how many were in flight at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __call__(self, request: Any, _count: int) -> Any:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.2)
        with self.lock:
            self.now -= 1
        first_key = re.search(rb"<Key>([^<]*)</Key>", request.body).group(1).decode()  # type: ignore[union-attr]
        body = (
            f"<DeleteResult><Error><Key>{first_key}</Key><VersionId>v</VersionId>"
            "<Code>AccessDenied</Code><Message>m</Message></Error></DeleteResult>"
        )
        return response(200, body.encode(), {"Content-Type": "application/xml"})


def test_a_chunk_of_several_delete_requests_has_task_concurrency_of_them_in_flight(s3: S3Client) -> None:
    # GIVEN a chunk of 3,500 deletes (four requests) and a task concurrency of 3
    bucket = new_bucket(s3)
    answer = InFlight()
    sent = inject(s3, "DeleteObjects", answer)
    with ThreadPoolExecutor(3) as pool:
        # WHEN it runs
        outcomes = run_tasks(
            s3,
            DeleteObject(),
            [ManifestTask(bucket, f"k{n:04d}", "v") for n in range(3500)],
            settings=EngineSettings(task_concurrency=3),
            pool=pool,
            should_stop=lambda: False,
        )
    # THEN three requests were in flight at once, and the outcomes are in the chunk's order:
    # the first key of each request failed, every other key succeeded
    assert len(sent.seen) == 4 and answer.most == 3
    assert [n for n, o in enumerate(outcomes) if not o.succeeded] == [0, 1000, 2000, 3000]
    assert len(outcomes) == 3500


def test_a_chunk_of_delete_requests_told_to_stop_records_the_requests_it_started(s3: S3Client) -> None:
    # GIVEN a chunk of 3,500 deletes, a task concurrency of 2, told to stop once two requests started
    bucket = new_bucket(s3)
    sent = inject(s3, "DeleteObjects", InFlight())
    looks = iter(range(100))
    with ThreadPoolExecutor(2) as pool:
        outcomes = run_tasks(
            s3,
            DeleteObject(),
            [ManifestTask(bucket, f"k{n:04d}", "v") for n in range(3500)],
            settings=EngineSettings(task_concurrency=2),
            pool=pool,
            should_stop=lambda: next(looks) >= 2,
        )
    # THEN the outcomes are those of the two requests sent: the first 2,000 tasks
    assert len(sent.seen) == 2
    assert len(outcomes) == 2000


@pytest.mark.parametrize("client", ["boto3", "lean"])
def test_a_prefix_s3_throttles_pauses_while_other_prefixes_go_on(
    s3: S3Client, moto_endpoint: str, client: str
) -> None:
    # GIVEN a copy under a hot prefix, whose first answer is SlowDown, then copies under a cold
    # one, then more under the hot one (threads for boto3, multiplexed for the lean client)
    src, dst = new_bucket(s3), new_bucket(s3)
    keys = ["hot/0", *(f"cold/{n}" for n in range(6)), *(f"hot/{n}" for n in range(1, 6))]
    for key in keys:
        s3.put_object(Bucket=src, Key=key, Body=b"x")
    s3, proxy = _client(moto_endpoint, client)
    sent: list[tuple[float, str]] = []

    def decide(request: Any, count: int) -> Any:
        prefix = request.url.split("/")[-2]
        sent.append((time.monotonic(), prefix))
        first_hot = prefix == "hot" and not any(p == "hot" for _, p in sent[:-1])
        return s3_error(503, "SlowDown", "Please reduce your request rate.") if first_hot else None

    inject(s3, "CopyObject", decide)
    settings = EngineSettings(task_concurrency=2, retry_backoff_seconds=0.0, slowdown_pause_seconds=0.4)
    try:
        with ThreadPoolExecutor(2) as pool:
            # WHEN they run (the engine retries the throttled task)
            outcomes = run_tasks(
                _maybe_lean(s3, client),
                PutObjectCopy(f"arn:aws:s3:::{dst}"),
                [ManifestTask(src, key, None) for key in keys],
                settings=settings,
                pool=pool,
                should_stop=lambda: False,
                throttle=PrefixThrottle(2, pause_seconds=0.4, jitter=lambda: 1.0),
            )
    finally:
        if proxy is not None:
            proxy.stop()
    # THEN every task succeeded, the hot prefix sent nothing during its pause, the cold one did
    assert all(o.succeeded for o in outcomes)
    throttled_at = next(t for t, p in sent if p == "hot")
    hot_after = [t for t, p in sent if p == "hot" and t > throttled_at]
    assert min(hot_after) - throttled_at >= 0.35
    assert any(throttled_at < t < throttled_at + 0.35 for t, p in sent if p == "cold")
