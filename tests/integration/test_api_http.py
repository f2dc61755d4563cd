"""The jobs API over real HTTP against the `batchops serve` server: every route, every seed error."""

from __future__ import annotations

import gzip
import os
import re
import socket
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from lxml import etree

from batchops.api.routes import JobsApi
from batchops.cli.server import JobsHttpServer, make_server, serve_in_thread
from batchops.clients import STORE_CLIENT_CONFIG
from batchops.jobs.service import JobService
from batchops.jobs.status import JobStatus
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import SEED_XML, RunningServer, free_port, run_server
from tests.helpers import APPID, Reply, call

SEED = SEED_XML.read_bytes()


def with_token(token: str, body: bytes = SEED) -> bytes:
    return re.sub(rb"<ClientRequestToken>[^<]*<", b"<ClientRequestToken>" + token.encode() + b"<", body)


def create(url: str, body: bytes = SEED, **kwargs: object) -> Reply:
    return call(url, "POST", "/jobs", body=body, **kwargs)  # type: ignore[arg-type]


def job_id_of(reply: Reply) -> str:
    assert reply.status == 200, reply.body
    job_id = reply.xml.findtext("JobId")
    assert job_id
    return job_id


def assert_cos_error(reply: Reply, status: int, code: str, message: str | None = None) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/xml"
    root = reply.xml
    assert root.tag == "Error"
    assert [child.tag for child in root] == ["Code", "Message", "Resource", "RequestId", "TraceId"]
    assert root.findtext("Code") == code
    assert root.findtext("RequestId") == reply.headers["x-cos-request-id"]
    if message is not None:
        assert message in (root.findtext("Message") or "")


# --- the seed's example and its error table ------------------------------------------------------


def test_seed_example_creates_a_job_and_a_resend_is_a_duplicate(api_server: RunningServer) -> None:
    # GIVEN `batchops serve` and the seed's example request with its x-cos-appid header
    # WHEN it is sent
    first = create(api_server.url)
    # THEN 200 and a JobId (a UUID)
    job_id = job_id_of(first)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", job_id)
    assert first.xml.tag == "CreateJobResult"
    # WHEN it is sent again
    again = create(api_server.url)
    # THEN the duplicate error names the existing job, and there is still one job
    assert_cos_error(again, 400, "InvalidRequest", "Duplicate request.")
    assert again.xml.findtext("Resource") == f"/jobs/{job_id}"
    assert first.headers["x-cos-request-id"] != again.headers["x-cos-request-id"]
    listed = call(api_server.url, "GET", "/jobs")
    assert [m.findtext("JobId") for m in listed.xml.iterfind("Jobs/member")] == [job_id]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"<Priority>10<", b"<Priority>2147483648<", "Priority must be an integer between 0 and 2147483647."),
        (b"<Priority>10<", b"<Priority>-3<", "Priority must be an integer between 0 and 2147483647."),
        (
            b"<Format>COSBatchOperations_CSV_V1<",
            b"<Format>CSV<",
            "The XML Manifest field in the request body does not conform to the XML syntax",
        ),
        (
            b"<COSPutObjectCopy>",
            b"<COSPutObjectCopy><StorageClass>COLD</StorageClass>",
            "The XML Operation field in the request body does not conform to the XML syntax",
        ),
        (
            b"<ReportScope>AllTasks<",
            b"<ReportScope>Everything<",
            "The XML Report field in the request body does not conform to the XML syntax",
        ),
    ],
)
def test_seed_error_rows_over_http(api_server: RunningServer, old: bytes, new: bytes, message: str) -> None:
    reply = create(api_server.url, SEED.replace(old, new))
    code = "InvalidRequest" if message.startswith("Priority") else "MalformedXML"
    assert_cos_error(reply, 400, code, message)
    assert call(api_server.url, "GET", "/jobs").xml.find("Jobs/member") is None


