"""Peak memory of writing a completion report as it grows: 200k rows against 2M rows.

The report writer streams each results file to S3 (a moto server on 127.0.0.1) as a multipart
upload from an in-memory buffer, with the defaults the engine uses (8 MiB parts, files of at most
1 GiB). Each size runs in a fresh process so its peak RSS is its own; the rows are made one at a
time, as finalize makes them from the segments. Memory is flat when the 2M-row peak is about the
200k-row peak (both past their first full part), although the report is 10 times larger. Nothing here is timed against a
limit; rows/s is printed for information. Run with `make bench`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3

from tests.bench.manifest_memory import peak_rss_mib

ROWS = (200_000, 2_000_000)
BUCKET = "bench-reports"
JOB_ID = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"
FAILED_EVERY = 100  # 1% failed, as docs/SCALE.md assumes


def write_in_this_process(endpoint: str, rows: int) -> None:
    from batchops.report.rows import ReportRow
    from batchops.report.writer import ReportWriter

    s3 = boto3.client("s3", endpoint_url=endpoint)
    before = peak_rss_mib()
    started = time.perf_counter()
    with ReportWriter(s3, BUCKET, f"rows-{rows}", JOB_ID, "Report_CSV_V1", failed_only=False) as writer:
        for n in range(rows):
            ok = n % FAILED_EVERY != 0
            writer.add(
                ReportRow(
                    "examplebucket-1250000000",
                    f"data/2024/{n // 1_120_000 + 1:02d}/host-{n % 64:03d}/part-{n:09d}-{n * 2654435761 % 2**64:016x}.json.gz",
                    None,
                    ok,
                    200 if ok else 404,
                    "" if ok else "NoSuchKey",
                    "Successful" if ok else "The specified key does not exist.",
                )
            )
        location = writer.finish()
    seconds = time.perf_counter() - started
    sizes = [s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] for key in location.result_keys]
    print(
        json.dumps(
            {
                "rows": rows,
                "report_bytes": sum(sizes),
                "results_files": len(sizes),
                "seconds": seconds,
                "peak_rss_mib_before": before,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )


def main() -> int:
    from moto.server import ThreadedMotoServer

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    results = []
    try:
        for rows in ROWS:
            child = subprocess.run(
                [sys.executable, "-m", "tests.bench.report_memory", "--child", endpoint, str(rows)],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    finally:
        server.stop()
    small, large = results
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(json.dumps({"results": results, "peak_rss_ratio_2M_vs_200k": ratio}, indent=2))
    print(
        "\n| rows | report MB | results files | seconds | rows/s | peak RSS MiB |\n|---|---|---|---|---|---|"
    )
    for r in results:
        print(
            f"| {r['rows']:,} | {r['report_bytes'] / 1e6:.1f} | {r['results_files']} | {r['seconds']:.1f} "
            f"| {r['rows'] / r['seconds']:,.0f} | {r['peak_rss_mib']:.1f} |"
        )
    print(
        f"\npeak RSS 2M / 200k = {ratio:.2f} while the report grew {large['report_bytes'] / small['report_bytes']:.0f}x"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        write_in_this_process(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
