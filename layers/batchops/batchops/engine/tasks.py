"""Run a chunk's tasks for one operation: a bounded number of tasks in flight, taken in manifest order.

Tasks are handed out in order, and a runner told to stop (deadline, cancel) finishes what it
already started before it returns: the tasks done form a prefix of the chunk, exactly what a
segment records. Transient failures are retried with backoff while the runner may go on; what
still fails is recorded as failed with its error, like any other failure.

The ``task_concurrency`` threads each take the next task as they finish one (rather than one
pool job and one future per task): per task, the chunk's thread neither submits nor waits, and
no thread is woken just to be handed work. At tens of tasks in flight those hand-offs, and the
GIL changing hands for each, were a large part of a task's CPU.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, cast

from batchops.engine.settings import EngineSettings
from batchops.engine.throttle import THROTTLING_CODES, Prefix, PrefixThrottle, prefix_of
from batchops.jobs.model import DeleteObject, InitiateRestoreObject, Operation, PutObjectCopy
from batchops.manifest.resources import MAX_KEY_BYTES, parse_bucket
from batchops.manifest.tasks import ManifestTask
from batchops.ops.copy import TargetKeyError, copy_task, copy_task_steps, target_key
from batchops.ops.delete import MAX_KEYS_PER_REQUEST, delete_tasks
from batchops.ops.outcome import TaskOutcome, failure
from batchops.ops.restore import restore_task, restore_task_steps
from batchops.s3fast.client import multiplexable
from batchops.s3fast.multiplex import Batch, Multiplexer
from batchops.s3fast.steps import Sleep, Steps

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
            throttle.acquire(where)
            try:
                outcome = _run_one(s3, op, task, settings)
            except BaseException:
                throttle.release(where)
                raise
            throttle.release(where, throttled=outcome.error_code in THROTTLING_CODES)
            return outcome

        return _with_retries(attempt, settings, should_stop)

    if not tasks:
        return []
    batch = task_batch(s3, op, tasks, settings=settings, should_stop=should_stop, throttle=throttle)
    if batch is not None:
        run_batches(batch, settings=settings, pool=pool)
        return batch_outcomes(batch)
    results: list[TaskOutcome | None] = [None] * len(tasks)
    cursor = _Cursor(len(tasks), should_stop)

    def runner() -> None:
        try:
            while (index := cursor.take()) is not None:
                results[index] = one(tasks[index])
        except BaseException:
            cursor.halt()  # the others stop taking tasks; the error is raised below
            raise

    runners = [pool.submit(runner) for _ in range(min(settings.task_concurrency, len(tasks)))]
    for future in runners:
        future.result()
    outcomes = cast("list[TaskOutcome]", results[: cursor.taken])
    return _cut_at_first_transient(outcomes) if cursor.stopped or should_stop() else outcomes


class _Cursor:
    """The next task to start, shared by a chunk's runners; asks ``should_stop`` before each."""

    def __init__(self, count: int, should_stop: ShouldStop) -> None:
        self._count = count
        self._should_stop = should_stop
        self._lock = threading.Lock()
        self.taken = 0
        """Tasks handed out: 0 .. taken - 1, each done once every runner has returned."""
        self.stopped = False

    def take(self) -> int | None:
        with self._lock:
            if self.stopped or self.taken >= self._count:
                return None
            if self._should_stop():
                self.stopped = True
                return None
            self.taken += 1
            return self.taken - 1

    def halt(self) -> None:
        with self._lock:
            self.stopped = True


def task_batch(
    s3: S3Client,
    op: Operation,
    tasks: Sequence[ManifestTask],
    *,
    settings: EngineSettings,
    should_stop: ShouldStop,
    throttle: PrefixThrottle,
) -> Batch | None:
    """``tasks`` as a batch their steps are multiplexed in (``run_batches``): every task's
    requests on non-blocking sockets, on one thread, what must block (boto3's calls, multipart
    copies) on a pool. None when they do not run that way (deletes, or a boto3 client)."""
    if isinstance(op, DeleteObject) or not multiplexable(s3):
        return None
    target_bucket = parse_bucket(op.target_resource).bucket if isinstance(op, PutObjectCopy) else None

    def one(task: ManifestTask) -> Steps[TaskOutcome]:
        where = _written_prefix(op, target_bucket, task)
        retry = 0
        while True:
            while (wait := throttle.try_acquire(where)) is not None:
                yield Sleep(wait)
            try:
                outcome = yield from _one_steps(s3, op, task, settings)
            except BaseException:
                throttle.release(where)
                raise
            throttle.release(where, throttled=outcome.error_code in THROTTLING_CODES)
            backoff = _retry_backoff(outcome, retry, settings, should_stop)
            if backoff is None:
                return outcome
            yield Sleep(backoff)
            retry += 1

    return Batch([partial(one, task) for task in tasks], should_stop)


def run_batches(
    first: Batch,
    *,
    settings: EngineSettings,
    pool: ThreadPoolExecutor,
    following: Callable[[], Batch | None] | None = None,
    finished: Callable[[Batch], None] | None = None,
) -> None:
    """Run ``first``, then the batches ``following`` gives, ``task_concurrency`` tasks in flight
    in all, on this thread (``Multiplexer.run_batches``): the next batch starts as the one before
    it starts its last task, so the window does not drain at each batch's end."""
    mux = Multiplexer(pool)
    try:
        mux.run_batches(first, settings.task_concurrency, following, finished)
    finally:
        mux.close()


def batch_outcomes(batch: Batch) -> list[TaskOutcome]:
    """The outcomes of a batch that ran, as ``run_tasks`` gives them (the exception a task raised
    is raised here)."""
    if batch.error is not None:
        raise batch.error
    outcomes = cast("list[TaskOutcome]", batch.results)
    return _cut_at_first_transient(outcomes) if batch.stopped or batch.should_stop() else outcomes


def _one_steps(
    s3: S3Client, op: Operation, task: ManifestTask, settings: EngineSettings
) -> Steps[TaskOutcome]:
    """``_run_one`` as steps."""
    if len(task.key.encode()) > MAX_KEY_BYTES:
        return failure(400, "KeyTooLongError", f"the key is longer than {MAX_KEY_BYTES} bytes")
    if isinstance(op, PutObjectCopy):
        return (
            yield from copy_task_steps(s3, task.bucket, task.key, task.version_id, op, settings=settings.copy)
        )
    if isinstance(op, InitiateRestoreObject):
        return (yield from restore_task_steps(s3, task.bucket, task.key, task.version_id, op))
    raise TypeError(f"not a per-object operation: {op!r}")


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
    retry = 0
    while (backoff := _retry_backoff(outcome, retry, settings, should_stop)) is not None:
        time.sleep(backoff)
        outcome = attempt()
        retry += 1
    return outcome


def _retry_backoff(
    outcome: TaskOutcome, retry: int, settings: EngineSettings, should_stop: ShouldStop
) -> float | None:
    """How long to wait before trying a task again after ``retry`` retries; None: not again."""
    if retry >= settings.transient_retries or outcome.succeeded or not outcome.transient or should_stop():
        return None
    backoff: float = settings.retry_backoff_seconds * 2**retry
    return backoff


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