def test_too_many_jobs(sqlite_store: SQLiteJobStore) -> None:
    # GIVEN a service that allows two active jobs
    for server in run_server(JobService(sqlite_store, max_active_jobs=2)):
        job_id_of(create(server.url, with_token("a")))
        second = job_id_of(create(server.url, with_token("b")))
        # WHEN a third is created THEN TooManyJobs, 500
        assert_cos_error(create(server.url, with_token("c")), 500, "TooManyJobs", "upper limit")
        # WHEN one job is cancelled THEN there is room again
        call(server.url, "POST", f"/jobs/{second}/status?requestedJobStatus=Cancelled")
        job_id_of(create(server.url, with_token("c")))


def test_service_unavailable_when_sqlite_is_locked(tmp_path: Path) -> None:
    # GIVEN a store whose database another process holds an exclusive lock on
    import sqlite3

    store = SQLiteJobStore(tmp_path / "jobs.db", busy_timeout=0.2)
    locker = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for server in run_server(JobService(store, max_active_jobs=10)):
            # WHEN a job is created THEN ServiceUnavailable, 500, and no stack trace
            reply = create(server.url)
            assert_cos_error(reply, 500, "ServiceUnavailable", "temporarily unavailable")
            assert b"Traceback" not in reply.body
            locker.execute("ROLLBACK")
            # AND nothing was half-created: the same token now succeeds once
            job_id_of(create(server.url))
            assert_cos_error(create(server.url), 400, "InvalidRequest", "Duplicate request.")
    finally:
        locker.close()
        store.close()


def test_service_unavailable_when_dynamodb_cannot_be_reached() -> None:
    # GIVEN the DynamoDB store pointed at a loopback port where nothing listens
    no_retries = STORE_CLIENT_CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 1}))
    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{free_port()}", config=no_retries)
    for server in run_server(JobService(DynamoDBJobStore("jobs", client), max_active_jobs=10)):
        # WHEN any call is made THEN ServiceUnavailable, 500
        assert_cos_error(create(server.url), 500, "ServiceUnavailable")
        assert_cos_error(call(server.url, "GET", "/jobs"), 500, "ServiceUnavailable")


# --- the rest of the family ------------------------------------------------------------------------


def test_describe_returns_the_job_as_created(api_server: RunningServer) -> None:
    job_id = job_id_of(create(api_server.url))
    reply = call(api_server.url, "GET", f"/jobs/{job_id}")
    assert reply.status == 200
    job = reply.xml.find("Job")
    assert job is not None
    assert job.findtext("JobId") == job_id
    assert job.findtext("Status") == "New"
    assert job.findtext("Priority") == "10"
    assert job.findtext("Description") == "example-job"
    assert job.findtext("ConfirmationRequired") == "false"
    assert job.findtext("Manifest/Location/ETag") == '"15150651828fa9cdcb8356b6d1c7638b"'
    assert job.findtext("Operation/COSPutObjectCopy/TargetResource") == (
        "qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000"
    )
    assert job.findtext("Report/Prefix") == "job-result"
    assert job.findtext("ProgressSummary/TotalNumberOfTasks") == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", job.findtext("CreationTime") or "")
    assert job.find("TerminationDate") is None


def test_no_such_job_and_other_appids_see_nothing(api_server: RunningServer) -> None:
    job_id = job_id_of(create(api_server.url))
    assert_cos_error(call(api_server.url, "GET", "/jobs/0000-none"), 404, "NoSuchJob")
    assert_cos_error(call(api_server.url, "GET", f"/jobs/{job_id}", appid="1250000001"), 404, "NoSuchJob")
    assert_cos_error(
        call(api_server.url, "POST", f"/jobs/{job_id}/priority?priority=1", appid="1250000001"),
        404,
        "NoSuchJob",
    )
    assert call(api_server.url, "GET", "/jobs", appid="1250000001").xml.find("Jobs/member") is None


