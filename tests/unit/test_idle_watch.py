"""`batchops run --until-idle` workers (threads, or processes sharing counters): none stops while
another is at work, or has yet to begin."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from batchops.engine.embedded import _IdleWatch, _ThreadCounters, process_idle_counters


@pytest.mark.parametrize("shared", ["threads", "processes"])
def test_a_worker_with_nothing_to_do_waits_for_one_yet_to_begin(shared: str) -> None:
    # GIVEN two workers, the second beginning late, with work that only it will find
    counters = (
        _ThreadCounters(2)
        if shared == "threads"
        else process_idle_counters(multiprocessing.get_context("fork"), 2)
    )
    watch = _IdleWatch(counters)
    late_began = threading.Event()
    work = iter([True, True])
    seen_when_early_stopped: list[bool] = []

    def late() -> bool:
        late_began.set()
        return next(work, False)

    def early_worker() -> None:
        watch.run(lambda: False)
        seen_when_early_stopped.append(late_began.is_set())

    def late_worker() -> None:
        time.sleep(0.3)
        watch.run(late)

    # WHEN the first finds nothing before the second has begun
    threads = [threading.Thread(target=early_worker), threading.Thread(target=late_worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # THEN the first did not stop before the second began, and both stopped once its work was done
    assert seen_when_early_stopped == [True]
    assert (counters.pending, counters.stepping, counters.progress) == (0, 0, 2)


def test_workers_stop_together_once_none_finds_anything() -> None:
    counters = _ThreadCounters(3)
    watch = _IdleWatch(counters)
    threads = [threading.Thread(target=watch.run, args=(lambda: False,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert (counters.pending, counters.stepping, counters.progress) == (0, 0, 0)
