"""Run a chunk's tasks for one operation: a bounded window of tasks in flight, in manifest order.

The window keeps results in order, so when the runner is told to stop (deadline, cancel) the
tasks done form a prefix of the chunk: exactly what a segment records. Transient failures are
retried with backoff while the runner may go on; what still fails is recorded as failed with
its error, like any other failure.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from batchops.engine.settings import EngineSettings
from batchops.engine.throttle import THROTTLING_CODES, Prefix, PrefixThrottle, prefix_of
from batchops.jobs.model import DeleteObject, InitiateRestoreObject, Operation, PutObjectCopy
from batchops.manifest.resources import MAX_KEY_BYTES, parse_bucket
from batchops.manifest.tasks import ManifestTask
from batchops.ops.copy import TargetKeyError, copy_task, target_key
from batchops.ops.delete import MAX_KEYS_PER_REQUEST, delete_tasks
from batchops.ops.outcome import TaskOutcome, failure
from batchops.ops.restore import restore_task

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

ShouldStop = Callable[[], bool]


def run_tasks(
    s3: S3Client,
    op: Operation,
    tasks: Sequence[ManifestTask],
    *,
    settings: EngineSettings,
    pool: ThreadPoolExecutor,
    should_stop: ShouldStop,
    throttle: PrefixThrottle | None = None,
) -> list[TaskOutcome]:
    """Outcomes of a prefix of ``tasks`` (all of them unless told to stop).

    ``throttle`` is shared by everything the process runs, so a prefix S3 throttles slows down
    for every chunk at once (one of its own when not given).
    """
    throttle = throttle or PrefixThrottle(
        settings.task_concurrency, pause_seconds=settings.slowdown_pause_seconds
    )
    if isinstance(op, DeleteObject):
        return _run_deletes(s3, tasks, settings, should_stop, throttle, pool=pool)

    target_bucket = parse_bucket(op.target_resource).bucket if isinstance(op, PutObjectCopy) else None

    def one(task: ManifestTask) -> TaskOutcome:
        where = _written_prefix(op, target_bucket, task)

        def attempt() -> TaskOutcome:
            with throttle.slot(where):
                outcome = _run_one(s3, op, task, settings)
            throttle.record(where, throttled=outcome.error_code in THROTTLING_CODES)
            return outcome

        return _with_retries(attempt, settings, should_stop)

    window: deque[Future[TaskOutcome]] = deque()
    outcomes: list[TaskOutcome] = []
    stopped = False
    for task in tasks:
        if should_stop():
            stopped = True
            break
        while len(window) >= settings.task_concurrency:
            outcomes.append(window.popleft().result())
        window.append(pool.submit(one, task))
    outcomes.extend(future.result() for future in window)
    return _cut_at_first_transient(outcomes) if stopped or should_stop() else outcomes


def _cut_at_first_transient(outcomes: list[TaskOutcome]) -> list[TaskOutcome]:
    """When a run stops early, a task that failed transiently is left for the next run, not failed."""
    for position, outcome in enumerate(outcomes):
        if outcome.transient:
            return outcomes[:position]
    return outcomes


def _written_prefix(op: Operation, target_bucket: str | None, task: ManifestTask) -> Prefix:
    """The prefix a task's request lands on (a copy's destination; the object itself otherwise)."""
    if isinstance(op, PutObjectCopy) and target_bucket is not None:
        try:
            return prefix_of(target_bucket, target_key(task.key, op))
        except TargetKeyError:
            pass  # the task fails on its own; any prefix will do
    return prefix_of(task.bucket, task.key)


def _run_one(s3: S3Client, op: Operation, task: ManifestTask, settings: EngineSettings) -> TaskOutcome:
    if len(task.key.encode()) > MAX_KEY_BYTES:
        return failure(400, "KeyTooLongError", f"the key is longer than {MAX_KEY_BYTES} bytes")
    if isinstance(op, PutObjectCopy):
        return copy_task(s3, task.bucket, task.key, task.version_id, op, settings=settings.copy)
    if isinstance(op, InitiateRestoreObject):
        return restore_task(s3, task.bucket, task.key, task.version_id, op)
    raise TypeError(f"not a per-object operation: {op!r}")


def _with_retries(
    attempt: Callable[[], TaskOutcome], settings: EngineSettings, should_stop: ShouldStop
) -> TaskOutcome:
    outcome = attempt()
    for retry in range(settings.transient_retries):
        if outcome.succeeded or not outcome.transient or should_stop():
            break
        time.sleep(settings.retry_backoff_seconds * 2**retry)
        outcome = attempt()
    return outcome


def _run_deletes(
    s3: S3Client,
    tasks: Sequence[ManifestTask],
    settings: EngineSettings,
    should_stop: ShouldStop,
    throttle: PrefixThrottle,
    *,
    pool: ThreadPoolExecutor,
) -> list[TaskOutcome]:
    """A chunk's deletes, 1,000 keys a request, up to ``task_concurrency`` requests in flight (a
    chunk of more than 1,000 tasks; the default chunk is one request), outcomes in order."""
    batches = [
        tasks[start : start + MAX_KEYS_PER_REQUEST] for start in range(0, len(tasks), MAX_KEYS_PER_REQUEST)
    ]

    def one(batch: Sequence[ManifestTask]) -> list[TaskOutcome]:
        return _delete_batch(s3, batch, settings, should_stop, throttle)

    outcomes: list[TaskOutcome] = []
    window: deque[Future[list[TaskOutcome]]] = deque()
    stopped = False
    for batch in batches:
        if should_stop():
            stopped = True
            break
        if len(batches) == 1 or settings.task_concurrency <= 1:
            outcomes.extend(one(batch))
            continue
        while len(window) >= settings.task_concurrency:
            outcomes.extend(window.popleft().result())
        window.append(pool.submit(one, batch))
    for future in window:
        outcomes.extend(future.result())
    return _cut_at_first_transient(outcomes) if stopped or should_stop() else outcomes


def _delete_batch(
    s3: S3Client,
    batch: Sequence[ManifestTask],
    settings: EngineSettings,
    should_stop: ShouldStop,
    throttle: PrefixThrottle,
) -> list[TaskOutcome]:
    """One DeleteObjects request's tasks, the transient failures retried with backoff."""
    where = prefix_of(batch[0].bucket, batch[0].key)
    with throttle.slot(where):
        results = delete_tasks(s3, [(t.bucket, t.key, t.version_id) for t in batch])
    throttle.record(where, throttled=any(o.error_code in THROTTLING_CODES for o in results))
    for retry in range(settings.transient_retries):
        again = [i for i, o in enumerate(results) if o.transient]
        if not again or should_stop():
            break
        time.sleep(settings.retry_backoff_seconds * 2**retry)
        redone = delete_tasks(s3, [(batch[i].bucket, batch[i].key, batch[i].version_id) for i in again])
        for i, outcome in zip(again, redone, strict=True):
            results[i] = outcome
    return results
