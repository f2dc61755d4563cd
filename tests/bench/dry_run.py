"""S6, the executor's own work per row without S3: parsing, planning, outcomes, report rows.

Calls the project's code directly, in this process, on a synthetic COSBatchOperations_CSV_V1
manifest whose keys are URL-encoded (every key has ``%`` and ``+`` escapes, so decoding runs on
each row). Stages, each timed on its own:

- parse: ``iter_csv_blocks`` (CSV, UTF-8, keys decoded, a block of rows at a time);
- plan: ``plan_blocks`` over ``iter_csv_blocks``, as Preparing runs, minus parsing (the difference);
- outcomes: ``encode_outcomes`` of a chunk's successes, as a segment stores them;
- report: decode the chunk and its outcomes, ``report_rows``, ``ReportWriter.add`` (spooled to
  disk with its MD5), without the upload.

``python -m tests.bench.dry_run ROWS`` prints µs per row as JSON.
"""

from __future__ import annotations

import io
import json
import sys
import time

import boto3

from batchops.engine.outcomes import decode_outcomes, encode_outcomes, report_rows
from batchops.manifest.chunks import decode_chunk, plan_blocks
from batchops.manifest.csv_manifest import iter_csv_blocks
from batchops.ops.outcome import success
from batchops.report.writer import ReportWriter

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
    written = 0
    started = time.perf_counter()
    with ReportWriter(
        s3, "bench-reports", "reports", "dry-run", "Report_CSV_V1", failed_only=False
    ) as writer:
        for payload, result in zip(payloads, results, strict=True):
            for row in report_rows(decode_chunk(payload), 0, decode_outcomes(result)):
                writer.add(row)
                written += 1
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
