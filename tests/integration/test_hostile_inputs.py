"""Hostile input, in one place: every case of tests/integration/hostile_corpus.py sent over real HTTP
to `batchops serve` and, where API Gateway could deliver it, through the jobs API Lambda handler.

Each must get its COS error code and 4xx status in a COS error body, read nothing (a FIFO canary
records any open, a loopback listener any connection), write nothing (the store has no job
afterwards), and put nothing of the client's raw into a response header or an unescaped log line.
The completion report's defence against spreadsheet formulas is checked at the report-row level.
Latency is measured by tests/bench/hostile_latency.py, never asserted here.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from lxml import etree

from batchops.api.auth import CredentialsUnavailableError, Principal, SignatureVerifier
from batchops.api.routes import ApiRequest, JobsApi
from batchops.cos_signature import authorization_for
from batchops.jobs.service import JobService
from batchops.manifest.csv_manifest import iter_csv_tasks
from batchops.report.rows import ReportRow, format_row, parse_row
from batchops.store.base import JobStore
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import RunningServer, create_jobs_table, run_server
from tests.helpers import Reply, call, restore_environment, set_environment
from tests.integration.deployed_harness import load
from tests.integration.hostile_corpus import APPID, CORPUS, SEED_TEXT, Case, Traps
from tests.integration.test_jobs_api_lambda import FakeContext, event

RESPONSE_HEADERS = {
    "content-type",
    "content-length",
    "x-cos-request-id",
    "x-cos-trace-id",
    "server",
    "date",
    "connection",
}
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: none may reach a log line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HEADER_VALUE = re.compile("[\x20-\x7e]*")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


# --- the traps -------------------------------------------------------------------------------------


@contextlib.contextmanager
def fifo_canary(directory: Path) -> Iterator[Path]:
    """A FIFO standing in for a secret file; fails the test if anything opened it to read."""
    fifo = directory / "secret.txt"
    os.mkfifo(fifo)
    opened_by_other = threading.Event()
    releasing = threading.Event()

    def watch() -> None:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until some reader opens the FIFO
        if not releasing.is_set():
            opened_by_other.set()
        with contextlib.suppress(OSError):
            os.write(fd, b"CANARY-91ab")
        os.close(fd)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield fifo
    finally:
        releasing.set()
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # let the watcher finish
        watcher.join(timeout=5)
        os.close(reader)
    assert not opened_by_other.is_set(), "something opened the secret file"


@contextlib.contextmanager
def loopback_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback TCP listener that records whatever connects to it."""
    seen: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.05)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    seen.append(conn.recv(4096) or b"(connected)")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def traps(tmp_path: Path) -> Iterator[Traps]:
    with fifo_canary(tmp_path) as canary, loopback_listener() as (port, seen):
        yield Traps(canary, port)
        assert seen == [], "something connected to the loopback listener"


# --- what every answer must be ---------------------------------------------------------------------


def assert_refused(case: Case, status: int, headers: dict[str, str], body: bytes) -> None:
    assert (status, _code(body)) == (case.status, case.code), body[:300]
    assert headers["content-type"] == "application/xml"
    assert [child.tag for child in etree.fromstring(body)] == [
        "Code",
        "Message",
        "Resource",
        "RequestId",
        "TraceId",
    ]
    assert b"CANARY" not in body
    assert set(headers) <= RESPONSE_HEADERS, set(headers) - RESPONSE_HEADERS
    for name, value in headers.items():
        assert _HEADER_VALUE.fullmatch(value), (name, value)
    assert len(headers["x-cos-trace-id"]) <= 256


def _code(body: bytes) -> str | None:
    try:
        return etree.fromstring(body).findtext("Code")
    except etree.XMLSyntaxError:
        return None


def assert_logs_escaped(records: list[logging.LogRecord]) -> None:
    for record in records:
        message = record.getMessage()
        assert not _CONTROL.search(message), message


def assert_no_job(store: JobStore, appid: str = APPID) -> None:
    assert store.list_jobs(appid, None, 10, None).records == []


# --- `batchops serve` --------------------------------------------------------------------------------


