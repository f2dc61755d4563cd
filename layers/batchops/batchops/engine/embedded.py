"""The in-process dispatcher: worker threads that take work from the SQLite ledger.

Each worker loops over the kinds of work in order of urgency: finish jobs that are ending (a
long report in steps of ``finalize_step_seconds``, each ending with a checkpoint the next step
goes on from), prepare new jobs, start ready ones, run the highest-priority chunk it can lease,
and settle active jobs whose chunks are all accounted for. A worker whose chunk starts its last
task leases its next chunk then (``_next_chunk``), so that its window of tasks in flight stays
full. Leases make it safe to run several processes on one store, and to restart: a chunk held
by a dead worker is taken again when its lease expires, and jobs left Preparing by a process
that is gone are prepared again at start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from batchops.engine.phases import Engine
from batchops.jobs.errors import JobStoreUnavailableError
from batchops.jobs.model import Job
from batchops.jobs.status import JobStatus, is_terminal
from batchops.manifest.tasks import ManifestError
from batchops.store.base import ChunkClaim, StoreError, WorkerLedger

log = logging.getLogger(__name__)

_ENDING = frozenset({JobStatus.COMPLETING.value, JobStatus.FAILING.value, JobStatus.CANCELLING.value})
_BATCH = 32
_PREPARABLE = frozenset({JobStatus.NEW.value, JobStatus.PREPARING.value})


class EmbeddedDispatcher:
    def __init__(self, engine: Engine, ledger: WorkerLedger, *, lead: bool = True) -> None:
        """``lead`` False: this process only runs chunks (and settles jobs), leaving preparing and
        finalizing to the lead process of the same store (``batchops run --processes``), so that
        no two processes prepare, or finalize, one job at once."""
        self.engine = engine
        self.ledger = ledger
        self._lead = lead
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy_jobs: set[str] = set()
        self._lock = threading.Lock()
        # host:pid:nonce, so that a restarted process on this host can tell a dead owner's leases
        self._name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._resumed = False
        self._retry_after: dict[str, float] = {}
        self._attempts: dict[str, int] = {}

    def start(self) -> None:
        self.resume()
        for n in range(self.engine.settings.workers):
            thread = threading.Thread(
                target=self._loop, args=(f"{self._name}-{n}",), name=f"batchops-worker-{n}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def resume(self) -> None:
        """Take over what a process that is gone left behind.

        Leases held by a dead process of this host are released at once rather than after they
        expire; jobs left Preparing are prepared again (preparing is idempotent).
        """
        if self._resumed:
            return
        self._resumed = True
        for owner in self.ledger.lease_owners(self.engine.clock()):
            if _dead_here(owner):
                log.info("releasing the leases of %s, which is gone", owner)
                self.ledger.release_leases_of(owner)
        if not self._lead:
            return
        for appid, job_id in self.ledger.jobs_in_status(frozenset({JobStatus.PREPARING.value}), 1000):
            self._exclusively(job_id, partial(self._prepare, appid, job_id))

    def run_until_idle(self, shared: IdleCounters | None = None) -> None:
        """Do work with the engine's workers until nothing is left to do now (`batchops run
        --until-idle`); the first error any of them meets is raised here once all have stopped.

        A worker that finds nothing to do waits while another is still at work, since what one
        does (a chunk settling its job) can make work for all (the next chunk, the report).
        With ``shared`` (``process_idle_counters``), that holds for the workers of every process
        given the same counters: none stops while a worker of another is still at work.
        """
        self.resume()
        idle = _IdleWatch(shared if shared is not None else _ThreadCounters(self.engine.settings.workers))
        threads = [
            threading.Thread(
                target=idle.run,
                args=(partial(self.step, f"{self._name}-once-{n}"),),
                name=f"batchops-once-{n}",
            )
            for n in range(self.engine.settings.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if idle.error is not None:
            raise idle.error

    def step(self, worker: str) -> bool:
        """Do one unit of work; False when there was none."""
        ledger, engine = self.ledger, self.engine
        now = engine.clock()
        if self._lead and self._lead_step(worker, now):
            return True
        for appid, job_id in ledger.jobs_in_status(frozenset({JobStatus.READY.value}), 1):
            engine.activate(appid, job_id)
            return True
        claim = ledger.claim_chunk(worker, now, engine.settings.lease_seconds)
        if claim is not None:
            engine.run_chunk(claim, worker, following=partial(self._next_chunk, worker))
            return True
        for appid, job_id in ledger.jobs_in_status(frozenset({JobStatus.ACTIVE.value}), _BATCH):
            before = engine.service.get(appid, job_id).status
            engine.settle(appid, job_id)
            if engine.service.get(appid, job_id).status is not before:
                return True
        return False

    def _lead_step(self, worker: str, now: float) -> bool:
        """Finish a job that is ending, else prepare a new one; False when there is neither."""
        return any(self._exclusively(job_id, work) for job_id, work in self._lead_work(worker, now))

    def _lead_work(self, worker: str, now: float) -> Iterator[tuple[str, Callable[[], None]]]:
        """(job, what to do for it) for the lead's work now, most urgent first: finish a job that
        is ending (once no chunk of it runs), then prepare a new one; jobs told to wait skipped."""
        ledger = self.ledger
        for appid, job_id in ledger.jobs_in_status(_ENDING, _BATCH):
            if self._retry_after.get(job_id, 0.0) <= now and ledger.busy_chunks(job_id, now) == 0:
                yield job_id, partial(self._finalize, appid, job_id, worker)
        for appid, job_id in ledger.jobs_in_status(_PREPARABLE, _BATCH):
            if self._retry_after.get(job_id, 0.0) <= now:
                yield job_id, partial(self._prepare, appid, job_id)

    def _next_chunk(self, worker: str) -> ChunkClaim | None:
        """The chunk a worker goes on with as its chunk starts its last task, leased; None when
        there is none, or other work should come first (the worker stopping, a job to finish,
        prepare or start: ``step`` does those before chunks)."""
        ledger, engine = self.ledger, self.engine
        now = engine.clock()
        if self._stop.is_set() or (self._lead and self._lead_work_waiting(worker, now)):
            return None
        if ledger.jobs_in_status(frozenset({JobStatus.READY.value}), 1):
            return None
        return ledger.claim_chunk(worker, now, engine.settings.lease_seconds)

    def _lead_work_waiting(self, worker: str, now: float) -> bool:
        """Whether ``_lead_step`` would find work no thread here is doing already."""
        with self._lock:
            busy = set(self._busy_jobs)
        return any(job_id not in busy for job_id, _ in self._lead_work(worker, now))

    def _finalize(self, appid: str, job_id: str, worker: str) -> None:
        # A step that stops at its deadline leaves the job ending, with its checkpoint: the next
        # step (this loop, or another worker's) goes on from there.
        engine = self.engine
        try:
            engine.finalize(appid, job_id, worker, engine.clock() + engine.settings.finalize_step_seconds)
        except (StoreError, JobStoreUnavailableError) as exc:
            # The ledger did not answer: the job goes on from its last checkpoint a little later.
            log.warning("job %s: finalizing will be retried: %s", job_id, exc)
            self._retry_after[job_id] = engine.clock() + engine.settings.prepare_retry_seconds
        else:
            self._retry_after.pop(job_id, None)

    def _prepare(self, appid: str, job_id: str) -> None:
        attempt = self._attempts.get(job_id, 0) + 1
        try:
            self.engine.prepare(appid, job_id, last_attempt=attempt >= self.engine.settings.prepare_attempts)
        except (ManifestError, StoreError, JobStoreUnavailableError) as exc:
            # Transient: the manifest or store did not answer. Try again a little later.
            log.warning("job %s: preparing will be retried (attempt %d): %s", job_id, attempt, exc)
            self._attempts[job_id] = attempt
            self._retry_after[job_id] = self.engine.clock() + self.engine.settings.prepare_retry_seconds
        else:
            self._retry_after.pop(job_id, None)
            self._attempts.pop(job_id, None)

    def _loop(self, worker: str) -> None:
        while not self._stop.is_set():
            try:
                worked = self.step(worker)
            except (StoreError, JobStoreUnavailableError) as exc:
                log.warning("worker %s: store unavailable: %s", worker, exc)
                worked = False
            except Exception:
                log.exception("worker %s: unexpected error; going on", worker)
                worked = False
            if not worked:
                self._stop.wait(self.engine.settings.idle_poll_seconds)

    def _exclusively(self, job_id: str, work: Callable[[], object]) -> bool:
        """Run ``work`` unless another thread of this process is already working on the job."""
        with self._lock:
            if job_id in self._busy_jobs:
                return False
            self._busy_jobs.add(job_id)
        try:
            work()
        finally:
            with self._lock:
                self._busy_jobs.discard(job_id)
        return True


class IdleCounters(Protocol):
    """What workers waiting for each other share: a condition and counters under its lock."""

    condition: Any
    pending: int
    """Workers that have not begun: none may call it a day before all have looked for work."""
    stepping: int
    progress: int
    failed: bool


class _ThreadCounters:
    def __init__(self, workers: int) -> None:
        self.condition: Any = threading.Condition()
        self.pending = workers
        self.stepping = 0
        self.progress = 0
        self.failed = False


_Slot = TypeVar("_Slot", int, bool)


class _SharedSlot(Generic[_Slot]):
    """One of ``_ProcessCounters``' counters: a cell of its array in shared memory."""

    def __init__(self, index: int, kind: Callable[[int], _Slot]) -> None:
        self.index = index
        self.kind: Callable[[int], _Slot] = kind

    def __get__(self, counters: _ProcessCounters, owner: type | None = None) -> _Slot:
        value: int = counters._values[self.index]
        return self.kind(value)

    def __set__(self, counters: _ProcessCounters, value: _Slot) -> None:
        counters._values[self.index] = int(value)


class _ProcessCounters:
    """The counters in shared memory, for worker processes forked after they were made."""

    def __init__(self, context: Any, workers: int) -> None:
        self.condition: Any = context.Condition()
        self._values = context.RawArray("q", 4)
        self.pending = workers

    stepping = _SharedSlot(0, int)
    progress = _SharedSlot(1, int)
    failed = _SharedSlot(2, bool)
    pending = _SharedSlot(3, int)


def process_idle_counters(context: Any, workers: int) -> IdleCounters:
    """Counters for ``run_until_idle`` shared by the processes ``context`` (a multiprocessing
    context that forks) starts afterwards, ``workers`` in all of them together."""
    return _ProcessCounters(context, workers)


class _IdleWatch:
    """Workers stepping until none has anything to do and none is in the middle of a step."""

    def __init__(self, shared: IdleCounters) -> None:
        self._shared = shared
        self._changed = shared.condition
        """``progress`` counts steps that did something: only those can have made work for others."""
        self.error: BaseException | None = None

    def run(self, step: Callable[[], bool]) -> None:
        shared = self._shared
        begun = False
        while True:
            with self._changed:
                if not begun:
                    shared.pending -= 1
                    begun = True
                if shared.failed:
                    self._changed.notify_all()
                    return
                shared.stepping += 1
                seen = shared.progress
            worked = False
            try:
                worked = step()
            except BaseException as exc:  # handed to run_until_idle's caller, as one thread would
                with self._changed:
                    if self.error is None:
                        self.error = exc
                    shared.failed = True
            finally:
                with self._changed:
                    shared.stepping -= 1
                    shared.progress += worked
                    self._changed.notify_all()
            if worked:
                continue
            with self._changed:
                # Nothing for this worker: wait for the others' steps (and for those yet to begin);
                # done once none is stepping or to begin and none did anything since this one looked.
                while (shared.stepping or shared.pending) and shared.progress == seen and not shared.failed:
                    # Not forever: a process that died mid-step never counts its step done, and
                    # the parent then says so with ``failed`` alone, without waking anyone.
                    self._changed.wait(1.0)
                if shared.failed or (not shared.stepping and not shared.pending and shared.progress == seen):
                    return


def _dead_here(owner: str) -> bool:
    """True if ``owner`` (host:pid:nonce-worker) names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isascii() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def drop_ledger_when_ended_early(ledger: WorkerLedger) -> Callable[[Job | None, Job], None]:
    """A JobService hook: a job that ends without finalizing (cancelled while New, Preparing,
    Suspended or Ready) leaves chunks no one will run; drop them."""

    def hook(before: Job | None, after: Job) -> None:
        if before is not None and is_terminal(after.status) and before.status.value not in _ENDING:
            ledger.drop_chunks(after.job_id)

    return hook
