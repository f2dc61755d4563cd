"""Many calls' steps (``steps``) on one thread: non-blocking sockets, one selector, a timer heap.

With a thread per request in flight, every request wakes its thread twice or more and the GIL
changes hands each time (urllib3's pool check, the send, the read, lxml): at 64 requests in flight
that cost several times the request's own CPU. Here one thread drives them all: it writes each
request and reads each answer when the selector says the socket is ready, and sleeps through
retry backoffs on a timer heap.

What stays the blocking transport's: connections come from, and go back to, the same urllib3
pools (``Transport.checkout``; urllib3's dropped-connection check included); a connection that
has no socket is opened on a pool thread by the same code (``transport.connect``), so connect
timeouts, TLS and its errors are the same; an answer is parsed by the same ``read_response``
once its bytes are in (a reader that says "more" until they are), so framing, malformed answers
and connections closed early fail as they fail there; failures become the same botocore
exceptions (``botocore_error``). The read timeout is per read, as a socket timeout is: no byte for
that long fails the exchange with ``ReadTimeoutError``. ``Blocking`` steps (boto3's calls, a
multipart copy) run on the pool given.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

from urllib3 import HTTPConnectionPool

from batchops.s3fast.steps import Blocking, Send, Sleep, Step, Steps
from batchops.s3fast.transport import (
    ExchangeError,
    RawResponse,
    ReadTimeout,
    botocore_error,
    checkin,
    connect,
    read_response,
    send_failure_is_answerable,
    timeout_of,
)

_RECV_BYTES = 65536
_NOTHING = object()
_Then = Callable[[object, BaseException | None], None]
"""What to do with a function's result, or the exception it raised, once a pool thread ran it."""


class NeedMore(Exception):
    """The answer is not all in yet."""


class BufferReader:
    """``read_response``'s file over the bytes received so far: a read past them raises NeedMore,
    unless the connection has ended (then it is short, as a socket file at its end is)."""

    def __init__(self, data: bytes, ended: bool) -> None:
        self._data = data
        self._pos = 0
        self._ended = ended

    def readline(self, limit: int = -1) -> bytes:
        end = self._data.find(b"\n", self._pos)
        stop = len(self._data) if end < 0 else end + 1
        if limit >= 0:
            stop = min(stop, self._pos + limit)
        if end < 0 and stop == len(self._data) and not self._ended:
            raise NeedMore
        line = self._data[self._pos : stop]
        self._pos = stop
        return line

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            if not self._ended:
                raise NeedMore
            stop = len(self._data)
        else:
            stop = self._pos + size
            if stop > len(self._data) and not self._ended:
                raise NeedMore
        chunk = self._data[self._pos : stop]
        self._pos += len(chunk)
        return chunk


class Batch:
    """Tasks a ``Multiplexer`` runs in order (each ``starts`` entry makes one task's steps),
    asking ``should_stop`` before it starts each: what ran is a prefix of ``starts``."""

    def __init__(self, starts: Sequence[Callable[[], Steps[Any]]], should_stop: Callable[[], bool]) -> None:
        self.starts = starts
        self.should_stop = should_stop
        self.results: list[Any] = []
        """The results of the tasks started, in order."""
        self.stopped = False
        """``should_stop`` said stop."""
        self.error: BaseException | None = None
        """The first exception a task (or ``should_stop``) raised: no other task was started after it."""
        self.running = 0
        self.reported = False

    @property
    def exhausted(self) -> bool:
        """Nothing more of it will start."""
        return self.stopped or self.error is not None or len(self.results) >= len(self.starts)


class _Task:
    __slots__ = ("batch", "index", "steps")

    def __init__(self, batch: Batch, index: int, steps: Steps[Any]) -> None:
        self.batch = batch
        self.index = index
        self.steps = steps


