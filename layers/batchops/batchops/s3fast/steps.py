"""A lean call written once as steps, made either blocking (``run_blocking``: one thread per call)
or multiplexed (``multiplex.Multiplexer``: many calls on one thread).

A call is a generator that yields what it needs done and gets the answer back:

- ``Send``: one HTTP exchange; the generator is sent ``(RawResponse, None)``, or ``(None,
  exception)`` with the exception botocore would raise for the failure (``botocore_error``);
- ``Sleep``: a pause (a retry's backoff); the generator is sent None;
- ``Blocking``: a function called on a thread of its own (boto3's calls, a multipart copy); the
  generator is sent what it returns, or has what it raises thrown in.

The generator's return value is the call's result. Every decision (signing, retries, parsing,
errors) is in the generator, so both ways of running it make the same requests and come to the
same results; only where the waiting happens differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from batchops.s3fast.transport import Transport

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    transport: Transport
    method: str
    url: str
    origin: str
    head: bytes
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Blocking:
    call: Callable[[], Any]


Step = Send | Sleep | Blocking
Steps = Generator[Step, Any, T]


def run_blocking(steps: Steps[T]) -> T:
    """Make the call on this thread, waiting wherever it waits."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            result: T = done.value
            return result
        value, error = None, None
        if isinstance(step, Send):
            try:
                value = (step.transport.send(step.method, step.url, step.origin, step.head, step.body), None)
            except Exception as exc:
                value = (None, exc)
        elif isinstance(step, Sleep):
            time.sleep(step.seconds)
        else:
            try:
                value = step.call()
            except Exception as exc:
                error = exc


def blocking_call(call: Callable[[], T]) -> Steps[T]:
    """The steps of a call that only blocks (a boto3 call, say)."""
    result: T = yield Blocking(call)
    return result
