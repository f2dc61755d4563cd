"""Back off per prefix when S3 says SlowDown: AIMD on the tasks in flight under one prefix.

S3 scales request capacity per key prefix (at least 3,500 writes/s each) and answers 503 SlowDown
while it catches up. botocore retries one request; this throttles the whole invocation's traffic
to the prefix that complained, so the other tasks of that prefix stop adding to the storm and the
tasks under other prefixes go on at full speed. Each throttled answer halves the prefix's
allowance and pauses it (doubling per consecutive complaint, with jitter, up to a cap); each
allowance-worth of successes raises it by one, back up to the engine's concurrency.

S3's partitions are not visible to a client, so "prefix" here means the bucket plus the key up
to its first ``/``: the level most key layouts spread their traffic over.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)

Prefix = tuple[str, str]
_SLOT_POLL_SECONDS = 0.01


def prefix_of(bucket: str, key: str) -> Prefix:
    head, slash, _ = key.partition("/")
    return bucket, head + slash if slash else ""


@dataclass
class _PrefixState:
    allowance: int
    in_flight: int = 0
    paused_until: float = 0.0
    complaints: int = 0
    """Throttled answers since the last success."""
    successes: int = 0


class PrefixThrottle:
    """Shared by the threads of one process; ``slot`` blocks while the prefix is over its allowance."""

    def __init__(
        self,
        ceiling: int,
        *,
        pause_seconds: float = 0.5,
        max_pause_seconds: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self._pause = pause_seconds
        self._max_pause = max_pause_seconds
        self._clock = clock
        self._jitter = jitter
        self._states: dict[Prefix, _PrefixState] = {}
        self._changed = threading.Condition()

    def allowance(self, prefix: Prefix) -> int:
        with self._changed:
            state = self._states.get(prefix)
            return self.ceiling if state is None else state.allowance

    def paused_for(self, prefix: Prefix) -> float:
        with self._changed:
            state = self._states.get(prefix)
            return 0.0 if state is None else max(0.0, state.paused_until - self._clock())

    @contextmanager
    def slot(self, prefix: Prefix) -> Iterator[None]:
        self.acquire(prefix)
        try:
            yield
        finally:
            self.release(prefix)

    def acquire(self, prefix: Prefix) -> None:
        """Take one of the prefix's slots, waiting while it is paused or at its allowance."""
        with self._changed:
            while True:
                state = self._states.get(prefix)
                if state is None:
                    state = self._states[prefix] = _PrefixState(self.ceiling)
                wait = state.paused_until - self._clock() if state.paused_until else 0.0
                if wait <= 0 and state.in_flight < state.allowance:
                    break
                self._changed.wait(wait if wait > 0 else None)
            state.in_flight += 1

    def try_acquire(self, prefix: Prefix) -> float | None:
        """``acquire`` without waiting: None when a slot was taken, else how long to wait before
        trying again (what is left of the prefix's pause, or a short while for a slot to free)."""
        with self._changed:
            state = self._states.get(prefix)
            if state is None:
                state = self._states[prefix] = _PrefixState(self.ceiling)
            wait = state.paused_until - self._clock() if state.paused_until else 0.0
            if wait > 0:
                return wait
            if state.in_flight >= state.allowance:
                return _SLOT_POLL_SECONDS
            state.in_flight += 1
            return None

    def release(self, prefix: Prefix, *, throttled: bool | None = None) -> None:
        """Give back a slot ``acquire`` took; with ``throttled``, also ``record`` the answer (one
        lock round for both, on every task's path)."""
        with self._changed:
            state = self._states[prefix]
            state.in_flight -= 1
            if throttled is not None:
                self._record(prefix, state, throttled)
            self._forget_if_idle(prefix, state)
            self._changed.notify_all()

    def record(self, prefix: Prefix, *, throttled: bool) -> None:
        """What the prefix's last answer was: throttled (SlowDown and kin) or anything else."""
        with self._changed:
            state = self._states.setdefault(prefix, _PrefixState(self.ceiling))
            self._record(prefix, state, throttled)
            self._forget_if_idle(prefix, state)
            self._changed.notify_all()

    def _record(self, prefix: Prefix, state: _PrefixState, throttled: bool) -> None:
        if throttled:
            state.allowance = max(1, state.allowance // 2)
            state.successes = 0
            pause = min(self._max_pause, self._pause * 2**state.complaints)
            state.complaints += 1
            # Jitter (a half to a whole pause): many workers must not come back in lockstep.
            until = self._clock() + pause * (0.5 + self._jitter() / 2)
            state.paused_until = max(state.paused_until, until)
        else:
            state.complaints = 0
            state.successes += 1
            if state.successes >= state.allowance and state.allowance < self.ceiling:
                state.allowance += 1
                state.successes = 0

    def _forget_if_idle(self, prefix: Prefix, state: _PrefixState) -> None:
        # A prefix back at full speed with nothing in flight needs no state: the map stays as
        # small as the set of prefixes being throttled.
        if (
            state.in_flight == 0
            and state.allowance >= self.ceiling
            and (not state.paused_until or state.paused_until <= self._clock())
            and self._states.get(prefix) is state
        ):
            del self._states[prefix]
