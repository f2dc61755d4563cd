"""The embedded engine as a separate process: `batchops serve` with workers runs a job to the end.
(Workers killed with SIGKILL are in test_fault_suite.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from batchops.api.routes import ApiRequest, JobsApi
from batchops.cli.main import local_api, local_service
from batchops.engine.embedded import EmbeddedDispatcher
from batchops.jobs.status import JobStatus
from batchops.settings import DEFAULT_APPID
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import free_port, new_bucket
from tests.helpers import call
from tests.integration.jobs_harness import (
    Service,
    csv_manifest,
    engine_settings,
    put_manifest,
    read_report,
    request,
)

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


def test_run_until_idle_in_two_processes_runs_a_job_once(
    s3: S3Client, moto_endpoint: str, tmp_path: Path
) -> None:
    # GIVEN a job of 30 copies in chunks of 4, created while no worker runs
    db = tmp_path / "jobs.db"
    src, dst = new_bucket(s3), new_bucket(s3)
    for n in range(30):
        s3.put_object(Bucket=src, Key=f"k{n:02d}", Body=b"x")
    etag = put_manifest(s3, src, "m.csv", csv_manifest([(src, f"k{n:02d}") for n in range(30)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    api, store = local_api(db, 10)
    try:
        job_id = create_job(api, request(src, "m.csv", etag, copy, src))
    finally:
        store.close()
    # WHEN `batchops run --until-idle --processes 2` runs (BATCHOPS_WORKERS=1 in each)
    env = engine_env(moto_endpoint, db, BATCHOPS_CHUNK_SIZE="4", BATCHOPS_WORKERS="1")
    done = subprocess.run(
        [BATCHOPS, "run", "--until-idle", "--processes", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # THEN both processes stopped once everything was done: the job is Complete, every task
    # ran once, and its report was written (by whichever process settled the job last)
    assert done.returncode == 0, done.stderr
    store = SQLiteJobStore(db)
    try:
        job = local_service(store, 10).get(DEFAULT_APPID, job_id)
    finally:
        store.close()
    assert job.status is JobStatus.COMPLETE
    assert (job.progress.total, job.progress.succeeded, job.progress.failed) == (30, 30, 0)
    _, rows = read_report(s3, src, job_id)
    assert sorted(row[1] for row in rows["succeeded"]) == [f"k{n:02d}" for n in range(30)]
    assert s3.list_objects_v2(Bucket=dst)["KeyCount"] == 30


def test_processes_must_be_a_positive_number(tmp_path: Path) -> None:
    env = {**os.environ, "BATCHOPS_DB": str(tmp_path / "jobs.db")}
    refused = subprocess.run(
        [BATCHOPS, "run", "--until-idle", "--processes", "0"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "--processes" in refused.stderr
    refused = subprocess.run(
        [BATCHOPS, "run", "--until-idle"],
        env={**env, "BATCHOPS_PROCESSES": "none"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "BATCHOPS_PROCESSES" in refused.stderr


def create_job(api: JobsApi, body: bytes) -> str:
    answer = api.handle(ApiRequest("POST", "/jobs", headers={"x-cos-appid": DEFAULT_APPID}, body=body))
    job_id = etree.fromstring(answer.body).findtext("JobId")
    assert job_id, answer.body
    return job_id


def test_only_the_lead_process_prepares_and_finalizes(make_service: Callable[..., Service]) -> None:
    # GIVEN a job of 3 copies in chunks of 1, and a follower process's dispatcher beside the lead's
    svc = make_service(engine_settings(chunk_max_tasks=1, workers=1), workers_started=False)
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    for n in range(3):
        svc.s3.put_object(Bucket=src, Key=f"k{n}", Body=b"x")
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"k{n}") for n in range(3)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    job_id = svc.create(request(src, "m.csv", etag, copy, src))
    lead, follower = svc.dispatcher, EmbeddedDispatcher(svc.dispatcher.engine, svc.store, lead=False)
    # WHEN the follower steps while the job is New: nothing for it
    assert follower.step("follower") is False
    assert svc.describe(job_id).findtext("Status") == "New"
    # ...the lead prepares it, and the follower then runs what there is to run
    while svc.describe(job_id).findtext("Status") in ("New", "Preparing"):
        assert lead.step("lead")
    while follower.step("follower"):
        pass
    # THEN the follower ran every chunk and settled the job, but left its report to the lead
    assert svc.describe(job_id).findtext("Status") == "Completing"
    assert lead.step("lead")
    job = svc.describe(job_id)
    assert job.findtext("Status") == "Complete"
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "3"


def children_of(pid: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(found) == 2:
            return [int(child) for child in found]
        time.sleep(0.05)
    raise AssertionError("the worker processes did not start")


@pytest.mark.parametrize(("signalled", "code"), [("parent", 0), ("all, as Ctrl-C does", 0), ("one child", 1)])
def test_run_in_processes_stops_as_a_whole(tmp_path: Path, signalled: str, code: int) -> None:
    # GIVEN `batchops run --processes 2` waiting for work
    env = engine_env("http://127.0.0.1:9", tmp_path / "jobs.db")
    parent = subprocess.Popen(
        [BATCHOPS, "run", "--processes", "2"], env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        children = children_of(parent.pid)
        # WHEN the command is asked to stop (SIGTERM), or each of its processes is (SIGINT to the
        # process group, as Ctrl-C in a terminal), or one of its processes dies (SIGKILL)
        if signalled == "parent":
            parent.send_signal(signal.SIGTERM)
        elif signalled.startswith("all"):
            os.killpg(parent.pid, signal.SIGINT)
        else:
            os.kill(children[0], signal.SIGKILL)
        # THEN every process stops, its cleanup not cut short by a second signal: 0 when asked
        # to, 1 when one of them died
        assert parent.wait(timeout=30) == code
        for child in children:
            assert (
                not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
            )
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
