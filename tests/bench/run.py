"""The benchmark driver (`make bench`; `make bench-quick` for a one-minute smoke run).

Scenarios (shared/reference/performance.md section 6):

- S1: copy, delete and restore against the stub at 0 ms and 20 ms, the executor beside its peers.
- S2: copy at 20 ms with 1 to 256 requests in flight, against the ideal in-flight / latency;
  batchops in one process, and in two (BATCHOPS_PROCESSES=2, the same total in flight).
- S4: bulk delete, the executor against bare boto3 DeleteObjects.
- S5: manifest only: an inventory planned (1M and 3M rows), read to tasks, and ``zcat | wc -l``.
- S6: the executor's own work per row without S3 (parse, plan, outcomes, report).

Method: every peer is a subprocess measured by ``tests/bench/measure.py``; runs are repeated
(peers interleaved, their order rotated each repeat) and each figure is the median over repeats.
CPU per task has the peer's zero-work start-up subtracted; so has tasks/s (the start-up's wall
time). A run whose work the stub did not see, or whose job and report do not check out, counts
as failed and gives no number. Results go to ``bench-results/results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.bench import manifest_bench
from tests.bench.figures import LATENCY_MS, Plan, Run, cells, ratios_and_targets
from tests.bench.measure import ROOT, Measurement, StubServer, run_measured
from tests.bench.peers import (
    AWS,
    BATCHOPS,
    BATCHOPS_2_WORKERS,
    BATCHOPS_2P,
    DELETE_OBJECTS,
    PREFIX,
    S5CMD,
    SEQ,
    STARTUP_PEERS,
    T32,
    THREADS,
    Context,
    Peer,
    Workload,
    find_aws,
    find_s5cmd,
    work_done,
    work_requests,
)
from tests.bench.tables import markdown

# Sized for about ten minutes on a 2-core machine; QUICK is a one-minute smoke run.
FULL = Plan(
    mode="full",
    repeats=3,
    s1_tasks=10_000,
    s1_in_flight=64,
    s2_levels=(1, 16, 64, 256),
    s2_seconds=1.5,
    s2_max_tasks=4_000,
    s4_keys=100_000,
    s5_rows=(1_000_000, 3_000_000),
    s6_rows=200_000,
    timeout=300,
)
QUICK = Plan(
    mode="quick",
    repeats=1,
    s1_tasks=1_000,
    s1_in_flight=64,
    s2_levels=(1, 16, 64),
    s2_seconds=0.5,
    s2_max_tasks=1_000,
    s4_keys=10_000,
    s5_rows=(100_000, 300_000),
    s6_rows=20_000,
    timeout=60,
)

# S1: which peers run each operation at each delay. Bare boto3 runs sequentially at 0 ms (the
# cost of one call, R1's denominator) and as a ThreadPool of 32 for copies at 20 ms (where threads
# pay); aws-cli is the slow anchor at 0 ms. Each boto3-based run of 10,000 tasks takes 10-25 s on
# two cores, so S1 keeps to these (S2 has threads at every level); batchops runs in every cell.
S1_PEERS: dict[tuple[str, float], tuple[Peer, ...]] = {
    ("copy", 0.0): (SEQ, S5CMD, AWS, BATCHOPS),
    ("copy", LATENCY_MS): (T32, S5CMD, BATCHOPS),
    ("delete", 0.0): (DELETE_OBJECTS, S5CMD, BATCHOPS),
    ("delete", LATENCY_MS): (DELETE_OBJECTS, S5CMD, BATCHOPS),
    ("restore", 0.0): (SEQ, BATCHOPS),
    ("restore", LATENCY_MS): (BATCHOPS,),
}


@dataclass
class Bench:
    plan: Plan
    ctx: Context
    log: Callable[[str], None]
    runs: list[Run] = field(default_factory=list)
    startup: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def stub(self) -> StubServer:
        return self.ctx.stub

    def usable(self, peers: Iterable[Peer]) -> list[Peer]:
        found = []
        for peer in peers:
            reason = peer.available(self.ctx)
            if reason is None:
                found.append(peer)
            else:
                self.skipped[peer.name] = reason
        return found

    def measure_startup(self) -> None:
        """Each peer program's zero-work run, repeated: its CPU and wall time are the start-up cost."""
        measured: dict[str, list[Measurement]] = {}
        for _ in range(self.plan.repeats):
            for key, peer in STARTUP_PEERS.items():
                if peer.available(self.ctx) is not None:
                    continue
                invocation = peer.zero(self.ctx)
                self.stub.configure(delay_ms=0, list_prefix=PREFIX, list_count=invocation.listing)
                self.stub.reset()
                result = run_measured(invocation.cmd, invocation.env, self.plan.timeout)
                if not result.ok:
                    raise RuntimeError(f"{key} cannot even start: {result.stderr_tail}")
                measured.setdefault(key, []).append(result)
        for key, results in measured.items():
            self.startup[key] = {
                "cpu_s": statistics.median(r.cpu_s for r in results),
                "wall_s": statistics.median(r.wall_s for r in results),
                "peak_rss_mib": statistics.median(r.peak_rss_mib for r in results),
            }
            self.log(
                f"start-up {key}: {self.startup[key]['cpu_s'] * 1000:.0f} ms CPU, "
                f"{self.startup[key]['wall_s'] * 1000:.0f} ms wall"
            )

    def run(self, scenario: str, peer: Peer, work: Workload, delay_ms: float, repeat: int) -> Run:
        record = Run(
            scenario, work.op, delay_ms, peer.name, peer.startup_key, work.n, peer.in_flight(work), repeat
        )
        try:
            invocation = peer.invocation(self.ctx, work)
        except Exception as exc:  # a peer that cannot even be set up is a failed run, shown as such
            record.error = f"setup failed: {exc}"
            self.runs.append(record)
            return record
        self.stub.configure(delay_ms=delay_ms, list_prefix=PREFIX, list_count=invocation.listing)
        self.stub.reset()
        before = self.stub.stats()
        result = run_measured(invocation.cmd, invocation.env, self.plan.timeout)
        stats = self.stub.stats()
        record.wall_s, record.cpu_s, record.peak_rss_mib = result.wall_s, result.cpu_s, result.peak_rss_mib
        record.tcp_active_opens = result.tcp_active_opens
        record.requests = stats["requests"]
        record.work_requests = work_requests(work.op, stats)
        record.connections_opened = stats["connections"]["opened"]
        record.stub_cpu_s = stats["cpu_seconds"] - before["cpu_seconds"]
        record.operations = stats["operations"]
        if result.timed_out:
            record.error = f"timed out after {self.plan.timeout:.0f} s"
        elif result.exit_code != 0:
            record.error = f"exit {result.exit_code}: {result.stderr_tail[-300:]}"
        else:
            try:
                record.error = work_done(work.op, work.n, stats) or invocation.check(stats)
            except Exception as exc:
                record.error = f"check failed: {exc!r}"
        self.runs.append(record)
        status = f"FAILED ({record.error})" if record.error else f"{work.n / result.wall_s:,.0f} tasks/s"
        self.log(
            f"{scenario} {work.op} {delay_ms:g} ms {peer.name} c={record.concurrency} n={work.n}: {status}"
        )
        return record


