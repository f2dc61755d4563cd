"""The embedded engine as a separate process: `batchops serve` with workers runs a job to the end.
(Workers killed with SIGKILL are in test_fault_suite.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import free_port, new_bucket
from tests.helpers import call
from tests.integration.jobs_harness import csv_manifest, put_manifest, read_report, request

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

BATCHOPS = str(Path(sys.executable).parent / "batchops")


def engine_env(moto_endpoint: str, db: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "BATCHOPS_DB": str(db),
        "BATCHOPS_S3_ADDRESSING_STYLE": "path",
        **extra,
    }


def test_serve_runs_a_job_to_complete(s3: S3Client, moto_endpoint: str, tmp_path: Path) -> None:
    # GIVEN `batchops serve` with workers, on a moto S3 endpoint, and a 12 MiB object to copy in parts
    port = free_port()
    env = engine_env(
        moto_endpoint,
        tmp_path / "jobs.db",
        BATCHOPS_MULTIPART_THRESHOLD=str(5 * 1024 * 1024),
        BATCHOPS_PART_SIZE=str(5 * 1024 * 1024),
    )
    server = subprocess.Popen(
        [BATCHOPS, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert server.stderr is not None
    assert "2 workers" in server.stderr.readline()
    try:
        src, dst = new_bucket(s3), new_bucket(s3)
        s3.put_object(
            Bucket=src, Key="big file.bin", Body=os.urandom(12 * 1024 * 1024), ContentType="video/mp4"
        )
        s3.put_object(Bucket=src, Key="small+one", Body=b"small")
        etag = put_manifest(s3, src, "m.csv", csv_manifest([(src, "big file.bin"), (src, "small+one")]))
        copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
        url = f"http://127.0.0.1:{port}"
        # WHEN a job is created over HTTP
        created = call(url, "POST", "/jobs", body=request(src, "m.csv", etag, copy, src))
        job_id = created.xml.findtext("JobId")
        # THEN DescribeJob reaches Complete
        deadline = time.monotonic() + 60
        while (status := call(url, "GET", f"/jobs/{job_id}").xml.findtext("Job/Status")) != "Complete":
            assert status not in ("Failed", "Cancelled") and time.monotonic() < deadline, status
            time.sleep(0.1)
        head = s3.head_object(Bucket=dst, Key="big file.bin")
        assert (head["ContentLength"], head["ContentType"]) == (12 * 1024 * 1024, "video/mp4")
        _, rows = read_report(s3, src, job_id or "")
        assert len(rows["succeeded"]) == 2
        assert any("multipart" in row[6] for row in rows["succeeded"])
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        server.stderr.close()
