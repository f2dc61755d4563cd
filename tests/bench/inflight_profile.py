"""Where a copy job's CPU goes at a given number of tasks in flight: phases, and a stack sample.

One job (the bench's: a CSV manifest of ``--n`` keys copied to another bucket, report on) is run
in this process by the CLI's own dispatcher against the stub at ``--delay-ms``, with
BATCHOPS_TASK_CONCURRENCY ``--in-flight`` and one worker. Printed:

- wall and CPU (``time.process_time``, every thread of the process) per phase: prepare, the
  chunks, finalize; CPU µs per task over the chunks; tasks/s over the chunks and the whole job
  against the ideal ``in-flight / delay``;
- with ``--sample``, a statistical profile: every ``--sample-ms`` a thread reads every other
  thread's stack (``sys._current_frames``) and counts the innermost batchops / s3fast / stdlib
  function each is in, split into threads blocked (socket read, lock or condition wait, sleep)
  and the rest (running or waiting for the GIL). The sampler costs CPU itself; compare runs
  with and without it.

Run: ``PYTHONPATH=layers/batchops:. .venv/bin/python -m tests.bench.inflight_profile --in-flight 64``.
Not part of ``make bench``: a tool for finding where the time goes.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.bench.batchops_job import create_job, write_manifest
from tests.bench.measure import StubServer
from tests.bench.peers import PREFIX

_BLOCKING = frozenset(
    {
        "readinto",
        "recv",
        "recv_into",
        "wait",
        "sleep",
        "acquire",
        "_wait_for_tstate_lock",
        "select",
        "poll",
        "get",
        "sendall",
    }
)


class Sampler(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True, name="sampler")
        self.interval = interval
        self.running: collections.Counter[str] = collections.Counter()
        self.blocked: collections.Counter[str] = collections.Counter()
        self.stacks: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        me = threading.get_ident()
        while not self._halt.wait(self.interval):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                top = frame
                names = []
                f: Any = frame
                depth = 0
                while f is not None and depth < 12:
                    code = f.f_code
                    names.append(f"{Path(code.co_filename).stem}.{code.co_name}:{f.f_lineno}")
                    f = f.f_back
                    depth += 1
                label = names[0]
                if top.f_code.co_name in _BLOCKING:
                    self.blocked[" < ".join(names[:3])] += 1
                else:
                    self.running[label] += 1
                    self.stacks[" < ".join(names[:6])] += 1

    def stop(self) -> None:
        self._halt.set()
        self.join()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--sample", action="store_true")
    parser.add_argument("--sample-ms", type=float, default=1.0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="profile the multiplexed chunk runs (one thread: cProfile sees all of a task's work there)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="inflight-"))
    objects = work / "objects"
    objects.mkdir()
    stub = StubServer(objects, keep_puts=True)
    try:
        stub.configure(delay_ms=args.delay_ms)
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=stub.endpoint,
            AWS_EC2_METADATA_DISABLED="true",
            BATCHOPS_WORKERS="1",
            BATCHOPS_TASK_CONCURRENCY=str(args.in_flight),
            BATCHOPS_CHUNK_SIZE=str(args.chunk_size),
        )
        from batchops.cli.main import local_dispatcher
        from batchops.engine.phases import Engine
        from batchops.settings import LocalSettings
        from batchops.store.sqlite import SQLiteJobStore

        db = work / "jobs.db"
        key, etag = write_manifest(objects, args.n, PREFIX)
        create_job(db, "copy", key, etag)
        settings = LocalSettings.from_env(os.environ)
        store = SQLiteJobStore(db)
        dispatcher = local_dispatcher(store, settings)
        phases: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])

        def timed(name: str, method: Any) -> Any:
            def wrapper(*a: Any, **k: Any) -> Any:
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return method(*a, **k)
                finally:
                    entry = phases[name]
                    entry[0] += time.perf_counter() - wall
                    entry[1] += time.process_time() - cpu
                    entry[2] += 1

            return wrapper

        engine: Engine = dispatcher.engine
        for name in ("prepare", "run_chunk", "finalize", "settle", "activate"):
            setattr(engine, name, timed(name, getattr(engine, name)))
        profile = cProfile.Profile(time.thread_time) if args.cprofile else None
        if profile is not None:
            from batchops.s3fast.multiplex import Multiplexer

            plain_run = Multiplexer.run

            def profiled_run(self: Multiplexer, *a: Any, **k: Any) -> Any:
                assert profile is not None
                return profile.runcall(plain_run, self, *a, **k)

            Multiplexer.run = profiled_run  # type: ignore[method-assign]
        sampler = Sampler(args.sample_ms / 1000) if args.sample else None
        if sampler:
            sampler.start()
        wall, cpu = time.perf_counter(), time.process_time()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        dispatcher.run_until_idle()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        if sampler:
            sampler.stop()
        engine.close()
        store.close()
        stats = stub.stats()
    finally:
        stub.stop()
    ideal = args.in_flight / (args.delay_ms / 1000) if args.delay_ms else float("inf")
    chunks_wall = phases["run_chunk"][0]
    chunks_cpu = phases["run_chunk"][1]
    print(
        f"in flight {args.in_flight}, {args.n} tasks, {args.delay_ms:g} ms; stub saw {stats['operations']}, connections {stats['connections']}"
    )
    for name, (w, c, count) in phases.items():
        print(f"  {name:10s} x{count:<4d} wall {w * 1000:8.1f} ms  cpu {c * 1000:8.1f} ms")
    print(f"  job total       wall {wall * 1000:8.1f} ms  cpu {cpu * 1000:8.1f} ms")
    print(
        f"chunks: {args.n / chunks_wall:,.0f} tasks/s ({args.n / chunks_wall / ideal:.2f} of ideal "
        f"{ideal:,.0f}), {chunks_cpu / args.n * 1e6:.0f} µs CPU/task; whole job "
        f"{args.n / wall:,.0f} tasks/s ({args.n / wall / ideal:.2f}), {cpu / args.n * 1e6:.0f} µs CPU/task; "
        f"stub {stats['cpu_seconds']:.2f} s CPU, load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"rusage per task: user {(after.ru_utime - usage.ru_utime) / args.n * 1e6:.0f} µs, "
        f"sys {(after.ru_stime - usage.ru_stime) / args.n * 1e6:.0f} µs, "
        f"voluntary switches {(after.ru_nvcsw - usage.ru_nvcsw) / args.n:.1f}, "
        f"involuntary {(after.ru_nivcsw - usage.ru_nivcsw) / args.n:.1f}"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    if sampler:
        total = sum(sampler.running.values()) + sum(sampler.blocked.values())
        print(f"\n{sampler.samples} samples, {total} thread-samples")
        print("-- not blocked (running or waiting for the GIL), innermost frame:")
        for label, count in sampler.running.most_common(args.top):
            print(f"  {count:6d} {label}")
        print("-- not blocked, stacks:")
        for label, count in sampler.stacks.most_common(args.top):
            print(f"  {count:6d} {label}")
        print("-- blocked:")
        for label, count in sampler.blocked.most_common(12):
            print(f"  {count:6d} {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
