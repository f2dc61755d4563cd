"""Micro-benchmark of a delete chunk's S3 step: CPU µs per key against the stub S3 endpoint.

``python -m tests.bench.delete_micro [KEYS]`` starts the stub (0 ms) and deletes KEYS keys, 1,000
per request, three ways in this one process, interleaved, best of five: the bare boto3
DeleteObjects loop of S4 (Quiet), ``delete_tasks`` on boto3, and ``delete_tasks`` on the lean
client (the engine's default), the last two quiet once their bucket showed no delete marker.
Process CPU only (the stub's is its own). Not part of ``make bench``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from batchops.ops.delete import MAX_KEYS_PER_REQUEST, delete_tasks
from batchops.s3fast import lean_s3_client
from tests.bench.measure import StubServer
from tests.bench.peer_boto3 import key_of

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

BUCKET = "bench-src"


def client(endpoint: str) -> S3Client:
    config = Config(retries={"mode": "standard", "max_attempts": 3}, s3={"addressing_style": "path"})
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=config,
    )


def measure(keys: int, repeats: int = 5) -> dict[str, float]:
    names = [key_of("src/obj-", n) for n in range(keys)]
    batches = [names[i : i + MAX_KEYS_PER_REQUEST] for i in range(0, keys, MAX_KEYS_PER_REQUEST)]
    with tempfile.TemporaryDirectory() as objects:
        stub = StubServer(Path(objects))
        try:
            plain, lean = client(stub.endpoint), lean_s3_client(client(stub.endpoint))

            def bare() -> None:
                for batch in batches:
                    plain.delete_objects(
                        Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                    )

            def tasks_on(s3: S3Client) -> Callable[[], None]:
                def run() -> None:
                    for batch in batches:
                        outcomes = delete_tasks(s3, [(BUCKET, k, None) for k in batch])
                        assert all(o.succeeded for o in outcomes)

                return run

            ways = {
                "bare_boto3_loop": bare,
                "delete_tasks_boto3": tasks_on(plain),
                "delete_tasks_lean": tasks_on(lean),
            }
            for way in ways.values():
                way()  # warm up (and let delete_tasks see the bucket adds no marker)
            best = dict.fromkeys(ways, float("inf"))
            for _ in range(repeats):
                for name, way in ways.items():
                    started = time.process_time()
                    way()
                    best[name] = min(best[name], time.process_time() - started)
        finally:
            stub.stop()
    return {name: seconds / keys * 1e6 for name, seconds in best.items()}


if __name__ == "__main__":
    figures = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
    print(json.dumps({name: round(us, 2) for name, us in figures.items()}))
