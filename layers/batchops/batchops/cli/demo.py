"""`batchops demo` (and `make demo`): the jobs API end to end on a throwaway embedded service.

It starts `batchops serve`'s server on a free loopback port with a temporary SQLite store, talks
to it over HTTP exactly as `batchops jobs` does, and stops it, leaving nothing behind. It grows
with each capability of batchops.
"""

from __future__ import annotations

import re
import tempfile
from importlib import resources
from pathlib import Path

from batchops.cli import tables
from batchops.cli.client import ApiCallError, JobsClient
from batchops.cli.main import local_api
from batchops.cli.server import make_server, serve_in_thread
from batchops.settings import DEFAULT_APPID

SEED_REQUEST = "create-job.xml"


def seed_request() -> bytes:
    """The CreateJob example of the COS API page the project was created from."""
    return resources.files("batchops.cli").joinpath("examples", SEED_REQUEST).read_bytes()


def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="batchops-demo-") as tmp:
        api, store = local_api(Path(tmp) / "batchops.db", max_active_jobs=1000)
        server = make_server(api, "127.0.0.1", 0)
        thread = serve_in_thread(server)
        try:
            _walkthrough(JobsClient(server.url, DEFAULT_APPID))
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
            store.close()
    print("\nDone: the server is stopped and its temporary store removed.")
    return 0


def _walkthrough(client: JobsClient) -> None:
    _step(f"batchops serve is listening on {client.endpoint} (SQLite store in a temporary directory)")
    request = seed_request()

    _step(f"CreateJob: POST /jobs with the seed's example request (x-cos-appid: {client.appid})")
    job_id = tables.job_id(client.create_job(request).root)
    print(f"JobId {job_id}")

    _step("CreateJob again with the same ClientRequestToken: refused, and the error names the job")
    try:
        client.create_job(request)
    except ApiCallError as exc:
        print(f"{exc.code} (HTTP {exc.status}): {exc.message}  Resource {exc.resource}")

    _step("CreateJob with a job that waits for confirmation, and one with a bad Operation")
    second = tables.job_id(
        client.create_job(
            request.replace(b"184ce261-18af-5e3d-3e30-253723cfd937", b"demo-second-job")
            .replace(b"<ConfirmationRequired>false", b"<ConfirmationRequired>true")
            .replace(b"<Priority>10", b"<Priority>50")
            .replace(b"example-job", b"needs a human to confirm")
        ).root
    )
    print(f"JobId {second}")
    try:
        client.create_job(
            re.sub(
                rb"<Operation>.*</Operation>",
                b"<Operation><COSDeleteObject/><COSDeleteObject/></Operation>",
                request,
            )
        )
    except ApiCallError as exc:
        print(f"{exc.code} (HTTP {exc.status}): {exc.message}")

    _step("ListJobs: GET /jobs (newest first)")
    print(tables.job_list(client.list_jobs().root))

    _step(f"UpdateJobPriority: POST /jobs/{job_id}/priority?priority=42")
    print(tables.priority(client.update_priority(job_id, 42).root))

    _step(f"DescribeJob: GET /jobs/{job_id}")
    print(tables.describe(client.describe_job(job_id).root))

    _step(f"UpdateJobStatus Cancelled: POST /jobs/{job_id}/status?requestedJobStatus=Cancelled")
    print(tables.status(client.update_status(job_id, "Cancelled", "demo is over").root))
    try:
        client.update_status(job_id, "Cancelled")
    except ApiCallError as exc:
        print(f"again: {exc.code} (HTTP {exc.status}): {exc.message}")

    _step("Hostile XML: a DOCTYPE that tries to read /etc/passwd")
    try:
        client.create_job(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><CreateJobRequest>&e;</CreateJobRequest>'
        )
    except ApiCallError as exc:
        print(f"{exc.code} (HTTP {exc.status}): {exc.message}")

    _step(f"DELETE /jobs/{job_id}: a terminal job can be forgotten")
    client.delete_job(job_id)
    print(tables.job_list(client.list_jobs().root))
    print(
        "\nThis demo serves the API only, so its jobs stay New; `batchops serve` also runs jobs with"
        " in-process workers against any S3 endpoint (see README). The CLI twin of every call above"
        " is `batchops jobs ...`."
    )


def _step(title: str) -> None:
    print(f"\n== {title}")
