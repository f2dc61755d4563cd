"""From measured runs to figures: medians per cell, the ratios of performance.md section 6, the targets.

A cell is one peer doing one workload (scenario, operation, delay, in-flight, size), measured once
per repeat; each figure is the median of that figure over the repeats. A cell with any failed run
has no figures at all, only the failure. Ratios and targets are computed from cells, never
adjusted: a target that is missed is reported missed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.bench.peers import BATCHOPS, BATCHOPS_2P, DELETE_OBJECTS, S5CMD, SEQ

LATENCY_MS = 20.0
SHORT_WORK_S = 1.0
"""A run whose work (wall time less start-up) is shorter than this has a rate start-up noise can sway."""


@dataclass(frozen=True)
class Plan:
    mode: str
    repeats: int
    s1_tasks: int
    s1_in_flight: int
    s2_levels: tuple[int, ...]
    s2_seconds: float
    """Each S2 run is sized to take about this long at the ideal rate..."""
    s2_max_tasks: int
    """...but no more than this many tasks."""
    s4_keys: int
    s5_rows: tuple[int, int]
    s6_rows: int
    timeout: float


@dataclass
class Run:
    scenario: str
    op: str
    delay_ms: float
    peer: str
    startup_key: str
    n: int
    concurrency: int
    repeat: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    tcp_active_opens: int = 0
    requests: int = 0
    work_requests: int = 0
    connections_opened: int = 0
    stub_cpu_s: float = 0.0
    operations: dict[str, int] = field(default_factory=dict)
    error: str | None = None


Cell = dict[str, Any]


def figures(run: Run, startup: dict[str, float]) -> dict[str, float]:
    """One run's figures; the peer's start-up (its zero-work run) taken off its CPU and wall time."""
    requests = max(run.requests, 1)
    return {
        "tasks_per_s": run.n / run.wall_s,
        "tasks_per_s_net": run.n / max(run.wall_s - startup["wall_s"], 1e-3),
        "work_s": run.wall_s - startup["wall_s"],
        "cpu_us_per_task": (run.cpu_s - startup["cpu_s"]) / run.n * 1e6,
        "requests_per_object": run.work_requests / run.n,
        "all_requests_per_object": run.requests / run.n,
        "connections_per_request": run.connections_opened / requests,
        "tcp_active_opens_per_request": run.tcp_active_opens / requests,
        "peak_rss_mib": run.peak_rss_mib,
        "stub_cpu_us_per_request": run.stub_cpu_s / requests * 1e6,
        "stub_busy": run.stub_cpu_s / run.wall_s,
    }


def cells(runs: list[Run], startup: dict[str, dict[str, float]]) -> list[Cell]:
    groups: dict[tuple[Any, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.scenario, run.op, run.delay_ms, run.peer, run.concurrency, run.n), []).append(
            run
        )
    found = []
    for (scenario, op, delay, peer, concurrency, n), group in groups.items():
        cell: Cell = {
            "scenario": scenario,
            "op": op,
            "delay_ms": delay,
            "peer": peer,
            "in_flight": concurrency,
            "tasks": n,
            "repeats": len(group),
        }
        failed = [run.error for run in group if run.error]
        if failed:
            cell["error"] = failed[0]
        else:
            per_run = [figures(run, startup[run.startup_key]) for run in group]
            cell.update({key: statistics.median(f[key] for f in per_run) for key in per_run[0]})
            cell["operations"] = group[-1].operations
        found.append(cell)
    return found


def find(found: list[Cell], **where: Any) -> Cell | None:
    for cell in found:
        if all(cell.get(key) == value for key, value in where.items()):
            return cell
    return None


def value(cell: Cell | None, key: str) -> float | None:
    if cell is None or "error" in cell:
        return None
    number: float = cell[key]
    return number


def ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None or bottom == 0 else top / bottom


def s2_level(plan: Plan) -> int:
    """The in-flight count R2 and the scaling target are read at: 64 (R2's definition)."""
    return 64 if 64 in plan.s2_levels else max(plan.s2_levels)


def ratios_and_targets(plan: Plan, found: list[Cell], s5: dict[str, Any]) -> tuple[list[Cell], list[Cell]]:
    def s1(op: str, delay: float, peer: str) -> Cell | None:
        return find(found, scenario="S1", tasks=plan.s1_tasks, op=op, delay_ms=delay, peer=peer)

    def s4(delay: float, peer: str) -> Cell | None:
        return find(found, scenario="S4", tasks=plan.s4_keys, op="delete", delay_ms=delay, peer=peer)

    def cpu(cell: Cell | None) -> float | None:
        return value(cell, "cpu_us_per_task")

    def rate(cell: Cell | None) -> float | None:
        return value(cell, "tasks_per_s_net")

    r1_copy = ratio(cpu(s1("copy", 0.0, BATCHOPS.name)), cpu(s1("copy", 0.0, SEQ.name)))
    r1_restore = ratio(cpu(s1("restore", 0.0, BATCHOPS.name)), cpu(s1("restore", 0.0, SEQ.name)))
    level = s2_level(plan)
    s2_batchops = find(found, scenario="S2", in_flight=level, peer=BATCHOPS.name)
    s2_batchops_2p = find(found, scenario="S2", in_flight=level, peer=BATCHOPS_2P.name)
    s2_s5cmd = rate(find(found, scenario="S2", in_flight=level, peer=S5CMD.name))
    r2 = ratio(rate(s2_batchops), s2_s5cmd)
    r2_2p = ratio(rate(s2_batchops_2p), s2_s5cmd)
    medians: dict[str, dict[str, float]] = s5.get("medians", {})
    small, large = plan.s5_rows

    def rows_per_s(name: str) -> float | None:
        return medians[name]["rows_per_s"] if name in medians else None

    def rss(name: str) -> float | None:
        return medians[name]["peak_rss_mib"] if name in medians else None

    zcat = rows_per_s(f"zcat {small}")
    r4 = ratio(rows_per_s(f"plan {small}"), zcat)
    r4_tasks = ratio(rows_per_s(f"tasks {small}"), zcat)
    r5 = {
        delay: ratio(rate(s4(delay, BATCHOPS.name)), rate(s4(delay, DELETE_OBJECTS.name)))
        for delay in (0.0, LATENCY_MS)
    }
    r6 = ratio(rss(f"plan {large}"), rss(f"plan {small}"))
    r7 = {op: value(s1(op, 0.0, BATCHOPS.name), "requests_per_object") for op in ("copy", "restore")}
    r7_latency = [
        value(s1(op, LATENCY_MS, BATCHOPS.name), "requests_per_object") for op in ("copy", "restore")
    ]
    ratios = [
        _ratio(
            "R1 copy",
            "batchops CPU µs/task ÷ bare boto3 call (sequential), copy, stub 0 ms",
            r1_copy,
            "≤ 1.2",
        ),
        _ratio("R1 restore", "the same for restore", r1_restore, "≤ 1.2"),
        _ratio(
            "R2",
            f"batchops ÷ s5cmd run tasks/s, copy, stub 20 ms, {level} in flight, one process",
            r2,
            "≥ 0.6",
        ),
        _ratio(
            "R2 2 processes", "the same, batchops in two processes (BATCHOPS_PROCESSES=2)", r2_2p, "≥ 0.9"
        ),
        {
            "name": "R3",
            "definition": "batchops ÷ boto3 ThreadPool 32 tasks/s on tuned moto",
            "value": None,
            "goal": "≥ 0.9",
            "note": "measured by tests/bench/moto_smoke.py (make bench), in moto_smoke.json",
        },
        _ratio("R4", f"planning rows/s ÷ zcat | wc -l rows/s, {small:,} rows", r4, "≥ 0.4 (csv)"),
        _ratio("R5", f"batchops ÷ boto3 DeleteObjects keys/s, {plan.s4_keys:,} keys, 0 ms", r5[0.0], "≥ 0.9"),
        _ratio("R5 20 ms", "the same at 20 ms", r5[LATENCY_MS], "≥ 0.9"),
        _ratio("R6", f"planning peak RSS, {large:,} ÷ {small:,} rows", r6, "≤ 1.05"),
        _ratio("R7 copy", "batchops requests per object, copy", r7["copy"], "1"),
        _ratio("R7 restore", "batchops requests per object, restore", r7["restore"], "1"),
    ]
    copy_batchops, copy_s5cmd = s1("copy", LATENCY_MS, BATCHOPS.name), s1("copy", LATENCY_MS, S5CMD.name)
    per_object = [*r7.values(), *r7_latency]
    delete_requests = value(s4(0.0, BATCHOPS.name), "requests_per_object")
    targets = [
        _target(
            "copy at 20 ms: batchops ÷ s5cmd tasks/s", ratio(rate(copy_batchops), rate(copy_s5cmd)), ">=", 1.0
        ),
        _target(
            "copy at 20 ms: batchops ÷ s5cmd CPU µs/task",
            ratio(cpu(copy_batchops), cpu(copy_s5cmd)),
            "<=",
            1.0,
        ),
        _target(
            f"in-flight scaling: batchops (one process) ÷ ideal, {level} in flight at 20 ms",
            ratio(rate(s2_batchops), level / (LATENCY_MS / 1000)),
            ">=",
            0.8,
        ),
        _target(
            f"in-flight scaling: batchops in 2 processes ÷ ideal, {level} in flight at 20 ms",
            ratio(rate(s2_batchops_2p), level / (LATENCY_MS / 1000)),
            ">=",
            0.8,
        ),
        _target(
            "deletes: batchops DeleteObjects requests per 1,000 keys",
            None if delete_requests is None else delete_requests * 1000,
            "<=",
            1.0,
        ),
        _target("deletes: batchops ÷ bare boto3 DeleteObjects keys/s (0 ms)", r5[0.0], ">=", 0.9),
        _target(
            "one request per object, copy and restore at 0 and 20 ms (largest)",
            None if None in per_object else max(v for v in per_object if v is not None),
            "==",
            1.0,
        ),
        _target("planning ÷ zcat | wc -l rows/s", r4, ">=", 1.0),
        _target("rows → tasks, keys decoded ÷ zcat | wc -l rows/s", r4_tasks, ">=", 0.5),
        _target(f"planning peak RSS, {large:,} ÷ {small:,} rows", r6, "<=", 1.05),
        _target(f"planning peak RSS at {large:,} rows, MiB", rss(f"plan {large}"), "<", 100.0),
    ]
    return ratios, targets


def _ratio(name: str, definition: str, number: float | None, goal: str) -> Cell:
    return {"name": name, "definition": definition, "value": number, "goal": goal}


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


def _target(name: str, number: float | None, compare: str, goal: float) -> Cell:
    met = None if number is None else _COMPARE[compare](number, goal)
    shown = {">=": "≥", "<=": "≤", "<": "<", "==": "="}[compare]
    return {"target": name, "value": number, "goal": f"{shown} {goal:g}", "met": met}
