"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from batchops.api.routes import JobsApi
from batchops.cli.main import local_service
from batchops.cli.server import make_server, serve_in_thread
from batchops.engine.embedded import EmbeddedDispatcher
from batchops.engine.phases import Engine
from batchops.engine.settings import EngineSettings
from batchops.store.sqlite import SQLiteJobStore
from tests.fault_proxy import FaultProxy
from tests.faults import route_through
from tests.integration.deployed_harness import Deployment, deployment_fixture
from tests.integration.jobs_harness import Service, engine_settings


@pytest.fixture
def make_service(moto_endpoint: str, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[tuple[Any, ...]] = []
    proxies: list[FaultProxy] = []

    def start(
        settings: EngineSettings | None = None,
        workers_started: bool = True,
        s3_attempts: int = 3,
        busy_timeout: float = 30.0,
    ) -> Service:
        store = SQLiteJobStore(tmp_path / f"jobs-{len(started)}.db", busy_timeout=busy_timeout)
        config = Config(retries={"mode": "standard", "max_attempts": s3_attempts}, max_pool_connections=64)
        # S3 through a fault proxy: the engine's lean client sends without botocore's hooks
        proxy = FaultProxy(moto_endpoint)
        proxies.append(proxy)
        s3 = boto3.client("s3", endpoint_url=proxy.url, config=config)
        route_through(s3, proxy)
        service = local_service(store, max_active_jobs=100)
        engine = Engine(service, store, s3, settings or engine_settings())
        dispatcher = EmbeddedDispatcher(engine, store)
        server = make_server(JobsApi(service), "127.0.0.1", 0)
        thread = serve_in_thread(server)
        if workers_started:
            dispatcher.start()
        started.append((server, thread, dispatcher, engine, store))
        return Service(server.url, s3, store, dispatcher)

    yield start
    for server, thread, dispatcher, engine, store in started:
        server.shutdown()
        server.server_close()
        thread.join()
        dispatcher.stop()
        engine.close()
        store.close()
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def deployment(moto_endpoint: str, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The stack's table and queues on moto, both functions imported as Lambda imports them."""
    yield from deployment_fixture(moto_endpoint, request)
