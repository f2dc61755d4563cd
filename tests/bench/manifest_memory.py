"""Peak memory of preparing a job as its manifest grows: 10k rows against 1M rows.

Preparing streams the manifest from S3 (a moto server on 127.0.0.1), plans chunks and writes
them to a SQLite ledger. Each size runs in a fresh process so its peak RSS is its own. Memory
is flat when the 1M-row peak is about the 10k-row peak. Run with `make bench`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

ROWS = (10_000, 1_000_000)


def peak_rss_mib() -> float:
    """This process's peak RSS. (Not ru_maxrss: Linux carries it over from the parent across exec,
    and the parent holds the moto server with every manifest in memory.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare_in_this_process(endpoint: str, bucket: str, key: str, etag: str, db: str) -> None:
    from batchops.engine.phases import Engine
    from batchops.engine.settings import EngineSettings
    from batchops.jobs.model import (
        DeleteObject,
        Job,
        JobSpec,
        Manifest,
        ManifestField,
        ManifestFormat,
        ManifestLocation,
        ManifestSpec,
        ReportFormat,
        ReportScope,
        ReportSpec,
    )
    from batchops.jobs.service import JobService
    from batchops.jobs.status import JobStatus
    from batchops.store.sqlite import SQLiteJobStore

    store = SQLiteJobStore(db)
    s3 = boto3.client("s3", endpoint_url=endpoint)
    engine = Engine(JobService(store, max_active_jobs=10), store, s3, EngineSettings())
    spec = JobSpec(
        client_request_token="bench",
        manifest=Manifest(
            ManifestLocation(f"arn:aws:s3:::{bucket}/{key}", etag),
            ManifestSpec(ManifestFormat.CSV, (ManifestField.BUCKET, ManifestField.KEY)),
        ),
        operation=DeleteObject(),
        priority=1,
        report=ReportSpec(bucket=None, enabled=False, format=ReportFormat.CSV, scope=ReportScope.ALL_TASKS),
        role_arn="arn:aws:iam::123456789012:role/bench",
    )
    from datetime import UTC, datetime

    job = Job("bench-job", "1", spec, JobStatus.PREPARING, datetime.now(UTC), 1)
    started = time.perf_counter()
    planned = engine._plan(job, None, None)
    assert planned is not None and planned.done
    total, chunks = planned.next_ordinal, planned.next_index
    seconds = time.perf_counter() - started
    print(json.dumps({"tasks": total, "chunks": chunks, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}))
    engine.close()
    store.close()


def main() -> int:
    from moto.server import ThreadedMotoServer

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="bench-manifests")
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rows in ROWS:
                body = "".join(f"bench-data,dir/sub+dir/object+{n:09d}.bin\n" for n in range(rows)).encode()
                key = f"manifest-{rows}.csv"
                etag = s3.put_object(Bucket="bench-manifests", Key=key, Body=body)["ETag"]
                del body
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        endpoint,
                        "bench-manifests",
                        key,
                        etag,
                        str(Path(tmp) / f"{rows}.db"),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(child.stdout.strip().splitlines()[-1])
                result["rows"] = rows
                results.append(result)
    finally:
        server.stop()
    small, large = results
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(json.dumps({"results": results, "peak_rss_ratio_1M_vs_10k": ratio}, indent=2))
    print("\n| rows | tasks | chunks | seconds | rows/s | peak RSS MiB |\n|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['tasks']:,} | {r['chunks']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | {r['peak_rss_mib']:.1f} |"
        )
    print(f"\npeak RSS 1M / 10k = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        prepare_in_this_process(*sys.argv[2:7])
        sys.exit(0)
    sys.exit(main())