@pytest.fixture
def served(sqlite_store: SQLiteJobStore) -> Iterator[RunningServer]:
    yield from run_server(JobService(sqlite_store, max_active_jobs=10))


def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would, and read the answer as bytes, header lines and all."""
    split = urlsplit(url)
    with socket.create_connection((split.hostname or "127.0.0.1", split.port or 80), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before reading it all
            sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            assert not line[:1].isspace(), f"a folded response header: {line!r}"
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        while len(body) < int(headers["content-length"]) and (chunk := sock.recv(65536)):
            body += chunk
    return int(status_line.split()[1]), headers, body


def over_http(url: str, case: Case, traps: Traps) -> tuple[int, dict[str, str], bytes]:
    if case.raw is not None:
        return raw_exchange(url, case.raw(traps))
    reply = call(url, case.method, case.path, case.body_for(traps), headers=case.headers, md5=False)
    return reply.status, reply.headers, reply.body


@pytest.mark.parametrize("case", [c for c in CORPUS if c.serve], ids=lambda c: c.name)
def test_batchops_serve_refuses_it_reading_and_writing_nothing(
    case: Case,
    served: RunningServer,
    sqlite_store: SQLiteJobStore,
    traps: Traps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN `batchops serve` on an empty store, a secret file and a listener that record any use
    caplog.set_level(logging.INFO)
    # WHEN the hostile request arrives over HTTP
    status, headers, body = over_http(served.url, case, traps)
    # THEN its COS error, nothing forged into a header or a log line, nothing read, nothing written
    assert_refused(case, status, headers, body)
    assert caplog.records, "the request was logged"
    assert_logs_escaped(caplog.records)
    assert_no_job(sqlite_store)


# --- the jobs API Lambda function -------------------------------------------------------------------


@dataclass
class Gateway:
    handler: ModuleType
    store: DynamoDBJobStore


@pytest.fixture(scope="module")
def gateway(moto_endpoint: str) -> Iterator[Gateway]:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    table = create_jobs_table(dynamodb, f"jobs-hostile-{uuid.uuid4().hex[:8]}")
    env = {"JOBS_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint}
    # The environment stays while the function is used: it builds its clients on first use.
    saved = set_environment(env)
    try:
        module = load(f"jobs_api_hostile_{uuid.uuid4().hex[:8]}", "functions/jobs_api/app.py")
        yield Gateway(module, DynamoDBJobStore(table, dynamodb))
    finally:
        restore_environment(saved)


def gateway_event(case: Case, traps: Traps, appid: str) -> dict[str, Any]:
    """The API Gateway REST proxy event for the case (the path decoded, a binary body in base64)."""
    payload = event("create_job.json")
    path, _, query = case.path.partition("?")
    headers = {"Host": payload["headers"]["Host"], "x-cos-appid": appid, "Content-Type": "application/xml"}
    headers.update(case.headers)
    params = parse_qs(query, keep_blank_values=True)
    body = case.body_for(traps)
    text: str | None = None
    binary = False
    if body is not None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, binary = base64.b64encode(body).decode(), True
    payload.update(
        path=unquote(path),
        httpMethod=case.method,
        resource="/jobs" if path == "/jobs" else "/jobs/{proxy+}",
        headers=headers,
        multiValueHeaders={name: [value] for name, value in headers.items()},
        queryStringParameters={name: values[-1] for name, values in params.items()} or None,
        multiValueQueryStringParameters=params or None,
        body=text,
        isBase64Encoded=binary,
    )
    payload["requestContext"].update(httpMethod=case.method, resourcePath=payload["resource"])
    return payload


@pytest.mark.parametrize("case", [c for c in CORPUS if c.gateway], ids=lambda c: c.name)
def test_the_lambda_handler_refuses_it_reading_and_writing_nothing(
    case: Case, gateway: Gateway, traps: Traps, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the jobs API function as Lambda runs it, and an appid of this case alone (the table
    # is shared by the cases, so one case that wrote would not fail the others)
    caplog.set_level(logging.INFO)
    appid = f"hostile-{uuid.uuid4().hex[:12]}"
    # WHEN API Gateway hands it the hostile request
    result = gateway.handler.lambda_handler(gateway_event(case, traps, appid), FakeContext())
    # THEN the same COS error, and nothing forged, read or written
    headers = {name.lower(): values[-1] for name, values in (result.get("multiValueHeaders") or {}).items()}
    assert_refused(case, result["statusCode"], headers, (result.get("body") or "").encode())
    assert_logs_escaped(caplog.records)
    assert_no_job(gateway.store, appid)


class _KeysUnreachable:
    def principal(self, key_id: str) -> Principal | None:
        raise CredentialsUnavailableError("the key store does not answer")


def test_a_server_error_logs_the_clients_path_escaped(
    sqlite_store: SQLiteJobStore, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an API whose keys cannot be read, so that every request is a 5xx, which is logged
    api = JobsApi(
        JobService(sqlite_store, max_active_jobs=10), verifier=SignatureVerifier(_KeysUnreachable())
    )
    caplog.set_level(logging.INFO)
    # WHEN a signed request names a path with CR, LF and ESC in it
    path = "/jobs/a\r\nINFO forged line\x1b[2J"
    authorization = authorization_for(
        method="GET", path=path, params={}, headers={}, secret_id="AKID", secret_key="s", now=1_000_000
    )
    response = api.handle(ApiRequest("GET", path, headers={"authorization": authorization}))
    # THEN 500 ServiceUnavailable, and the log line quotes the path with its control characters escaped
    assert (response.status, response.error_code) == (500, "ServiceUnavailable")
    assert any("forged line" in r.getMessage() for r in caplog.records)
    assert_logs_escaped(caplog.records)


# --- the controls: what is refused is the attack, not the encoding or the header --------------------


def test_utf16_itself_is_xml_and_a_plain_trace_id_is_echoed(api_server: RunningServer) -> None:
    # GIVEN the seed request in UTF-16 with a BOM, and a client trace id that is one plain token
    body = SEED_TEXT.encode("utf-16")
    # WHEN it is sent
    reply = call(api_server.url, "POST", "/jobs", body, headers={"x-cos-trace-id": "trace-1.2:3/4+5="})
    # THEN it creates its job (the UTF-16 refusals above are for their DOCTYPE) and the id comes back
    assert reply.status == 200, reply.body
    assert reply.headers["x-cos-trace-id"] == "trace-1.2:3/4+5="
    assert Reply(reply.status, reply.headers, reply.body).xml.findtext("JobId")


# --- the completion report: CSV (formula) injection -------------------------------------------------

REPORT_FIELDS = ["Bucket", "Key", "VersionId", "Ignore", "Ignore", "Ignore", "Ignore"]


@pytest.mark.parametrize(
    "key",
    [
        '=HYPERLINK("http://127.0.0.1/x","click")',
        "=cmd|' /C calc'!A0",
        "+1+1",
        "-1-1",
        "-A1-B1",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(A1:A2)",
        "\t=1",
        "\r=1",
        "-",
    ],
)
def test_a_report_key_never_starts_like_a_formula_and_still_names_its_object(key: str) -> None:
    # GIVEN a failed task on a key a spreadsheet would run as a formula, with the key in its message
    row = ReportRow("bucket-1250000000", key, None, False, 404, key, f"{key} does not exist")
    # WHEN its report line is written
    line = format_row(row)
    cells = next(csv.reader(io.StringIO(line, newline="")))
    # THEN no cell starts like a formula: the key is URL-encoded (a leading '-' as %2D),
    # the error code and message get a leading "'"
    assert not any(cell.startswith(FORMULA_TRIGGERS) for cell in cells), cells
    assert cells[5].startswith("'") and cells[6].startswith("'")
    # AND fed back as a manifest (the way to retry failed tasks), the line names the same object
    (task,) = iter_csv_tasks(io.BytesIO(line.encode()), REPORT_FIELDS)
    assert (task.bucket, task.key, task.version_id) == ("bucket-1250000000", key, None)
    assert parse_row(line).key == key
