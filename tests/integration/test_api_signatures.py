"""COS request signatures on `batchops serve` when credentials are configured, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchops.api.auth import Principal, SignatureVerifier
from batchops.api.routes import JobsApi
from batchops.cli.client import ApiCallError, JobsClient
from batchops.cli.server import make_server, serve_in_thread
from batchops.cos_signature import sign
from batchops.jobs.service import JobService
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import SEED_XML
from tests.helpers import APPID, Reply, call

KEY_ID, SECRET = "AKIDbatchopstest", "the-secret-key"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    store = SQLiteJobStore(tmp_path / "jobs.db")
    api = JobsApi(JobService(store, max_active_jobs=10), verifier=SignatureVerifier({KEY_ID: SECRET}))
    server = make_server(api, "127.0.0.1", 0)
    thread = serve_in_thread(server)
    yield server.url
    server.shutdown()
    server.server_close()
    thread.join()
    store.close()


def signed_call(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    secret: str = SECRET,
    key_id: str = KEY_ID,
    window: tuple[int, int] | None = None,
    signed_params: dict[str, str | None] | None = None,
    unsigned: tuple[str, ...] = (),
    tamper_md5: bool = False,
    appid: str = APPID,
) -> Reply:
    host = url.removeprefix("http://")
    headers = {"Host": host, "x-cos-appid": appid}
    if body is not None:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        headers["Content-Type"] = "application/xml"
    now = int(time.time())
    start, end = window or (now - 60, now + 600)
    query = path.partition("?")[2]
    params = (
        signed_params if signed_params is not None else dict(p.split("=", 1) for p in query.split("&") if p)
    )
    headers["Authorization"] = sign(
        method=method,
        path=path.partition("?")[0],
        params=params,
        headers={k: v for k, v in headers.items() if k.lower() not in unsigned},
        secret_id=key_id,
        secret_key=secret,
        start=start,
        end=end,
    )
    if tamper_md5 and body is not None:
        body = body.replace(b"<Priority>10", b"<Priority>99")
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    return call(url, method, path, body=body, headers=headers, md5=False)


def code(reply: Reply) -> tuple[int, str | None]:
    return reply.status, reply.code


def test_signed_requests_pass_and_unsigned_ones_do_not(url: str) -> None:
    assert signed_call(url, "POST", "/jobs", SEED_XML.read_bytes()).status == 200
    assert signed_call(url, "GET", "/jobs?maxResults=5").status == 200
    assert code(call(url, "GET", "/jobs")) == (403, "AccessDenied")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"key_id": "AKIDnobody"}, (403, "InvalidAccessKeyId")),
        ({"secret": "wrong"}, (403, "SignatureDoesNotMatch")),
        ({"tamper_md5": True}, (403, "SignatureDoesNotMatch")),
        ({"unsigned": ("content-md5",)}, (403, "AccessDenied")),
        ({"unsigned": ("x-cos-appid",)}, (403, "AccessDenied")),
        ({"window": (1_000_000, 1_000_600)}, (403, "AccessDenied")),
        ({"window": (4_000_000_000, 4_000_000_600)}, (403, "RequestTimeTooSkewed")),
    ],
)
def test_bad_signatures_are_refused_before_anything_is_written(
    url: str, kwargs: dict[str, object], expected: tuple[int, str]
) -> None:
    assert code(signed_call(url, "POST", "/jobs", SEED_XML.read_bytes(), **kwargs)) == expected  # type: ignore[arg-type]
    assert signed_call(url, "GET", "/jobs").xml.find("Jobs/member") is None


def test_a_parameter_added_after_signing_is_refused(url: str) -> None:
    assert code(signed_call(url, "GET", "/jobs?maxResults=5", signed_params={})) == (403, "AccessDenied")


def test_the_cli_client_signs(url: str) -> None:
    client = JobsClient(url, APPID, credentials=(KEY_ID, SECRET))
    job_id = client.create_job(SEED_XML.read_bytes()).root.findtext("JobId")
    assert job_id and client.describe_job(job_id).status == 200
    assert client.update_priority(job_id, 3).status == 200
    with pytest.raises(ApiCallError) as caught:
        JobsClient(url, APPID).list_jobs()
    assert caught.value.code == "AccessDenied"


QCS_ROLE = "qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole"
TENANTS = {
    "AKIDtenantA": Principal(
        "AKIDtenantA", "secret-a", appid="1250000000", uin="100000000001", roles=frozenset({QCS_ROLE})
    ),
    "AKIDtenantB": Principal(
        "AKIDtenantB", "secret-b", appid="1250000001", buckets=frozenset({"shared-bucket"})
    ),
}


@pytest.fixture
def tenants_url(tmp_path: Path) -> Iterator[str]:
    store = SQLiteJobStore(tmp_path / "jobs.db")
    api = JobsApi(JobService(store, max_active_jobs=10), verifier=SignatureVerifier(TENANTS))
    server = make_server(api, "127.0.0.1", 0)
    thread = serve_in_thread(server)
    yield server.url
    server.shutdown()
    server.server_close()
    thread.join()
    store.close()


def as_a(url: str, method: str, path: str, body: bytes | None = None, **kwargs: object) -> Reply:
    return signed_call(url, method, path, body, key_id="AKIDtenantA", secret="secret-a", **kwargs)  # type: ignore[arg-type]


def as_b(url: str, method: str, path: str, body: bytes | None = None) -> Reply:
    return signed_call(url, method, path, body, key_id="AKIDtenantB", secret="secret-b", appid="1250000001")


def test_a_tenant_acts_only_within_its_appid(tenants_url: str) -> None:
    seed = SEED_XML.read_bytes()
    # GIVEN tenant A's job on its own buckets and role
    created = as_a(tenants_url, "POST", "/jobs", seed)
    assert created.status == 200
    job_id = created.xml.findtext("JobId")
    # THEN A may not speak for another appid, B may not use A's buckets, and B cannot see A's job
    assert code(as_a(tenants_url, "GET", "/jobs", appid="1250000001")) == (403, "AccessDenied")
    refused = as_b(tenants_url, "POST", "/jobs", seed.replace(b"184ce261", b"b0000000"))
    assert code(refused) == (403, "AccessDenied")
    assert "not one of your appid's" in refused.message
    assert code(as_b(tenants_url, "GET", f"/jobs/{job_id}")) == (404, "NoSuchJob")
    assert as_b(tenants_url, "GET", "/jobs").xml.find("Jobs/member") is None


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        (QCS_ROLE.encode(), b"qcs::cam::uin/999:roleName/COS_Batch_QcsRole", "not one of your account's"),
        (QCS_ROLE.encode(), b"qcs::cam::uin/100000000001:roleName/Other", "may not pass this role"),
        (
            b"uid/1250000000:destinationbucket-1250000000",
            b"uid/1250000009:destinationbucket-1250000009",
            "TargetResource",
        ),
        (b"sourcebucket-1250000000/manifests", b"someone-elses/manifests", "ObjectArn"),
    ],
)
def test_a_tenant_job_reaching_outside_is_refused_before_anything_is_written(
    tenants_url: str, old: bytes, new: bytes, fragment: str
) -> None:
    reply = as_a(tenants_url, "POST", "/jobs", SEED_XML.read_bytes().replace(old, new))
    assert code(reply) == (403, "AccessDenied")
    assert fragment in reply.message
    assert as_a(tenants_url, "GET", "/jobs").xml.find("Jobs/member") is None
