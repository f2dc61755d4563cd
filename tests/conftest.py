"""Shared fixtures: a moto server on 127.0.0.1, job stores built from template.yaml, the API server.

Every AWS call in the suite goes over HTTP to the moto server; credentials are fake and set here,
before any boto3 client exists, so nothing can reach a real account.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from batchops.api.routes import JobsApi
from batchops.cli.server import JobsHttpServer, make_server, serve_in_thread
from batchops.clients import STORE_CLIENT_CONFIG
from batchops.jobs.service import JobService
from batchops.store.base import JobStore
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.sqlite import SQLiteJobStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SEED_XML = ROOT / "layers" / "batchops" / "batchops" / "cli" / "examples" / "create-job.xml"

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # A client a test forgets to point at moto talks to a closed loopback port, never to AWS.
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")


def template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    parsed: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text())
    return parsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serialise_moto_dynamodb_writes() -> None:
    """Make moto's DynamoDB writes atomic, as DynamoDB's are.

    The threaded moto server runs requests concurrently and its backend checks a condition and
    writes without a lock, so two conditional writes on one version could both pass; real
    DynamoDB serialises writes to an item. The contract tests race writers on purpose.
    """
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_batchops_serialised", False):
        return
    lock = threading.RLock()

    def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return locked

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(DynamoDBBackend, name, serialised(getattr(DynamoDBBackend, name)))
    DynamoDBBackend._batchops_serialised = True  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    _serialise_moto_dynamodb_writes()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def dynamodb(moto_endpoint: str) -> DynamoDBClient:
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, config=STORE_CLIENT_CONFIG)


@pytest.fixture
def s3(moto_endpoint: str) -> S3Client:
    """An S3 client on the moto server, with explicit retries as the engine's clients have."""
    config = Config(retries={"mode": "standard", "max_attempts": 4}, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=moto_endpoint, config=config)


def new_bucket(s3: S3Client, versioned: bool = False) -> str:
    name = f"b-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def create_jobs_table(client: DynamoDBClient, name: str) -> str:
    """Create the jobs table exactly as template.yaml declares it, so the two cannot drift."""
    props = template()["Resources"]["JobsTable"]["Properties"]
    client.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        BillingMode=props["BillingMode"],
    )
    return name


@pytest.fixture
def jobs_table(dynamodb: DynamoDBClient) -> str:
    return create_jobs_table(dynamodb, f"jobs-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    """Each store implementation, for the contract suite."""
    built: JobStore
    if request.param == "sqlite":
        built = SQLiteJobStore(tmp_path / "jobs.db")
    else:
        client = request.getfixturevalue("dynamodb")
        built = DynamoDBJobStore(request.getfixturevalue("jobs_table"), client)
    yield built
    built.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteJobStore]:
    built = SQLiteJobStore(tmp_path / "jobs.db")
    yield built
    built.close()


class RunningServer:
    def __init__(self, server: JobsHttpServer, service: JobService) -> None:
        self.server = server
        self.service = service
        self.url = server.url


def run_server(service: JobService) -> Iterator[RunningServer]:
    server = make_server(JobsApi(service), "127.0.0.1", 0)
    thread = serve_in_thread(server)
    try:
        yield RunningServer(server, service)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def api_server(sqlite_store: SQLiteJobStore) -> Iterator[RunningServer]:
    """The `batchops serve` HTTP server on a SQLite store, in this process, on a free port."""
    yield from run_server(JobService(sqlite_store, max_active_jobs=1000))