def rotated(items: list[Peer], by: int) -> list[Peer]:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


# --- scenarios -----------------------------------------------------------------------------------


def s1(bench: Bench) -> None:
    plan = bench.plan
    for repeat in range(plan.repeats):
        for (op, delay), peers in S1_PEERS.items():
            for peer in rotated(bench.usable(peers), repeat):
                bench.run("S1", peer, Workload(op, plan.s1_tasks, plan.s1_in_flight), delay, repeat)


def s2_tasks(plan: Plan, level: int) -> int:
    return max(50, min(plan.s2_max_tasks, round(level / (LATENCY_MS / 1000) * plan.s2_seconds)))


def s2(bench: Bench) -> None:
    plan = bench.plan
    peers = bench.usable((THREADS, S5CMD, BATCHOPS, BATCHOPS_2P))
    for repeat in range(plan.repeats):
        for level in plan.s2_levels:
            work = Workload("copy", s2_tasks(plan, level), level)
            for peer in rotated(peers, repeat):
                # a level the peer cannot hold exactly (1 in flight over 2 processes) is not run
                if peer.in_flight(work) == level:
                    bench.run("S2", peer, work, LATENCY_MS, repeat)


def s4(bench: Bench) -> None:
    """The bare loop has one request in flight, and so has batchops with one worker (what R5 and
    the deletes target compare); batchops with its default two workers has two."""
    plan = bench.plan
    for repeat in range(plan.repeats):
        for delay in (0.0, LATENCY_MS):
            for peer in rotated(bench.usable((DELETE_OBJECTS, BATCHOPS, BATCHOPS_2_WORKERS)), repeat):
                bench.run("S4", peer, Workload("delete", plan.s4_keys, 1), delay, repeat)


