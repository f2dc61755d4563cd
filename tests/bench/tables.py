"""The results as a small Markdown document: what was run, where, and each scenario's table."""

from __future__ import annotations

from typing import Any

from tests.bench.figures import LATENCY_MS, SHORT_WORK_S, Cell, find
from tests.bench.peers import BATCHOPS, BATCHOPS_2P, S5CMD, THREADS

NOISY_SHARE = 0.05
"""Other processes using more than this share of the machine's CPU make a run noisy."""


def fmt(number: float | None, digits: int = 0) -> str:
    return "-" if number is None else f"{number:,.{digits}f}"


def rate(cell: Cell) -> str:
    """tasks/s, marked † when the run's work took under a second (start-up noise can sway it)."""
    return fmt(cell["tasks_per_s_net"]) + ("†" if cell["work_s"] < SHORT_WORK_S else "")


def text(cell: str) -> str:
    """Text for a table cell: a ``|`` (as in ``zcat | wc -l``) would end the cell."""
    return cell.replace("|", "\\|")


def markdown(result: dict[str, Any]) -> str:
    sections = [
        _header(result),
        _s1(result),
        _s2(result),
        _s4(result),
        _s5(result),
        _s6(result),
        _ratios(result),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _header(result: dict[str, Any]) -> str:
    plan, m = result["plan"], result["machine"]
    share = m["others_cpu_share"]
    noisy = " (a shared machine: figures are noisy)" if share > NOISY_SHARE else ""
    startup = ", ".join(f"{k} {v['cpu_s'] * 1000:.0f} ms" for k, v in result["startup"].items())
    lines = [
        "# Benchmark results",
        "",
        f"{result['date']} · `make bench{'-quick' if plan['mode'] == 'quick' else ''}` "
        f"({result['seconds']:.0f} s) · {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"Linux {m['kernel']} · other processes used {share:.0%} of the machine's CPU meanwhile{noisy}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ". "
        f"Each figure is the median of {plan['repeats']} run(s), peers interleaved, all against the stub "
        "S3 endpoint (`tests/bench/stub_s3.py`). tasks/s leaves out each program's start-up wall time and "
        f"CPU µs/task its start-up CPU ({startup}).",
    ]
    lines += [f"\n**{name} skipped: {reason}.**" for name, reason in result["skipped"].items()]
    return "\n".join(lines)


def _cells(result: dict[str, Any], scenario: str) -> list[Cell]:
    return [cell for cell in result["cells"] if cell["scenario"] == scenario]


def _s1(result: dict[str, Any]) -> str:
    found = _cells(result, "S1")
    if not found:
        return ""
    plan = result["plan"]
    lines = [
        f"## S1: {plan['s1_tasks']:,} tasks",
        "",
        f"In flight: {plan['s1_in_flight']} for s5cmd (`--numworkers`), aws-cli (`max_concurrent_requests`) "
        "and batchops (`BATCHOPS_TASK_CONCURRENCY`, one worker), 32 for the boto3 ThreadPool. New connections per request "
        "are the stub's count of the connections it accepted; ActiveOpens is the machine's TCP counter "
        "(`/proc/net/snmp`), which other processes add to. † marks a run whose work took under a second.",
        "",
        "| op | delay | peer | tasks/s | CPU µs/task | requests/object | new conns/request | ActiveOpens/request "
        "| peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in found:
        first = f"| {cell['op']} | {cell['delay_ms']:g} ms | {cell['peer']} |"
        if "error" in cell:
            lines.append(f"{first} FAILED: {text(cell['error'][:120])} | | | | | |")
            continue
        lines.append(
            f"{first} {rate(cell)} | {fmt(cell['cpu_us_per_task'])} | "
            f"{fmt(cell['requests_per_object'], 3)} | {fmt(cell['connections_per_request'], 3)} | "
            f"{fmt(cell['tcp_active_opens_per_request'], 3)} | {fmt(cell['peak_rss_mib'])} |"
        )
    return "\n".join(lines)


def _s2(result: dict[str, Any]) -> str:
    found = _cells(result, "S2")
    if not found:
        return ""
    levels = result["plan"]["s2_levels"]
    peers = (THREADS, S5CMD, BATCHOPS, BATCHOPS_2P)
    lines = [
        f"## S2: copy at {LATENCY_MS:g} ms, 1 to {max(levels)} in flight",
        "",
        "tasks/s, then ÷ the ideal (in flight ÷ latency) in brackets, then CPU µs/task. batchops runs "
        "in one process, and in two (BATCHOPS_PROCESSES=2, each with half the in-flight count: the "
        "same total in flight; not at 1).",
        "",
        "| in flight | tasks | ideal tasks/s | " + " | ".join(peer.name for peer in peers) + " |",
        "|---|---|---|" + "---|" * len(peers),
    ]
    for level in levels:
        ideal = level / (LATENCY_MS / 1000)
        row = [str(level), "-", fmt(ideal)]
        for peer in peers:
            cell = find(found, in_flight=level, peer=peer.name)
            if cell is None:
                row.append("-")
            elif "error" in cell:
                row.append(f"FAILED: {text(cell['error'][:60])}")
            else:
                row[1] = fmt(cell["tasks"])
                ratio = cell["tasks_per_s_net"] / ideal
                row.append(f"{rate(cell)} ({ratio:.2f}) · {fmt(cell['cpu_us_per_task'])}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _s4(result: dict[str, Any]) -> str:
    found = _cells(result, "S4")
    if not found:
        return ""
    lines = [
        f"## S4: deleting {result['plan']['s4_keys']:,} keys",
        "",
        "Not the same work: the bare loop holds its keys in memory and only calls DeleteObjects "
        "(Quiet); batchops runs a job as a user would: it reads and plans the manifest (from the "
        "stub, into its SQLite ledger), deletes 1,000 keys a request (Quiet unless a row could carry "
        "a delete marker), records every key's outcome and writes the completion report back to the "
        "stub. In flight: DeleteObjects requests at once (batchops: one per worker, a chunk being "
        "one request). R5 and the deletes target compare the one-worker run.",
        "",
        "| delay | peer | in flight | keys/s | CPU µs/key | requests per 1,000 keys | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in found:
        first = f"| {cell['delay_ms']:g} ms | {cell['peer']} | {cell['in_flight']} |"
        if "error" in cell:
            lines.append(f"{first} FAILED: {text(cell['error'][:120])} | | | |")
            continue
        lines.append(
            f"{first} {rate(cell)} | {fmt(cell['cpu_us_per_task'], 1)} | "
            f"{fmt(cell['requests_per_object'] * 1000, 2)} | {fmt(cell['peak_rss_mib'])} |"
        )
    return "\n".join(lines)


def _s5(result: dict[str, Any]) -> str:
    s5 = result["s5"]
    if not s5:
        return ""
    medians: dict[str, dict[str, float]] = s5["medians"]

    def figure(name: str, key: str, digits: int = 0) -> str:
        return fmt(medians[name][key], digits) if name in medians else "-"

    lines = [
        "## S5: manifest only (an S3 inventory: gzip CSV, keys URL-encoded)",
        "",
        "Planning is `Engine.prepare`: stream the inventory from the stub, check its MD5, decode keys, write "
        "chunks to a SQLite ledger. Rows → tasks reads the same gzip file locally, keys decoded.",
        "",
        "| rows | planning rows/s | planning peak RSS MiB | rows → tasks rows/s | zcat \\| wc -l rows/s |",
        "|---|---|---|---|---|",
    ]
    for rows in s5["rows"]:
        lines.append(
            f"| {rows:,} | {figure(f'plan {rows}', 'rows_per_s')} | {figure(f'plan {rows}', 'peak_rss_mib', 1)} | "
            f"{figure(f'tasks {rows}', 'rows_per_s')} | {figure(f'zcat {rows}', 'rows_per_s')} |"
        )
    lines += [f"\nS5 FAILED: {error[:200]}" for error in s5["errors"]]
    return "\n".join(lines)


def _s6(result: dict[str, Any]) -> str:
    s6 = result["s6"]
    if not s6:
        return ""
    medians: dict[str, float] = s6["medians"]

    def us(key: str) -> str:
        return f"{fmt(medians.get(key), 2)} µs"

    lines = [
        f"## S6: the executor's own work per row, without S3 ({result['plan']['s6_rows']:,} rows)",
        "",
        "| parse (CSV, keys decoded) | plan (chunks, encoded) | outcomes (encoded) | report (rows, spooled) |",
        "|---|---|---|---|",
        f"| {us('parse_us')} | {us('plan_us')} | {us('outcomes_us')} | {us('report_us')} |",
    ]
    lines += [f"\nS6 FAILED: {error[:200]}" for error in s6["errors"]]
    return "\n".join(lines)


def _ratios(result: dict[str, Any]) -> str:
    lines = [
        "## Ratios (performance.md section 6)",
        "",
        "| ratio | definition | value | goal |",
        "|---|---|---|---|",
    ]
    for r in result["ratios"]:
        shown = r.get("note") or fmt(r["value"], 2)
        lines.append(f"| {r['name']} | {text(r['definition'])} | {shown} | {r['goal']} |")
    lines += ["", "## Targets", "", "| target | measured | goal | verdict |", "|---|---|---|---|"]
    for t in result["targets"]:
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "**missed**")
        lines.append(f"| {text(t['target'])} | {fmt(t['value'], 2)} | {t['goal']} | {verdict} |")
    return "\n".join(lines)