class _Exchange:
    """One request on one connection, written and read as its socket allows."""

    def __init__(self, mux: Multiplexer, task: _Task, step: Send) -> None:
        self.mux = mux
        self.task = task
        self.step = step
        self.pool: HTTPConnectionPool | None = None
        self.conn: Any = None
        self.sock: Any = None
        self.out = memoryview(step.head + step.body if step.body else step.head)
        self.received = bytearray()
        self.ended = False
        self.read_timeout: float | None = None
        self.deadline = float("inf")
        self.registered = 0

    # --- connection ---------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.pool, self.conn = self.step.transport.checkout(self.step.origin)
            self.read_timeout = timeout_of(self.pool).read_timeout
        except Exception as exc:
            self.fail(exc)
            return
        if self.conn.sock is None:
            pool, conn = self.pool, self.conn
            self.mux.in_thread(lambda: connect(pool, conn), self.connected)
        else:
            self.begin()

    def connected(self, _result: object, error: BaseException | None) -> None:
        if error is not None:
            self.fail(error)
        else:
            self.begin()

    def begin(self) -> None:
        try:
            self.sock = self.conn.sock
            self.sock.setblocking(False)
        except Exception as exc:
            self.fail(exc)
            return
        self.mux.exchanges.add(self)
        self.progress()
        self.write()

    def progress(self) -> None:
        if self.read_timeout is not None:
            self.deadline = time.monotonic() + self.read_timeout

    def watch(self, events: int) -> None:
        if events == self.registered:
            return
        if self.registered:
            self.mux.selector.modify(self.sock, events, self.ready)
        else:
            self.mux.selector.register(self.sock, events, self.ready)
        self.registered = events

    def ready(self, mask: int) -> None:
        if self.out:
            self.write()
        else:
            self.read()

    # --- request ------------------------------------------------------------------------------

    def write(self) -> None:
        try:
            while self.out:
                sent = self.sock.send(self.out)
                self.out = self.out[sent:]
                self.progress()
        except (BlockingIOError, ssl.SSLWantWriteError):
            self.watch(selectors.EVENT_WRITE)
            return
        except ssl.SSLWantReadError:
            self.watch(selectors.EVENT_READ)
            return
        except OSError as exc:
            # As urllib3: a server may close early and still have answered; read what it said.
            if not send_failure_is_answerable(exc):
                self.fail(ExchangeError(f"Connection aborted: {exc!r}"))
                return
            self.out = memoryview(b"")
        self.watch(selectors.EVENT_READ)
        self.read()

    # --- answer -------------------------------------------------------------------------------

    def read(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(_RECV_BYTES)
                if not chunk:
                    self.ended = True
                    break
                self.received += chunk
                self.progress()
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except ssl.SSLWantWriteError:
            self.watch(selectors.EVENT_WRITE)
            return
        except OSError as exc:
            self.fail(ExchangeError(f"Connection broken: {exc!r}"))
            return
        if not self.received and not self.ended:
            return
        try:
            reader = BufferReader(bytes(self.received), self.ended)
            response, reusable = read_response(reader, self.step.method)
        except NeedMore:
            return
        except Exception as exc:
            self.fail(exc)
            return
        self.finish(response, reusable)

    def expire(self) -> None:
        if self.out:
            self.fail(ExchangeError(f"Connection aborted: {TimeoutError('timed out')!r}"))
        else:
            self.fail(ReadTimeout("Read timed out: timed out"))

    # --- the end ------------------------------------------------------------------------------

    def release(self) -> None:
        if self.registered:
            self.mux.selector.unregister(self.sock)
            self.registered = 0
        self.mux.exchanges.discard(self)

    def finish(self, response: RawResponse, reusable: bool) -> None:
        self.release()
        assert self.pool is not None
        try:
            if reusable:
                self.sock.settimeout(self.read_timeout)  # as the blocking transport leaves it
            checkin(self.pool, self.conn, reusable)
        except Exception:
            checkin(self.pool, self.conn, False)
        self.mux.resume(self.task, (response, None), None)

    def fail(self, exc: BaseException) -> None:
        self.release()
        if self.pool is not None and self.conn is not None:
            checkin(self.pool, self.conn, False)
        error = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
        self.mux.resume(self.task, (None, botocore_error(self.step.url, error)), None)


class Multiplexer:
    """Runs ``starts`` (each makes one task's steps) in order, at most ``limit`` at once, on the
    calling thread; ``Blocking`` steps and connects go to ``pool``."""

    def __init__(self, pool: Executor) -> None:
        self._pool = pool
        self.selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self.selector.register(self._wake_in, selectors.EVENT_READ, self._woken)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._finished: deque[tuple[_Then, Future[Any]]] = deque()
        self._lock = threading.Lock()
        self.exchanges: set[_Exchange] = set()
        self._runnable: deque[tuple[_Task, Any, BaseException | None]] = deque()
        self._in_flight = 0
        self._limit = 0
        self._current: Batch | None = None
        self._following: Callable[[], Batch | None] | None = None
        self._finished_batch: Callable[[Batch], None] | None = None
        self._fatal: BaseException | None = None
        self._filling = False

    def close(self) -> None:
        self.selector.close()
        self._wake_in.close()
        self._wake_out.close()

    def run(
        self, starts: Sequence[Callable[[], Steps[Any]]], limit: int, should_stop: Callable[[], bool]
    ) -> tuple[list[Any], bool]:
        """(The results of the tasks started, in order: a prefix of ``starts``; whether
        ``should_stop`` said stop). Tasks started always finish; the first exception a task
        raises stops the starting of others and is raised once those running have finished."""
        batch = Batch(starts, should_stop)
        self.run_batches(batch, limit)
        if batch.error is not None:
            raise batch.error
        return batch.results, batch.stopped

    def run_batches(
        self,
        first: Batch,
        limit: int,
        following: Callable[[], Batch | None] | None = None,
        finished: Callable[[Batch], None] | None = None,
    ) -> None:
        """Run ``first``, then what ``following`` gives, at most ``limit`` tasks at once in all.

        ``following`` is asked for the next batch as soon as the one before has started all it
        will (and a slot is free), so the window stays full across batches; it is not asked
        again once it gave None, nor after a task raised. ``finished`` is called with each batch,
        on this thread, once its last task is done (its ``error`` set if one raised). An
        exception from ``following`` or ``finished`` stops all starting and is raised once the
        tasks running have finished (the batch then at hand is handed to ``finished`` first, as
        stopped)."""
        self._limit = limit
        self._current = first
        self._following = following
        self._finished_batch = finished
        self._fatal = None
        self._fill()
        while self._in_flight:
            self._wait()
            self._drain()
        current, self._current = self._current, None
        if current is not None:  # left current by an error from following or finished
            if not current.exhausted:
                current.stopped = True
            self._settle(current)
        if self._fatal is not None:
            raise self._fatal

    # --- driving tasks ----------------------------------------------------------------------------

    def _fill(self) -> None:
        """Start tasks while a slot is free and a batch has more to start, each taken to its
        first request before the next starts (as ``should_stop`` and an error expect)."""
        if self._filling:
            return  # a task this loop started ended at once: the loop goes on from there
        self._filling = True
        try:
            self._fill_slots()
        finally:
            self._filling = False

    def _fill_slots(self) -> None:
        while self._in_flight < self._limit and self._fatal is None:
            batch = self._current
            if batch is None:
                return
            if batch.exhausted:
                self._current = None
                self._settle(batch)  # (when its last task is already done)
                self._current = self._next_batch()
                continue
            try:
                batch.stopped = batch.should_stop()
            except BaseException as exc:  # raised once those running are done
                batch.error = exc
                self._following = None
            if batch.stopped or batch.error is not None:
                continue
            task = _Task(batch, len(batch.results), batch.starts[len(batch.results)]())
            batch.results.append(_NOTHING)
            batch.running += 1
            self._in_flight += 1
            self.resume(task, None, None)
            self._drain()

    def _next_batch(self) -> Batch | None:
        if self._following is None or self._fatal is not None:
            return None
        try:
            batch = self._following()
        except BaseException as exc:
            self._fatal = exc
            return None
        if batch is None:
            self._following = None  # not asked again
        return batch

    def _settle(self, batch: Batch) -> None:
        """Hand a batch that is through to ``finished`` (once)."""
        if batch.reported or batch.running or not batch.exhausted or batch is self._current:
            return
        batch.reported = True
        if self._finished_batch is not None:
            try:
                self._finished_batch(batch)
            except BaseException as exc:
                if self._fatal is None:
                    self._fatal = exc

    def resume(self, task: _Task, value: Any, error: BaseException | None) -> None:
        self._runnable.append((task, value, error))

    def _drain(self) -> None:
        while self._runnable:
            task, value, error = self._runnable.popleft()
            self._advance(task, value, error)

    def _advance(self, task: _Task, value: Any, error: BaseException | None) -> None:
        try:
            step: Step = task.steps.send(value) if error is None else task.steps.throw(error)
        except StopIteration as done:
            task.batch.results[task.index] = done.value
            self._task_done(task.batch)
            return
        except BaseException as exc:
            if task.batch.error is None:
                task.batch.error = exc
            self._following = None  # a bug, not an S3 failure: no more batches are started
            self._task_done(task.batch)
            return
        if isinstance(step, Send):
            _Exchange(self, task, step).start()
        elif isinstance(step, Sleep):
            self.later(step.seconds, lambda: self.resume(task, None, None))
        elif isinstance(step, Blocking):
            self.in_thread(step.call, lambda result, exc: self.resume(task, result, exc))
        else:  # pragma: no cover - every step kind is above
            self.resume(task, None, TypeError(f"not a step: {step!r}"))

    def _task_done(self, batch: Batch) -> None:
        # The freed slot is taken at once, before the other answers read with this one are
        # processed: the next request goes out one task's processing later, not one burst's.
        batch.running -= 1
        self._in_flight -= 1
        self._settle(batch)
        self._fill()

    def later(self, seconds: float, then: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._order), then))

    def in_thread(self, call: Callable[[], object], then: _Then) -> None:
        future = self._pool.submit(call)
        future.add_done_callback(lambda done: self._done(then, done))

    def _done(self, then: _Then, future: Future[Any]) -> None:
        # On a pool thread: hand the result over and wake the selector.
        with self._lock:
            self._finished.append((then, future))
        with contextlib.suppress(OSError):  # the wake-up pipe is full: a wake-up is pending anyway
            self._wake_out.send(b"\0")

    def _woken(self, _mask: int) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            with self._lock:
                if not self._finished:
                    return
                then, future = self._finished.popleft()
            error = future.exception()
            then(None if error is not None else future.result(), error)

    # --- waiting ----------------------------------------------------------------------------------

    def _wait(self) -> None:
        now = time.monotonic()
        soonest = self._timers[0][0] if self._timers else float("inf")
        for exchange in self.exchanges:
            soonest = min(soonest, exchange.deadline)
        timeout = None if soonest == float("inf") else max(0.0, soonest - now)
        for key, mask in self.selector.select(timeout):
            key.data(mask)
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, then = heapq.heappop(self._timers)
            then()
        for exchange in [e for e in self.exchanges if e.deadline <= now]:
            exchange.expire()
