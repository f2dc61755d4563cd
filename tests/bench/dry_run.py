"""S6, the executor's own work per row without S3: parsing, planning, outcomes, report rows.

Calls the project's code directly, in this process, on a synthetic COSBatchOperations_CSV_V1
manifest whose keys are URL-encoded (every key has ``%`` and ``+`` escapes, so decoding runs on
each row). Stages, each timed on its own:

- parse: ``iter_csv_blocks`` (CSV, UTF-8, keys decoded, a block of rows at a time);
- plan: ``plan_blocks`` over ``iter_csv_blocks``, as Preparing runs, minus parsing (the difference);
- outcomes: ``encode_outcomes`` of a chunk's successes, as a segment stores them;
- report: decode the chunk, then ``write_report_rows`` (the outcomes decoded, the rows formatted
  and added to the ``ReportWriter`` with their MD5), as the finalizer does, without the upload
  (the writer holds the rows in memory: one part as large as a results file).

``python -m tests.bench.dry_run ROWS`` prints µs per row as JSON.
"""

from __future__ import annotations

import io
import json
import sys
import time

import boto3

from batchops.engine.outcomes import encode_outcomes, write_report_rows
from batchops.manifest.chunks import decode_chunk, plan_blocks
from batchops.manifest.csv_manifest import iter_csv_blocks
from batchops.ops.outcome import success
from batchops.report.writer import FILE_BYTES, ReportWriter

FIELDS = ("Bucket", "Key")


def manifest(rows: int) -> bytes:
    return "".join(
        f"bench-src,data/caf%C3%A9/dir%20{n % 1000:03d}/object%20{n:09d}+v.bin\n" for n in range(rows)
    ).encode()


def measure(rows: int) -> dict[str, float]:
    data = manifest(rows)

    started = time.perf_counter()
    parsed = sum(len(block) for block in iter_csv_blocks(io.BytesIO(data), FIELDS))
    parse = time.perf_counter() - started

    started = time.perf_counter()
    payloads = [chunk.data for chunk, _ in plan_blocks(iter_csv_blocks(io.BytesIO(data), FIELDS))]
    parse_and_plan = time.perf_counter() - started

    chunk_sizes = [len(decode_chunk(payload)) for payload in payloads]
    started = time.perf_counter()
    results = [encode_outcomes([success()] * size) for size in chunk_sizes]
    outcomes = time.perf_counter() - started

    # The client is never called: finish(), the upload, is not part of this stage.
    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    started = time.perf_counter()
    # One part as large as a file: no part is sent whatever the number of rows.
    with ReportWriter(
        s3, "bench-reports", "reports", "dry-run", "Report_CSV_V1", failed_only=False, part_bytes=FILE_BYTES
    ) as writer:
        written = 0
        for payload, result in zip(payloads, results, strict=True):
            tasks = decode_chunk(payload)
            write_report_rows(writer, tasks, 0, result)
            written += len(tasks)
    report = time.perf_counter() - started

    if parsed != rows or sum(chunk_sizes) != rows or written != rows:
        raise SystemExit(
            f"dry run lost rows: parsed {parsed}, planned {sum(chunk_sizes)}, reported {written}"
        )
    per_row = 1e6 / rows
    return {
        "rows": rows,
        "chunks": len(payloads),
        "parse_us": parse * per_row,
        "plan_us": (parse_and_plan - parse) * per_row,
        "outcomes_us": outcomes * per_row,
        "report_us": report * per_row,
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