def s5(bench: Bench, cache: Path) -> dict[str, Any]:
    """Planning (through the engine, from the stub), rows to tasks, and zcat | wc -l, per size."""
    plan, ctx = bench.plan, bench.ctx
    small, large = plan.s5_rows
    inventories = {}
    for rows in (small, large):
        started = time.perf_counter()
        data = manifest_bench.ensure_data_file(cache, rows)
        inventories[rows] = manifest_bench.land_inventory(ctx.objects, data, rows)
        bench.log(f"S5 inventory of {rows:,} rows ready ({time.perf_counter() - started:.1f} s)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "batchops"), str(ROOT)])}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    python = [sys.executable, "-m", "tests.bench.manifest_bench"]
    samples: dict[str, list[dict[str, float]]] = {}
    errors: list[str] = []

    def child(name: str, cmd: list[str]) -> None:
        result = run_measured(cmd, env, plan.timeout, capture_stdout=True)
        if not result.ok:
            errors.append(f"{name}: exit {result.exit_code} {result.stderr_tail[-300:]}")
            return
        figures: dict[str, float] = {"wall_s": result.wall_s, "cpu_s": result.cpu_s}
        if name.startswith("zcat"):
            figures["tasks"] = int(result.stdout.strip())
            if figures["tasks"] != int(name.rsplit(maxsplit=1)[-1]):
                errors.append(f"{name}: counted {figures['tasks']} lines")
                return
            figures["seconds"] = result.wall_s
            figures["peak_rss_mib"] = result.peak_rss_mib
        else:
            figures.update(json.loads(result.stdout.strip().splitlines()[-1]))
            figures["peak_rss_mib"] = max(figures["peak_rss_mib"], result.peak_rss_mib)
        samples.setdefault(name, []).append(figures)
        bench.log(
            f"S5 {name}: {figures['tasks'] / figures['seconds']:,.0f} rows/s, {figures['peak_rss_mib']:.0f} MiB"
        )

    bench.stub.configure(delay_ms=0)
    for repeat in range(plan.repeats):
        for rows in (small, large):
            inventory = inventories[rows]
            # The large size is there for memory (peak RSS does not vary run to run): one run.
            if rows == large and repeat > 0:
                continue
            db = ctx.scratch(f"plan-{rows}") / "plan.db"
            endpoint, key, etag = bench.stub.endpoint, inventory.manifest_key, inventory.manifest_etag
            jobs = [
                (f"plan {rows}", [*python, "plan", endpoint, key, etag, str(db), str(rows)]),
                (f"zcat {rows}", ["bash", "-c", f"zcat {shlex.quote(str(inventory.data))} | wc -l"]),
            ]
            if rows == small:
                jobs.append((f"tasks {rows}", [*python, "tasks", str(inventory.data), str(rows)]))
            for name, cmd in jobs[repeat % len(jobs) :] + jobs[: repeat % len(jobs)]:
                child(name, cmd)
    medians = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for name, runs in samples.items()
    }
    for figures in medians.values():
        figures["rows_per_s"] = figures["tasks"] / figures["seconds"]
    return {"rows": [small, large], "runs": samples, "medians": medians, "errors": errors}


