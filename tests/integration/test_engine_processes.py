"""The embedded engine as separate processes: `batchops serve` with workers, and a `batchops run`
worker killed with SIGKILL mid-chunk whose job another process then completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from batchops.api.create_job import parse_create_job
from batchops.cli.main import local_service
from batchops.jobs.status import JobStatus
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import free_port, new_bucket
from tests.helpers import APPID, call
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


@pytest.mark.parametrize("tasks", [600])
def test_a_worker_killed_mid_chunk_loses_and_duplicates_nothing(
    s3: S3Client, moto_endpoint: str, tmp_path: Path, tasks: int
) -> None:
    # GIVEN a copy job of 600 objects in the store
    src, dst = new_bucket(s3), new_bucket(s3)
    for n in range(tasks):
        s3.put_object(Bucket=src, Key=f"obj/{n:05d}", Body=str(n).encode())
    etag = put_manifest(s3, src, "m.csv", csv_manifest([(src, f"obj/{n:05d}") for n in range(tasks)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    db = tmp_path / "jobs.db"
    store = SQLiteJobStore(db)
    service = local_service(store, max_active_jobs=10)
    job = service.create(APPID, parse_create_job(request(src, "m.csv", etag, copy, src)))
    env = engine_env(
        moto_endpoint, db, BATCHOPS_WORKERS="1", BATCHOPS_TASK_CONCURRENCY="2", BATCHOPS_CHUNK_SIZE="50"
    )
    # WHEN a worker process runs it and is killed with SIGKILL mid-run
    worker = subprocess.Popen([BATCHOPS, "run"], env=env)
    deadline = time.monotonic() + 60
    while store.progress(job.job_id)[0] < 120:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert service.describe(APPID, job.job_id).status is JobStatus.ACTIVE
    # AND another process takes over (it sees the dead worker's lease and releases it)
    finisher = subprocess.run([BATCHOPS, "run", "--until-idle"], env=env, timeout=120, check=False)
    assert finisher.returncode == 0
    # THEN the job completed with every task counted once, in the counters and in the report
    done = service.describe(APPID, job.job_id)
    assert done.status is JobStatus.COMPLETE
    assert (done.progress.total, done.progress.succeeded, done.progress.failed) == (tasks, tasks, 0)
    _, rows = read_report(s3, src, job.job_id)
    keys = [row[1] for row in rows["succeeded"]]
    assert len(keys) == len(set(keys)) == tasks
    assert s3.list_objects_v2(Bucket=dst)["KeyCount"] == tasks
    assert s3.get_object(Bucket=dst, Key=f"obj/{tasks - 1:05d}")["Body"].read() == str(tasks - 1).encode()
    store.close()