def test_confirmation_lifecycle_over_http(api_server: RunningServer) -> None:
    # GIVEN a job that needs confirmation, prepared by the engine into Suspended
    body = with_token(
        "confirm-me", SEED.replace(b"<ConfirmationRequired>false", b"<ConfirmationRequired>true")
    )
    job_id = job_id_of(create(api_server.url, body))
    url = f"/jobs/{job_id}/status?requestedJobStatus=Ready&statusUpdateReason=looks%20good"
    assert_cos_error(call(api_server.url, "POST", url), 400, "InvalidRequest", "Only a Suspended job")
    service = api_server.service
    service.transition(APPID, job_id, JobStatus.PREPARING)
    service.transition(APPID, job_id, JobStatus.SUSPENDED, reason="waiting for confirmation")
    # WHEN it is confirmed
    reply = call(api_server.url, "POST", url)
    # THEN it is Ready, with the reason given
    assert reply.status == 200
    assert reply.xml.tag == "UpdateJobStatusResult"
    assert (
        reply.xml.findtext("JobId"),
        reply.xml.findtext("Status"),
        reply.xml.findtext("StatusUpdateReason"),
    ) == (
        job_id,
        "Ready",
        "looks good",
    )
    # AND confirming again is refused
    assert_cos_error(call(api_server.url, "POST", url), 400, "InvalidRequest")


def test_cancel_priority_and_delete(api_server: RunningServer) -> None:
    job_id = job_id_of(create(api_server.url))
    # Priority changes while the job lives
    reply = call(api_server.url, "POST", f"/jobs/{job_id}/priority?priority=2147483647")
    assert reply.status == 200
    assert (reply.xml.tag, reply.xml.findtext("Priority")) == ("UpdateJobPriorityResult", "2147483647")
    # A live job cannot be deleted
    assert_cos_error(
        call(api_server.url, "DELETE", f"/jobs/{job_id}"),
        400,
        "InvalidRequest",
        "Only a Complete, Failed or Cancelled job",
    )
    # Cancel ends a job that has not started
    reply = call(api_server.url, "POST", f"/jobs/{job_id}/status?requestedJobStatus=Cancelled")
    assert reply.xml.findtext("Status") == "Cancelled"
    described = call(api_server.url, "GET", f"/jobs/{job_id}").xml
    assert described.findtext("Job/TerminationDate")
    # A terminal job refuses changes
    assert_cos_error(
        call(api_server.url, "POST", f"/jobs/{job_id}/priority?priority=1"),
        400,
        "InvalidRequest",
        "already Cancelled",
    )
    assert_cos_error(
        call(api_server.url, "POST", f"/jobs/{job_id}/status?requestedJobStatus=Cancelled"),
        400,
        "InvalidRequest",
        "already Cancelled",
    )
    # ... and can be deleted, which frees the token
    reply = call(api_server.url, "DELETE", f"/jobs/{job_id}")
    assert (reply.status, reply.body) == (204, b"")
    assert_cos_error(call(api_server.url, "GET", f"/jobs/{job_id}"), 404, "NoSuchJob")
    job_id_of(create(api_server.url))


def test_cancel_of_a_running_job_goes_through_cancelling(api_server: RunningServer) -> None:
    job_id = job_id_of(create(api_server.url))
    for status in (JobStatus.PREPARING, JobStatus.READY, JobStatus.ACTIVE):
        api_server.service.transition(APPID, job_id, status)
    url = f"/jobs/{job_id}/status?requestedJobStatus=Cancelled&statusUpdateReason=stop"
    assert call(api_server.url, "POST", url).xml.findtext("Status") == "Cancelling"
    assert call(api_server.url, "POST", url).xml.findtext("Status") == "Cancelling"


