"""How a chunk's tasks run: stops, transient failures, leases, and what a segment can hold."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from batchops.engine.outcomes import MAX_ENCODED_BYTES, decode_outcomes, encode_outcomes
from batchops.engine.settings import EngineSettings
from batchops.engine.tasks import run_tasks
from batchops.engine.throttle import PrefixThrottle
from batchops.jobs.model import DeleteObject, PutObjectCopy
from batchops.manifest.tasks import ManifestTask
from batchops.ops.delete import delete_tasks
from batchops.ops.outcome import failure
from tests.conftest import new_bucket
from tests.faults import count_only, inject, response, s3_error
from tests.integration.jobs_harness import (
    Service,
    csv_manifest,
    engine_settings,
    put_manifest,
    request,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def test_a_stop_leaves_transiently_failed_tasks_for_the_next_run(s3: S3Client, moto_endpoint: str) -> None:
    # GIVEN six copies, the fourth throttled for good, and a runner told to stop as it ends
    src, dst = new_bucket(s3), new_bucket(s3)
    for n in range(6):
        s3.put_object(Bucket=src, Key=f"k{n}", Body=b"x")
    # one attempt per call, so that botocore's throttle backoff does not slow the test down
    s3 = boto3.client(
        "s3", endpoint_url=moto_endpoint, config=Config(retries={"mode": "standard", "max_attempts": 1})
    )
    inject(
        s3,
        "CopyObject",
        lambda request, _c: s3_error(503, "SlowDown") if request.url.endswith("/k3") else None,
    )
    calls = iter(range(100))
    settings = EngineSettings(task_concurrency=1, transient_retries=0)
    tasks = [ManifestTask(src, f"k{n}", None) for n in range(6)]
    with ThreadPoolExecutor(2) as pool:
        # WHEN it stops after the fifth task was started
        outcomes = run_tasks(
            s3,
            PutObjectCopy(f"arn:aws:s3:::{dst}"),
            tasks,
            settings=settings,
            pool=pool,
            should_stop=lambda: next(calls) >= 5,
        )
    # THEN the segment ends before the throttled task: it runs again, it is not a failed row
    assert [o.succeeded for o in outcomes] == [True, True, True]


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


def test_a_prefix_s3_throttles_pauses_while_other_prefixes_go_on(s3: S3Client, moto_endpoint: str) -> None:
    # GIVEN copies under a hot prefix, whose first answer is SlowDown, and under a cold one
    src, dst = new_bucket(s3), new_bucket(s3)
    keys = [f"{prefix}/{n}" for n in range(6) for prefix in ("hot", "cold")]
    for key in keys:
        s3.put_object(Bucket=src, Key=key, Body=b"x")
    s3 = boto3.client(
        "s3", endpoint_url=moto_endpoint, config=Config(retries={"mode": "standard", "max_attempts": 0})
    )
    sent: list[tuple[float, str]] = []

    def decide(request: Any, count: int) -> Any:
        prefix = request.url.split("/")[-2]
        sent.append((time.monotonic(), prefix))
        first_hot = prefix == "hot" and not any(p == "hot" for _, p in sent[:-1])
        return s3_error(503, "SlowDown", "Please reduce your request rate.") if first_hot else None

    inject(s3, "CopyObject", decide)
    settings = EngineSettings(task_concurrency=2, retry_backoff_seconds=0.0, slowdown_pause_seconds=0.4)
    with ThreadPoolExecutor(2) as pool:
        # WHEN they run (the engine retries the throttled task)
        outcomes = run_tasks(
            s3,
            PutObjectCopy(f"arn:aws:s3:::{dst}"),
            [ManifestTask(src, key, None) for key in keys],
            settings=settings,
            pool=pool,
            should_stop=lambda: False,
            throttle=PrefixThrottle(2, pause_seconds=0.4, jitter=lambda: 1.0),
        )
    # THEN every task succeeded, the hot prefix sent nothing during its pause, the cold one did
    assert all(o.succeeded for o in outcomes)
    throttled_at = next(t for t, p in sent if p == "hot")
    hot_after = [t for t, p in sent if p == "hot" and t > throttled_at]
    assert min(hot_after) - throttled_at >= 0.35
    assert any(throttled_at < t < throttled_at + 0.35 for t, p in sent if p == "cold")
