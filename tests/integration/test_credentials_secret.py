"""API keys kept in Secrets Manager (moto's, over HTTP): read once per max age, rotations in force,
unknown keys refused after a re-read, an unreadable secret a 500 ServiceUnavailable that writes nothing.

The cache's clock is injected, so "after the max age" is exact and no test sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from batchops.api.auth import SignatureVerifier
from batchops.api.credentials import SecretsManagerCredentials
from batchops.api.routes import JobsApi
from batchops.cli.server import make_server, serve_in_thread
from batchops.clients import STORE_CLIENT_CONFIG
from batchops.cos_signature import authorization_for
from batchops.jobs.service import JobService
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import SEED_XML, create_jobs_table, free_port
from tests.helpers import APPID, Reply, restore_environment, set_environment
from tests.integration.deployed_harness import load
from tests.integration.test_api_signatures import signed_call
from tests.integration.test_cli import BATCHOPS, run
from tests.integration.test_jobs_api_lambda import event, invoke

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

SEED = SEED_XML.read_bytes()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    url: str
    clock: Clock
    store: SQLiteJobStore
    reads: list[str] = field(default_factory=list)
    """One entry per GetSecretValue call the API made."""


def secretsmanager(endpoint: str) -> SecretsManagerClient:
    return boto3.client("secretsmanager", endpoint_url=endpoint, config=STORE_CLIENT_CONFIG)


def new_secret(client: SecretsManagerClient, keys: dict[str, Any] | str) -> str:
    text = keys if isinstance(keys, str) else json.dumps(keys)
    return client.create_secret(Name=f"batchops/keys-{uuid.uuid4().hex[:8]}", SecretString=text)["ARN"]


def serve(tmp_path: Path, client: SecretsManagerClient, secret_id: str) -> Iterator[Served]:
    clock = Clock()
    store = SQLiteJobStore(tmp_path / "jobs.db")
    credentials = SecretsManagerCredentials(
        client, secret_id, max_age=300, early_refresh=10, failure_hold=2, clock=clock
    )
    server = make_server(
        JobsApi(JobService(store, max_active_jobs=10), verifier=SignatureVerifier(credentials)),
        "127.0.0.1",
        0,
    )
    served = Served(server.url, clock, store)
    client.meta.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **_: served.reads.append(secret_id)
    )
    thread = serve_in_thread(server)
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        store.close()


@pytest.fixture
def sm(moto_endpoint: str) -> SecretsManagerClient:
    return secretsmanager(moto_endpoint)


@pytest.fixture
def secret_arn(sm: SecretsManagerClient) -> str:
    return new_secret(sm, {"AKIDold": "old-secret", "AKIDtenant": {"secret": "t", "appid": "1250000000"}})


@pytest.fixture
def served(tmp_path: Path, sm: SecretsManagerClient, secret_arn: str) -> Iterator[Served]:
    yield from serve(tmp_path, sm, secret_arn)


def as_key(served: Served, key_id: str, secret: str, method: str = "GET", path: str = "/jobs") -> Reply:
    body = SEED.replace(b"184ce261", uuid.uuid4().hex[:8].encode()) if method == "POST" else None
    return signed_call(served.url, method, path, body, key_id=key_id, secret=secret)


def no_jobs(served: Served) -> bool:
    return served.store.list_jobs(APPID, None, 10, None).records == []


def status_code(reply: Reply) -> tuple[int, str | None]:
    return reply.status, reply.code if reply.status != 200 else None


def test_keys_come_from_the_secret_and_it_is_read_once_per_max_age(served: Served) -> None:
    # GIVEN `batchops serve` whose keys are in a secret
    # WHEN a key of the secret signs several requests within the max age
    replies = [as_key(served, "AKIDold", "old-secret", "POST") for _ in range(3)]
    replies += [as_key(served, "AKIDtenant", "t") for _ in range(3)]
    # THEN all are served, on one read of the secret
    assert [r.status for r in replies] == [200] * 6
    assert len(served.reads) == 1
    # AND tenant bindings in the secret hold as they do inline
    assert status_code(as_key(served, "AKIDold", "wrong")) == (403, "SignatureDoesNotMatch")
    assert status_code(
        signed_call(served.url, "GET", "/jobs", key_id="AKIDtenant", secret="t", appid="9")
    ) == (
        403,
        "AccessDenied",
    )


def test_a_rotation_is_in_force_once_the_max_age_has_passed(
    served: Served, sm: SecretsManagerClient, secret_arn: str
) -> None:
    assert as_key(served, "AKIDold", "old-secret").status == 200
    # GIVEN a rotation that replaces the old key by a new one (a new AWSCURRENT version)
    sm.put_secret_value(SecretId=secret_arn, SecretString=json.dumps({"AKIDnew": "new-secret"}))
    # WHEN the old key signs before the max age has passed THEN it still works, unread
    served.clock.now += 299
    assert as_key(served, "AKIDold", "old-secret").status == 200
    assert len(served.reads) == 1
    # WHEN the max age has passed THEN the new version is read: the old key is unknown, the new one works
    served.clock.now += 1
    assert status_code(as_key(served, "AKIDold", "old-secret")) == (403, "InvalidAccessKeyId")
    assert as_key(served, "AKIDnew", "new-secret", "POST").status == 200
    assert len(served.reads) == 2


def test_an_added_key_works_early_and_an_unknown_one_is_refused_after_a_reread(
    served: Served, sm: SecretsManagerClient, secret_arn: str
) -> None:
    assert as_key(served, "AKIDold", "old-secret").status == 200
    # GIVEN a rotation that adds a key
    sm.put_secret_value(
        SecretId=secret_arn, SecretString=json.dumps({"AKIDold": "old-secret", "AKIDadded": "added"})
    )
    # WHEN the added key signs within the early-refresh interval THEN it is unknown, and nothing is read
    served.clock.now += 5
    assert status_code(as_key(served, "AKIDadded", "added")) == (403, "InvalidAccessKeyId")
    assert len(served.reads) == 1
    # WHEN it signs after the interval, long before the max age THEN the secret is re-read and it works
    served.clock.now += 5
    assert as_key(served, "AKIDadded", "added").status == 200
    assert len(served.reads) == 2
    # WHEN a key that no version has signs, after another interval THEN it is re-read and still unknown
    served.clock.now += 10
    assert status_code(as_key(served, "AKIDnobody", "x", "POST")) == (403, "InvalidAccessKeyId")
    assert len(served.reads) == 3
    # AND unknown keys in a burst cost no further reads
    for _ in range(5):
        assert status_code(as_key(served, "AKIDnobody", "x")) == (403, "InvalidAccessKeyId")
    assert len(served.reads) == 3
    assert no_jobs(served)


def test_an_unreachable_secrets_manager_is_a_service_unavailable_that_writes_nothing(tmp_path: Path) -> None:
    # GIVEN Secrets Manager on a loopback port where nothing listens
    client = boto3.client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1),
    )
    for served in serve(tmp_path, client, "batchops/keys"):
        # WHEN a signed CreateJob arrives
        reply = as_key(served, "AKIDold", "old-secret", "POST")
        # THEN a COS ServiceUnavailable with 500, and no job
        assert status_code(reply) == (500, "ServiceUnavailable")
        assert reply.headers["content-type"] == "application/xml"
        assert "retry" in reply.message
        assert no_jobs(served)
        # AND requests right after it are refused without another attempt
        assert status_code(as_key(served, "AKIDold", "old-secret")) == (500, "ServiceUnavailable")
        assert len(served.reads) == 1
        served.clock.now += 2
        assert status_code(as_key(served, "AKIDold", "old-secret")) == (500, "ServiceUnavailable")
        assert len(served.reads) == 2


@pytest.mark.parametrize(
    "secret_string",
    ["CANARY not json", json.dumps({"AKIDx": {"appid": "CANARY"}}), json.dumps(["CANARY"])],
)
def test_a_secret_that_is_not_credentials_is_a_service_unavailable_and_is_not_logged(
    tmp_path: Path, sm: SecretsManagerClient, secret_string: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a secret whose value is not credentials JSON
    arn = new_secret(sm, secret_string)
    for served in serve(tmp_path, sm, arn):
        # WHEN a request arrives THEN 500 ServiceUnavailable, no job, and the log names the secret but not its value
        assert status_code(as_key(served, "AKIDx", "s", "POST")) == (500, "ServiceUnavailable")
        assert no_jobs(served)
    assert any(arn in r.getMessage() for r in caplog.records)
    assert not any("CANARY" in r.getMessage() for r in caplog.records)


def test_a_deleted_secret_is_a_service_unavailable_once_the_cached_keys_expire(
    served: Served, sm: SecretsManagerClient, secret_arn: str
) -> None:
    assert as_key(served, "AKIDold", "old-secret").status == 200
    sm.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
    served.clock.now += 300
    # Refused rather than checked against keys that may have been revoked since
    assert status_code(as_key(served, "AKIDold", "old-secret")) == (500, "ServiceUnavailable")


def test_the_lambda_jobs_api_reads_its_keys_from_the_secret(
    moto_endpoint: str, sm: SecretsManagerClient, secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = create_jobs_table(
        boto3.client("dynamodb", endpoint_url=moto_endpoint), f"jobs-{uuid.uuid4().hex[:8]}"
    )

    # The job store's client is built on first use, so its endpoint stays set; the keys' client
    # is built at init, so each function keeps the Secrets Manager endpoint it was loaded with.
    monkeypatch.setenv("JOBS_TABLE", table)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)

    def handler(secrets_endpoint: str) -> Any:
        env = {
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets_endpoint,
            "BATCHOPS_CREDENTIALS_SECRET": secret_arn,
        }
        saved = set_environment(env)
        try:
            return load(f"jobs_api_secret_{uuid.uuid4().hex[:8]}", "functions/jobs_api/app.py")
        finally:
            restore_environment(saved)

    def signed_create(token: str) -> dict[str, Any]:
        payload = event("create_job.json")
        payload["body"] = payload["body"].replace("184ce261", token)
        payload["headers"].pop("Content-MD5")
        payload["multiValueHeaders"].pop("Content-MD5")
        md5 = base64.b64encode(hashlib.md5(payload["body"].encode()).digest()).decode()
        payload["headers"]["Content-MD5"] = md5
        payload["multiValueHeaders"]["Content-MD5"] = [md5]
        authorization = authorization_for(
            method="POST",
            path=payload["path"],
            params={},
            headers={
                k: v
                for k, v in payload["headers"].items()
                if k in ("Host", "x-cos-appid", "Content-MD5", "Content-Type")
            },
            secret_id="AKIDold",
            secret_key="old-secret",
            now=int(time.time()),
        )
        payload["headers"]["Authorization"] = authorization
        payload["multiValueHeaders"]["Authorization"] = [authorization]
        return payload

    # GIVEN the function configured as the template configures it with CredentialsSecretArn
    module = handler(moto_endpoint)
    # WHEN a request signed by a key of the secret arrives THEN the job is created
    status, _, result = invoke(module, signed_create("a0000001"))
    assert status == 200 and result is not None and result.findtext("JobId")
    # GIVEN the same function where Secrets Manager cannot be reached
    cut_off = handler(f"http://127.0.0.1:{free_port()}")
    # THEN a 500 ServiceUnavailable in the COS error body, and no job
    status, headers, error = invoke(cut_off, signed_create("a0000002"))
    assert (status, error.findtext("Code") if error is not None else None) == (500, "ServiceUnavailable")
    assert headers["content-type"] == ["application/xml"]
    status, _, _ = invoke(module, signed_create("a0000002"))
    assert status == 200, "the refused request must not have written its token"


def test_batchops_serve_takes_the_secret_from_its_flag(
    tmp_path: Path, moto_endpoint: str, secret_arn: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "BATCHOPS_DB": str(tmp_path / "jobs.db"),
        "BATCHOPS_ENDPOINT": f"http://127.0.0.1:{port}",
    }
    server = subprocess.Popen(
        [BATCHOPS, "serve", "--port", str(port), "--no-workers", "--credentials-secret", secret_arn],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    try:
        banner = server.stderr.readline()
        assert f"keys from secret {secret_arn}" in banner, banner
        signed = {**env, "BATCHOPS_SECRET_ID": "AKIDold", "BATCHOPS_SECRET_KEY": "old-secret"}
        assert run("jobs", "list", env=signed).returncode == 0
        refused = run(
            "jobs", "list", env={**env, "BATCHOPS_SECRET_ID": "AKIDold", "BATCHOPS_SECRET_KEY": "x"}
        )
        assert "SignatureDoesNotMatch (HTTP 403)" in refused.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        server.stderr.close()