def test_list_pages_and_filters(api_server: RunningServer) -> None:
    ids = [job_id_of(create(api_server.url, with_token(f"t{n}"))) for n in range(5)]
    call(api_server.url, "POST", f"/jobs/{ids[1]}/status?requestedJobStatus=Cancelled")
    page = call(api_server.url, "GET", "/jobs?maxResults=2").xml
    assert [m.findtext("JobId") for m in page.iterfind("Jobs/member")] == [ids[4], ids[3]]
    token = page.findtext("NextToken")
    assert token == ids[3]
    rest = call(api_server.url, "GET", f"/jobs?maxResults=3&nextToken={token}").xml
    assert [m.findtext("JobId") for m in rest.iterfind("Jobs/member")] == [ids[2], ids[1], ids[0]]
    assert rest.find("NextToken") is None
    member = rest.find("Jobs/member")
    assert member is not None
    assert [c.tag for c in member] == [
        "CreationTime",
        "Description",
        "JobId",
        "Operation",
        "Priority",
        "ProgressSummary",
        "Status",
    ]
    cancelled = call(api_server.url, "GET", "/jobs?jobStatuses=Cancelled").xml
    assert [m.findtext("JobId") for m in cancelled.iterfind("Jobs/member")] == [ids[1]]
    assert cancelled.findtext("Jobs/member/TerminationDate")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/jobs?maxResults=0", 400, "InvalidArgument"),
        ("GET", "/jobs?maxResults=1001", 400, "InvalidArgument"),
        ("GET", "/jobs?maxResults=ten", 400, "InvalidArgument"),
        ("GET", "/jobs?jobStatuses=Running", 400, "InvalidArgument"),
        ("GET", "/jobs?nextToken=no-such-job", 400, "InvalidArgument"),
        ("GET", "/jobs?nextToken=" + "x" * 65, 400, "InvalidArgument"),
        ("POST", "/jobs/{id}/priority", 400, "InvalidRequest"),
        ("POST", "/jobs/{id}/priority?priority=high", 400, "InvalidRequest"),
        ("POST", "/jobs/{id}/priority?priority=1&priority=2", 400, "InvalidArgument"),
        ("POST", "/jobs/{id}/status", 400, "InvalidRequest"),
        ("POST", "/jobs/{id}/status?requestedJobStatus=Active", 400, "InvalidArgument"),
        (
            "POST",
            "/jobs/{id}/status?requestedJobStatus=Cancelled&statusUpdateReason=" + "r" * 257,
            400,
            "InvalidArgument",
        ),
        ("GET", "/", 404, "NoSuchResource"),
        ("GET", "/jobs/{id}/other", 404, "NoSuchResource"),
        ("PUT", "/jobs", 405, "MethodNotAllowed"),
        ("GET", "/jobs/{id}/status", 405, "MethodNotAllowed"),
        ("PATCH", "/jobs/{id}", 405, "MethodNotAllowed"),
    ],
)
def test_bad_parameters(api_server: RunningServer, method: str, path: str, status: int, code: str) -> None:
    job_id = job_id_of(create(api_server.url))
    assert_cos_error(call(api_server.url, method, path.replace("{id}", job_id)), status, code)


def test_missing_appid_is_invalid_argument(api_server: RunningServer) -> None:
    assert_cos_error(create(api_server.url, appid=None), 400, "InvalidArgument", "x-cos-appid")
    assert_cos_error(call(api_server.url, "GET", "/jobs", appid=""), 400, "InvalidArgument", "x-cos-appid")
    assert_cos_error(
        call(api_server.url, "GET", "/jobs", appid="a" * 65), 400, "InvalidArgument", "x-cos-appid"
    )


def test_content_md5_is_checked(api_server: RunningServer) -> None:
    reply = create(api_server.url, headers={"Content-MD5": "hHcgq5mu8s0YP4WTGiQ+uA=="})
    assert_cos_error(reply, 400, "InvalidDigest")
    assert_cos_error(create(api_server.url, headers={"Content-MD5": "%%%"}), 400, "InvalidDigest")
    job_id_of(create(api_server.url, md5=False))


def test_content_encoding_is_refused(api_server: RunningServer) -> None:
    reply = create(api_server.url, gzip.compress(SEED), headers={"Content-Encoding": "gzip"})
    assert_cos_error(reply, 400, "InvalidRequest", "Content-Encoding")


def test_empty_body(api_server: RunningServer) -> None:
    assert_cos_error(create(api_server.url, b""), 400, "InvalidRequest", "empty")


