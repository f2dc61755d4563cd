"""Micro-benchmark of S6's report stage, split into its steps (µs per row, best of a few runs).

``python -m tests.bench.report_micro [ROWS]``: the same synthetic manifest as S6
(``tests/bench/dry_run.py``: every key URL-encoded), planned into chunks of 1,000, every task
succeeded. Steps: decode the chunks, decode their outcomes, make the report rows, format them;
then a report's rows from decoded chunks and encoded outcomes, row by row (``report_rows`` and
``ReportWriter.add``) and a segment at a time (``write_report_rows``, as the finalizer writes
them), the upload left out. Not part
of ``make bench``; it is for working on the report's per-row cost.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable

import boto3

from batchops.engine.outcomes import decode_outcomes, encode_outcomes, report_rows, write_report_rows
from batchops.manifest.chunks import decode_chunk, encode_chunk, plan_chunks
from batchops.manifest.csv_manifest import iter_csv_tasks
from batchops.ops.outcome import success
from batchops.report.rows import format_row
from batchops.report.writer import FILE_BYTES, ReportWriter
from tests.bench.dry_run import FIELDS, manifest


def best(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(rows: int, repeats: int = 5) -> dict[str, float]:
    payloads = [
        encode_chunk(c.tasks) for c in plan_chunks(iter_csv_tasks(io.BytesIO(manifest(rows)), FIELDS))
    ]
    results = [encode_outcomes([success()] * len(decode_chunk(p))) for p in payloads]
    chunks = [decode_chunk(p) for p in payloads]
    outcomes = [decode_outcomes(r) for r in results]
    report = [
        row for tasks, done in zip(chunks, outcomes, strict=True) for row in report_rows(tasks, 0, done)
    ]
    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )

    def writer() -> ReportWriter:
        # one part as large as a file: nothing is sent (the client is never called)
        return ReportWriter(s3, "b", "p", "j", "Report_CSV_V1", failed_only=False, part_bytes=FILE_BYTES)

    def row_by_row() -> None:
        with writer() as w:
            for tasks, result in zip(chunks, results, strict=True):
                for row in report_rows(tasks, 0, decode_outcomes(result)):
                    w.add(row)

    def segment_at_once() -> None:
        with writer() as w:
            for tasks, result in zip(chunks, results, strict=True):
                write_report_rows(w, tasks, 0, result)

    steps = {
        "decode_chunk": lambda: [decode_chunk(p) for p in payloads],
        "decode_outcomes": lambda: [decode_outcomes(r) for r in results],
        "report_rows": lambda: [list(report_rows(t, 0, o)) for t, o in zip(chunks, outcomes, strict=True)],
        "format_row": lambda: [format_row(row) for row in report],
        "row_by_row": row_by_row,
        "segment_at_once": segment_at_once,
    }
    per_row = 1e6 / rows
    return {name: best(repeats, work) * per_row for name, work in steps.items()}


if __name__ == "__main__":
    print(
        json.dumps(
            {k: round(v, 3) for k, v in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000).items()}
        )
    )
