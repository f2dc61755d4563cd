"""The bare-boto3 peers: the same per-object calls the executor makes, with nothing around them.

Run as a script (it imports only boto3, so its start-up is boto3's):
``python tests/bench/peer_boto3.py --endpoint URL --op copy --n 10000 --threads 32``.
``--threads 0`` is a sequential loop; ``--op delete-objects`` deletes 1,000 keys per request
(Quiet, sequentially): the cheapest way boto3 deletes. ``--n 0`` is the zero-work run whose CPU
is the start-up cost. Prints ``{"done": n, "failed": f}``; exits 1 if any call failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

KEYS_PER_DELETE = 1000


def key_of(prefix: str, n: int) -> str:
    """The n-th benchmark key: the stub's synthetic listing uses the same names."""
    return f"{prefix}{n:08d}"


def call_for(s3: S3Client, op: str, source: str, destination: str) -> Callable[[str], object]:
    if op == "copy":
        return lambda key: s3.copy_object(
            Bucket=destination, Key=key, CopySource={"Bucket": source, "Key": key}
        )
    if op == "delete":
        return lambda key: s3.delete_object(Bucket=source, Key=key)
    if op == "restore":
        return lambda key: s3.restore_object(
            Bucket=source, Key=key, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}}
        )
    raise ValueError(f"unknown operation {op!r}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--op", choices=["copy", "delete", "restore", "delete-objects"], required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--source", default="bench-src")
    parser.add_argument("--destination", default="bench-dst")
    parser.add_argument("--prefix", default="src/obj-")
    args = parser.parse_args()
    config = Config(
        retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=max(10, args.threads)
    )
    s3 = boto3.client("s3", endpoint_url=args.endpoint, config=config)
    keys = [key_of(args.prefix, n) for n in range(args.n)]
    failed = 0
    if args.op == "delete-objects":
        for start in range(0, len(keys), KEYS_PER_DELETE):
            batch = [{"Key": key} for key in keys[start : start + KEYS_PER_DELETE]]
            answer = s3.delete_objects(Bucket=args.source, Delete={"Objects": batch, "Quiet": True})  # type: ignore[typeddict-item]
            failed += len(answer.get("Errors", []))
    else:
        call = call_for(s3, args.op, args.source, args.destination)

        def one(key: str) -> bool:
            try:
                call(key)
            except (ClientError, BotoCoreError):
                return False
            return True

        if args.threads <= 1:
            failed = sum(not one(key) for key in keys)
        else:
            with ThreadPoolExecutor(args.threads) as pool:
                failed = sum(not ok for ok in pool.map(one, keys))
    print(json.dumps({"done": len(keys), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