def test_malformed_http_gets_xml_not_html(api_server: RunningServer) -> None:
    port = int(api_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /jobs HTTP/1.1 trailing-garbage\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.")
    assert b"application/xml" in head
    assert etree.fromstring(body).findtext("Code") == "InvalidRequest"


# --- the server under load and abuse -------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_connections_do_not_leak_store_connections(api_server: RunningServer) -> None:
    # GIVEN a warm server
    call(api_server.url, "GET", "/jobs")
    before = open_fds()
    # WHEN 300 clients connect one after another
    for _ in range(300):
        assert call(api_server.url, "GET", "/jobs").status == 200
    # THEN the process holds about as many files as before (each request borrowed a pooled connection)
    assert open_fds() - before < 20


def test_connections_beyond_the_cap_get_slow_down(sqlite_store: SQLiteJobStore) -> None:
    server = make_server(
        JobsApi(JobService(sqlite_store, max_active_jobs=10)), "127.0.0.1", 0, max_connections=2
    )
    thread = serve_in_thread(server)
    port = server.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        deadline = time.monotonic() + 10
        while server.busy_slots() < 2 and time.monotonic() < deadline:  # wait until both are accepted
            time.sleep(0.01)
        reply = call(server.url, "GET", "/jobs")
        assert_cos_error(reply, 503, "SlowDown")
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()
        thread.join()


def raw_exchange(url: str, payload: bytes, half_close: bool = False) -> tuple[bytes, etree._Element]:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, etree.fromstring(body)


def test_a_body_that_arrives_too_slowly_times_out(sqlite_store: SQLiteJobStore) -> None:
    server = JobsHttpServer(
        ("127.0.0.1", 0), JobsApi(JobService(sqlite_store, max_active_jobs=10)), body_deadline=0.3
    )
    thread = serve_in_thread(server)
    try:
        port = server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /jobs HTTP/1.1\r\nHost: x\r\nx-cos-appid: 1\r\nContent-Length: 100\r\n\r\n<Create"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 400")
        assert etree.fromstring(data.partition(b"\r\n\r\n")[2]).findtext("Code") == "RequestTimeout"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_body_shorter_than_its_length(api_server: RunningServer) -> None:
    head, error = raw_exchange(
        api_server.url,
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nx-cos-appid: 1\r\nContent-Length: 100\r\n\r\n<Create",
        half_close=True,
    )
    assert head.startswith(b"HTTP/1.1 400")
    assert error.findtext("Code") == "IncompleteBody"


def test_non_ascii_digits_are_bad_input_not_crashes(api_server: RunningServer) -> None:
    head, error = raw_exchange(
        api_server.url, b"POST /jobs HTTP/1.1\r\nHost: x\r\nx-cos-appid: 1\r\nContent-Length: \xb2\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 400")
    assert error.findtext("Code") == "InvalidRequest"
    assert_cos_error(call(api_server.url, "GET", "/jobs?maxResults=%C2%B2"), 400, "InvalidArgument")
    assert_cos_error(
        create(api_server.url, SEED.replace(b"<Priority>10", b"<Priority>\xd9\xa1")), 400, "InvalidRequest"
    )


def test_a_reason_xml_cannot_carry_is_refused_and_changes_nothing(api_server: RunningServer) -> None:
    job_id = job_id_of(create(api_server.url))
    reply = call(
        api_server.url,
        "POST",
        f"/jobs/{job_id}/status?requestedJobStatus=Cancelled&statusUpdateReason=%EF%BF%BF",
    )
    assert_cos_error(reply, 400, "InvalidArgument", "statusUpdateReason")
    described = call(api_server.url, "GET", f"/jobs/{job_id}")
    assert described.status == 200
    assert described.xml.findtext("Job/Status") == "New"


def test_a_missing_job_id_is_invalid_request(api_server: RunningServer) -> None:
    assert_cos_error(
        call(api_server.url, "POST", "/jobs//priority?priority=1"), 400, "InvalidRequest", "job ID"
    )
    assert_cos_error(
        call(api_server.url, "POST", "/jobs//status?requestedJobStatus=Ready"), 400, "InvalidRequest"
    )
