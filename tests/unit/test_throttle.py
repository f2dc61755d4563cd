"""Per-prefix backoff: halve and pause on SlowDown, grow back by one per allowance of successes."""

from __future__ import annotations

import threading
import time

from batchops.engine.throttle import PrefixThrottle, prefix_of

HOT = ("bucket", "logs/")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_prefix_is_the_bucket_and_the_first_path_segment() -> None:
    assert prefix_of("b", "logs/2026/11/a.gz") == ("b", "logs/")
    assert prefix_of("b", "flat-key") == ("b", "")
    assert prefix_of("b", "/leading") == ("b", "/")


def test_slowdown_halves_the_allowance_and_pauses_longer_each_time() -> None:
    # GIVEN a throttle of 16 in flight and no jitter
    clock = Clock()
    throttle = PrefixThrottle(16, pause_seconds=0.5, clock=clock, jitter=lambda: 1.0)
    # WHEN the hot prefix is throttled three times in a row
    pauses = []
    for _ in range(3):
        throttle.record(HOT, throttled=True)
        pauses.append(throttle.paused_for(HOT))
    # THEN its allowance halved each time and its pause doubled; other prefixes are untouched
    assert throttle.allowance(HOT) == 2
    assert pauses == [0.5, 1.0, 2.0]
    assert throttle.allowance(("bucket", "other/")) == 16
    assert throttle.paused_for(("bucket", "other/")) == 0.0


def test_the_pause_is_capped_and_the_allowance_never_below_one() -> None:
    clock = Clock()
    throttle = PrefixThrottle(4, pause_seconds=1.0, max_pause_seconds=5.0, clock=clock, jitter=lambda: 1.0)
    for _ in range(10):
        throttle.record(HOT, throttled=True)
    assert throttle.allowance(HOT) == 1
    assert throttle.paused_for(HOT) == 5.0


def test_successes_raise_the_allowance_by_one_per_allowance_back_to_the_ceiling() -> None:
    # GIVEN a prefix throttled down to 2 of 8
    clock = Clock()
    throttle = PrefixThrottle(8, clock=clock, jitter=lambda: 1.0)
    for _ in range(2):
        throttle.record(HOT, throttled=True)
    assert throttle.allowance(HOT) == 2
    # WHEN, once its pause is over, answers succeed again
    clock.now += 60
    seen = []
    for _ in range(2 + 3 + 4 + 5 + 6 + 7):
        throttle.record(HOT, throttled=False)
        seen.append(throttle.allowance(HOT))
    # THEN the allowance climbs additively to the ceiling and the prefix's state is forgotten
    assert seen[1] == 3 and seen[4] == 4 and seen[8] == 5
    assert seen[-1] == 8
    assert throttle._states == {}  # nothing kept for a prefix at full speed


def test_a_slot_waits_out_the_pause_and_the_allowance() -> None:
    # GIVEN a prefix paused for 0.2 s and allowed 1 task in flight
    throttle = PrefixThrottle(2, pause_seconds=0.2, jitter=lambda: 1.0)
    throttle.record(HOT, throttled=True)
    started: list[float] = []
    release = threading.Event()

    def task() -> None:
        with throttle.slot(HOT):
            started.append(time.monotonic())
            release.wait(5)

    begin = time.monotonic()
    threads = [threading.Thread(target=task) for _ in range(2)]
    for thread in threads:
        thread.start()
    # WHEN the pause has passed, one task runs; the other waits for its slot
    time.sleep(0.4)
    assert len(started) == 1 and started[0] - begin >= 0.19
    release.set()
    for thread in threads:
        thread.join(5)
    # THEN the second ran only once the first gave its slot back
    assert len(started) == 2
    # AND a prefix nobody throttled never waits
    with throttle.slot(("bucket", "cold/")):
        pass