def s6(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "batchops"), str(ROOT)])}
    samples: list[dict[str, float]] = []
    errors: list[str] = []
    for _ in range(plan.repeats):
        cmd = [sys.executable, "-m", "tests.bench.dry_run", str(plan.s6_rows)]
        result = run_measured(cmd, env, plan.timeout, capture_stdout=True)
        if not result.ok:
            errors.append(f"exit {result.exit_code}: {result.stderr_tail[-300:]}")
            continue
        samples.append(json.loads(result.stdout.strip().splitlines()[-1]))
        bench.log(f"S6 {samples[-1]}")
    medians = {key: statistics.median(s[key] for s in samples) for key in samples[0]} if samples else {}
    return {"runs": samples, "medians": medians, "errors": errors}


# --- output ------------------------------------------------------------------------------------------


def busy_cpu_seconds() -> float:
    """CPU time every process of the machine has used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and every child it has waited for (the peers, the stub once stopped)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": os.getloadavg(),
    }


def versions(ctx: Context) -> dict[str, str]:
    found = {name: metadata.version(name) for name in ("boto3", "botocore", "batchops")}
    for name, cmd in (("s5cmd", [ctx.s5cmd, "version"]), ("aws-cli", [ctx.aws, "--version"])):
        if cmd[0] is None:
            found[name] = "not installed"
            continue
        answer = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, timeout=60, check=False
        )
        found[name] = (
            (answer.stdout or answer.stderr).strip().split()[0] if answer.returncode == 0 else "broken"
        )
    return found


def summarize(result: dict[str, Any], plan: Plan, runs: list[Run]) -> None:
    """Add the cells, ratios and targets to ``result`` (its startup, s5 and s6 already there)."""
    found = cells(runs, result["startup"])
    ratios, targets = ratios_and_targets(plan, found, result["s5"])
    result.update(cells=found, ratios=ratios, targets=targets, runs=[asdict(run) for run in runs])


def write(result: dict[str, Any], out: Path) -> None:
    table = markdown(result)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "results.md").write_text(table)
    print(table)


def render(out: Path) -> None:
    """Figures and tables again from the runs a results.json holds (after a change to how they are made)."""
    result = json.loads((out / "results.json").read_text())
    stored = result["plan"]
    plan = Plan(**{**stored, "s2_levels": tuple(stored["s2_levels"]), "s5_rows": tuple(stored["s5_rows"])})
    summarize(result, plan, [Run(**run) for run in result["runs"]])
    write(result, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where results go")
    parser.add_argument(
        "--only", default="S1,S2,S4,S5,S6", help="comma-separated scenarios to run (default: all)"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="run nothing: remake the figures and tables from OUT/results.json",
    )
    args = parser.parse_args(argv)
    if args.render:
        render(args.out)
        return 0
    plan = QUICK if args.quick else FULL
    only = {name.strip().upper() for name in args.only.split(",")}
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="batchops-bench-"))
    objects = work / "objects"
    objects.mkdir()
    info = machine()
    busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    stub = StubServer(objects, keep_puts=True)
    try:
        ctx = Context(stub, work / "scratch", objects, stub.s3_client(), find_aws(), find_s5cmd())
        bench = Bench(plan, ctx, log)
        log(f"stub S3 endpoint at {stub.endpoint}; {plan.mode} plan; scratch {work}")
        bench.measure_startup()
        if "S1" in only:
            s1(bench)
        if "S2" in only:
            s2(bench)
        if "S4" in only:
            s4(bench)
        s5_result = s5(bench, args.out / "data") if "S5" in only else {}
        s6_result = s6(bench) if "S6" in only else {}
        result: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "plan": asdict(plan),
            "machine": info,
            "versions": versions(ctx),
            "startup": bench.startup,
            "skipped": bench.skipped,
            "s5": s5_result,
            "s6": s6_result,
        }
    finally:
        stub.stop()
        shutil.rmtree(work, ignore_errors=True)
    # What the machine spent beyond this run's own processes: other people's work, i.e. noise.
    elapsed = time.perf_counter() - started
    others = (busy_cpu_seconds() - busy_before) - (own_cpu_seconds() - own_before)
    info["others_cpu_seconds"] = max(0.0, others)
    info["others_cpu_share"] = max(0.0, others) / (elapsed * (os.cpu_count() or 1))
    result["seconds"] = elapsed
    summarize(result, plan, bench.runs)
    write(result, args.out)
    log(f"done; results in {args.out}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
