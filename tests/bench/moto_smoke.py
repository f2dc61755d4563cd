"""End to end on moto: one smoke figure with real S3 semantics (performance.md ratio R3).

moto cannot rank clients (it is the bottleneck at a few hundred requests per second, see
performance.md §1), so the other scenarios run against the stub. This one runs the same copy
job against a moto server on 127.0.0.1, where every object really exists and every copy really
lands: bare boto3 with a ThreadPool of 32 (``peer_boto3.py``) beside ``batchops run
--until-idle`` with 32 tasks in flight, interleaved, repeated, medians. A boto3 run counts only if
every call succeeded and the destination then holds every key; a batchops run only if its job
ended Complete with a report of one succeeded row per task (read back from moto, MD5 checked).

R3 = batchops tasks/s ÷ boto3 ThreadPool 32 tasks/s, start-up wall time left out of both.
``python -m tests.bench.moto_smoke [--quick]``; writes ``bench-results/moto_smoke.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from tests.bench import batchops_job
from tests.bench.batchops_job import DESTINATION_BUCKET, MANIFEST_BUCKET, REPORT_BUCKET, SOURCE_BUCKET
from tests.bench.measure import ROOT, Measurement, peer_env, run_measured
from tests.bench.peer_boto3 import key_of
from tests.bench.peers import BATCHOPS, PEER_BOTO3, PREFIX

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

IN_FLIGHT = 32
OBJECT = b"x" * 1024


def start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def seed(s3: S3Client, n: int, scratch: Path) -> tuple[str, str]:
    """Buckets, ``n`` source objects and the job's manifest on moto: (manifest key, ETag)."""
    for bucket in (SOURCE_BUCKET, DESTINATION_BUCKET, MANIFEST_BUCKET, REPORT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(Bucket=SOURCE_BUCKET, Key=key_of(PREFIX, i), Body=OBJECT), range(n)
            )
        )
    manifest_key, etag = batchops_job.write_manifest(scratch, n, PREFIX)
    body = (scratch / MANIFEST_BUCKET / manifest_key).read_bytes()
    s3.put_object(Bucket=MANIFEST_BUCKET, Key=manifest_key, Body=body)
    return manifest_key, etag


def empty_destination(s3: S3Client) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=DESTINATION_BUCKET):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=DESTINATION_BUCKET, Delete={"Objects": keys, "Quiet": True})  # type: ignore[typeddict-item]


def destination_count(s3: S3Client) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=DESTINATION_BUCKET, Prefix=PREFIX)
    return sum(page.get("KeyCount", 0) for page in pages)


def run_boto3(
    endpoint: str, s3: S3Client, n: int, scratch: Path, timeout: float
) -> tuple[Measurement, str | None]:
    cmd = [sys.executable, str(PEER_BOTO3), "--endpoint", endpoint, "--op", "copy", "--n", str(n)]
    cmd += ["--threads", str(IN_FLIGHT), "--prefix", PREFIX]
    result = run_measured(cmd, peer_env(endpoint, scratch), timeout)
    if not result.ok:
        return result, f"exit {result.exit_code}: {result.stderr_tail[-300:]}"
    found = destination_count(s3)
    return result, None if found == n else f"destination holds {found} of {n} copies"


def run_batchops(
    endpoint: str, s3: S3Client, n: int, scratch: Path, manifest: tuple[str, str], *, timeout: float
) -> tuple[Measurement, str | None]:
    db = scratch / "jobs.db"
    job_id = batchops_job.create_job(db, "copy", *manifest)
    env = peer_env(endpoint, scratch, BATCHOPS_WORKERS="1", BATCHOPS_TASK_CONCURRENCY=str(IN_FLIGHT))
    env["PYTHONPATH"] = str(ROOT / "layers" / "batchops")
    result = run_measured([*BATCHOPS.command, "run", "--until-idle", "--db", str(db)], env, timeout)
    if not result.ok:
        return result, f"exit {result.exit_code}: {result.stderr_tail[-300:]}"
    found = destination_count(s3)
    problem = batchops_job.check_job(db, job_id, n, s3)
    return result, problem or (None if found == n else f"destination holds {found} of {n} copies")


def zero_runs(endpoint: str, scratch: Path, timeout: float) -> dict[str, float]:
    """Each program's start-up wall time (median of three zero-work runs), left out of its tasks/s."""
    boto3_zero = [sys.executable, str(PEER_BOTO3), "--endpoint", endpoint, "--op", "copy", "--n", "0"]
    env = peer_env(endpoint, scratch)
    env["PYTHONPATH"] = str(ROOT / "layers" / "batchops")
    batchops_zero = [*BATCHOPS.command, "run", "--until-idle", "--db", str(scratch / "zero.db")]
    return {
        name: statistics.median(run_measured(cmd, env, timeout).wall_s for _ in range(3))
        for name, cmd in (("boto3 ThreadPool 32", boto3_zero), ("batchops", batchops_zero))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="500 objects, one repeat")
    parser.add_argument("--objects", type=int, help="objects to copy (default 2,000; 500 with --quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args(argv)
    n, repeats, timeout = (500, 1, 120.0) if args.quick else (2_000, 3, 300.0)
    n = args.objects or n
    server, endpoint = start_moto()
    samples: dict[str, list[float]] = {"boto3 ThreadPool 32": [], "batchops": []}
    errors: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="batchops-moto-") as work:
            scratch = Path(work)
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            manifest = seed(s3, n, scratch)
            startup = zero_runs(endpoint, scratch, timeout)
            for repeat in range(repeats):
                order = ["boto3 ThreadPool 32", "batchops"]
                for name in order[repeat % 2 :] + order[: repeat % 2]:
                    empty_destination(s3)
                    run_dir = scratch / f"{repeat}-{name.split()[0]}"
                    run_dir.mkdir()
                    if name == "batchops":
                        result, problem = run_batchops(endpoint, s3, n, run_dir, manifest, timeout=timeout)
                    else:
                        result, problem = run_boto3(endpoint, s3, n, run_dir, timeout)
                    if problem:
                        errors.append(f"{name}: {problem}")
                        continue
                    rate = n / max(result.wall_s - startup[name], 1e-6)
                    samples[name].append(rate)
                    print(f"moto smoke {name}: {rate:,.0f} tasks/s", file=sys.stderr)
    finally:
        server.stop()
    medians = {name: statistics.median(rates) for name, rates in samples.items() if rates}
    ratio = medians["batchops"] / medians["boto3 ThreadPool 32"] if len(medians) == len(samples) else None
    figures = {"objects": n, "repeats": repeats, "in_flight": IN_FLIGHT, "tasks_per_s": medians,
               "runs": samples, "startup_wall_s": startup, "r3": ratio, "errors": errors}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "moto_smoke.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n## Moto smoke: copy of {n:,} objects of 1 KiB, {IN_FLIGHT} in flight, moto on 127.0.0.1\n")
    print("| peer | tasks/s (median) |\n|---|---|")
    for name, rate in medians.items():
        print(f"| {name} | {rate:,.0f} |")
    print(f"\nR3 = batchops ÷ boto3 ThreadPool 32: {'-' if ratio is None else f'{ratio:.2f}'} (goal ≥ 0.9)")
    for error in errors:
        print(f"FAILED: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
