"""The per-row and per-item figures docs/SCALE.md multiplies up to a billion objects.

No network and no store: the same functions the deployed path runs (CSV reading, chunk planning
and encoding, outcome encoding, report rows), timed in this process on a synthetic manifest of
inventory-like keys, so the sizes of what is written per chunk, per segment and per report row
are measured rather than guessed. Run with `make bench`; timings are this machine's and noisy,
sizes are exact for the key shape below.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import time
from collections.abc import Mapping
from statistics import mean
from typing import Any

from batchops.engine.outcomes import decode_outcomes, encode_outcomes, report_rows
from batchops.engine.sqs import WorkMessage
from batchops.manifest.chunks import decode_chunk, plan_blocks, plan_chunks
from batchops.manifest.csv_manifest import iter_csv_blocks, iter_csv_tasks
from batchops.manifest.streams import BUFFER_SIZE
from batchops.ops.outcome import TaskOutcome, failure, success
from batchops.report.rows import format_row

ROWS = 1_000_000
BUCKET = "examplebucket-1250000000"
JOB_ID = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"
FINALIZE_CHUNKS = 100
FAILED_EVERY = 100  # a 1% failure rate for the mixed segment


def manifest(rows: int, seed: int = 7) -> bytes:
    """Inventory-like keys of about 60 bytes: dated prefixes, then 64 random bits (incompressible)."""
    rng = random.Random(seed)
    lines = []
    for n in range(rows):
        day = n // 40_000
        key = f"data/2024/{day // 28 + 1:02d}/{day % 28 + 1:02d}/host-{n % 64:03d}/part-{n:09d}-{rng.getrandbits(64):016x}.json.gz"
        lines.append(f"{BUCKET},{key}\n")
    return "".join(lines).encode()


def item_bytes(item: Mapping[str, Any]) -> int:
    """A DynamoDB item's size as billed: attribute names plus values (numbers about 1 byte per 2 digits)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, bytes):
            size += len(value)
        elif isinstance(value, int):
            size += len(str(value)) // 2 + 1
        else:
            size += len(str(value).encode())
    return size


def outcomes(count: int, failed_every: int | None) -> list[TaskOutcome]:
    return [
        failure(404, "NoSuchKey", "The specified key does not exist.")
        if failed_every and n % failed_every == 0
        else success()
        for n in range(count)
    ]


def main() -> int:
    body = manifest(ROWS)
    payloads: list[bytes] = []
    per_chunk: list[int] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for chunk in plan_chunks(iter_csv_tasks(io.BytesIO(body), ["Bucket", "Key"])):
        payload = chunk.data
        per_chunk.append(chunk.count)
        if len(payloads) < FINALIZE_CHUNKS:  # a sample: the rest are dropped, as prepare does
            payloads.append(payload)
    plan_wall, plan_cpu = time.perf_counter() - wall, time.process_time() - cpu

    # As prepare runs it: a block of rows at a time, each chunk with where the next one starts.
    cpu = time.process_time()
    for _ in plan_blocks(iter_csv_blocks(io.BytesIO(body), ["Bucket", "Key"])):
        pass
    positioned_cpu = time.process_time() - cpu

    # A prepare resumed inside a gzip inventory file decompresses the text before its offset
    # and drops it (gzip cannot seek).
    compressed = gzip.compress(body, compresslevel=6)
    cpu = time.process_time()
    with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as text:
        while text.read(BUFFER_SIZE):
            pass
    skip_cpu = time.process_time() - cpu
    chunk_payload = mean(len(p) for p in payloads)

    ok_results = encode_outcomes(outcomes(1000, None))
    mixed_results = encode_outcomes(outcomes(1000, FAILED_EVERY))
    chunk_item = item_bytes(
        {
            "pk": f"LEDGER#{JOB_ID}#0",
            "sk": "CHUNK#0000000000",
            "first_ordinal": 999_999_000,
            "task_count": 1000,
            "payload": payloads[0],
        }
    )
    segment_item = item_bytes(
        {
            "pk": f"LEDGER#{JOB_ID}#7",
            "sk": "SEG#0000999999#0000000000",
            "end": 1000,
            "succeeded": 990,
            "failed": 10,
            "results": mixed_results,
        }
    )

    rows = 0
    row_bytes = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for payload in payloads:
        tasks = decode_chunk(payload)
        for row in report_rows(tasks, 0, decode_outcomes(mixed_results)[: len(tasks)]):
            row_bytes += len(format_row(row).encode())
            rows += 1
    report_wall, report_cpu = time.perf_counter() - wall, time.process_time() - cpu

    longest_message = WorkMessage("finalize", "x" * 64, JOB_ID, 9_999_999_999, 999).to_json()
    figures = {
        "rows": ROWS,
        "manifest_bytes_per_row": len(body) / ROWS,
        "chunks": len(per_chunk),
        "tasks_per_chunk": mean(per_chunk),
        "plan_rows_per_s_wall": ROWS / plan_wall,
        "plan_cpu_us_per_row": plan_cpu / ROWS * 1e6,
        "plan_positioned_cpu_us_per_row": positioned_cpu / ROWS * 1e6,
        "gzip_skip_mb_per_cpu_s": len(body) / skip_cpu / 1e6,
        "gzip_skip_cpu_us_per_row": skip_cpu / ROWS * 1e6,
        "chunk_payload_bytes": chunk_payload,
        "chunk_payload_bytes_per_task": chunk_payload / mean(per_chunk),
        "chunk_item_bytes": chunk_item,
        "segment_results_bytes_all_succeeded": len(ok_results),
        "segment_results_bytes_1pct_failed": len(mixed_results),
        "segment_item_bytes_1pct_failed": segment_item,
        "report_rows_sampled": rows,
        "report_bytes_per_row": row_bytes / rows,
        "report_cpu_us_per_row": report_cpu / rows * 1e6,
        "report_rows_per_s_wall": rows / report_wall,
        "work_message_max_bytes": len(longest_message.encode()),
    }
    print(json.dumps(figures, indent=2))
    print("\n| figure | value |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value:,.1f} |" if isinstance(value, float) else f"| {name} | {value:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
