"""S5, manifest only: an S3-style inventory (gzip CSV, keys URL-encoded) planned, read and counted.

Three readers of the same gzip data file, each in its own process so its peak RSS is its own:

- ``plan``: what Preparing does, through the engine (``Engine.prepare``): stream the inventory
  from the stub S3 endpoint, check its MD5, decode every key, cut chunks and write them to a
  SQLite ledger. The job must end Ready with one task per row.
- ``tasks``: rows to tasks with keys decoded (``iter_inventory_tasks``) from the local file: the
  reading alone, without S3 or the ledger.
- ``zcat | wc -l``: the physical-ish floor every reader is compared with.

Run by ``tests/bench/run.py``; ``python -m tests.bench.manifest_bench plan|tasks ...`` is the child.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

INVENTORY_BUCKET = "bench-inventory"
FILE_SCHEMA = (
    "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, "
    "ReplicationStatus, EncryptionStatus"
)
ROWS_PER_WRITE = 100_000


@dataclass(frozen=True)
class Inventory:
    rows: int
    data: Path
    """The gzip CSV data file."""
    manifest_key: str
    """Where manifest.json is in the inventory bucket."""
    manifest_etag: str


def inventory_row(n: int) -> str:
    """One S3 Inventory CSV row: every field quoted, the key URL-encoded (%20, %C3%A9), ~190 bytes."""
    # A pseudo-random ETag and size, so the file compresses like a real inventory, not like a pattern.
    mixed = (n * 2654435761) % 2**32
    etag = f"{mixed:08x}{mixed ^ 0x5BD1E995:08x}{(mixed * 31) % 2**32:08x}{mixed ^ 0xDEADBEEF:08x}"
    return (
        f'"bench-src","data/caf%C3%A9/dir%20{n % 1000:03d}/object%20{n:09d}+v.bin","{mixed % 10_000_000}",'
        f'"2026-11-20T03:04:05.000Z","{etag}","STANDARD","false","","SSE-S3"\n'
    )


def ensure_data_file(cache: Path, rows: int) -> Path:
    """The gzip data file of ``rows`` rows, generated once into ``cache`` (reruns reuse it)."""
    path = cache / f"inventory-v1-{rows}.csv.gz"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        # gzip(1) compresses in its own process, on the other core, while this one formats rows.
        gzip_proc = subprocess.Popen(["gzip", "-6", "-c"], stdin=subprocess.PIPE, stdout=out)
        assert gzip_proc.stdin is not None
        for start in range(0, rows, ROWS_PER_WRITE):
            block = "".join(inventory_row(n) for n in range(start, min(rows, start + ROWS_PER_WRITE)))
            gzip_proc.stdin.write(block.encode())
        gzip_proc.stdin.close()
        if gzip_proc.wait() != 0:
            raise RuntimeError("gzip failed while generating the inventory")
    partial.rename(path)
    return path


def land_inventory(objects: Path, data: Path, rows: int) -> Inventory:
    """Put the data file and its manifest.json in the stub's objects directory, as S3 Inventory lands them."""
    data_key = f"data/inventory-{rows}.csv.gz"
    target = objects / INVENTORY_BUCKET / data_key
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(data)
    manifest = {
        "sourceBucket": "bench-src",
        "destinationBucket": f"arn:aws:s3:::{INVENTORY_BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": "1795000000000",
        "fileFormat": "CSV",
        "fileSchema": FILE_SCHEMA,
        "files": [{"key": data_key, "size": data.stat().st_size, "MD5checksum": _md5_file(data)}],
    }
    manifest_key = f"inventory-{rows}/manifest.json"
    body = json.dumps(manifest, indent=2).encode()
    (objects / INVENTORY_BUCKET / manifest_key).parent.mkdir(parents=True, exist_ok=True)
    (objects / INVENTORY_BUCKET / manifest_key).write_bytes(body)
    return Inventory(rows, data, manifest_key, hashlib.md5(body).hexdigest())


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plan(endpoint: str, manifest_key: str, etag: str, db: str, rows: int) -> dict[str, float]:
    """Prepare a job on the inventory through the engine; time only the preparing."""
    import boto3

    from batchops.engine.phases import Engine
    from batchops.engine.settings import EngineSettings
    from batchops.jobs.model import (
        DeleteObject,
        JobSpec,
        Manifest,
        ManifestFormat,
        ManifestLocation,
        ManifestSpec,
        ReportFormat,
        ReportScope,
        ReportSpec,
    )
    from batchops.jobs.service import JobService
    from batchops.jobs.status import JobStatus
    from batchops.settings import DEFAULT_APPID
    from batchops.store.sqlite import SQLiteJobStore

    store = SQLiteJobStore(db)
    service = JobService(store, max_active_jobs=10)
    engine = Engine(service, store, boto3.client("s3", endpoint_url=endpoint), EngineSettings())
    spec = JobSpec(
        client_request_token="bench-plan",
        manifest=Manifest(
            ManifestLocation(f"arn:aws:s3:::{INVENTORY_BUCKET}/{manifest_key}", etag),
            ManifestSpec(ManifestFormat.S3_INVENTORY),
        ),
        operation=DeleteObject(),
        priority=1,
        report=ReportSpec(bucket=None, enabled=False, format=ReportFormat.CSV, scope=ReportScope.ALL_TASKS),
        role_arn="arn:aws:iam::123456789012:role/bench",
    )
    job = service.create(DEFAULT_APPID, spec)
    started, cpu = time.perf_counter(), time.process_time()
    engine.prepare(DEFAULT_APPID, job.job_id)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    prepared = service.get(DEFAULT_APPID, job.job_id)
    engine.close()
    store.close()
    if prepared.status is not JobStatus.READY or prepared.progress.total != rows:
        raise SystemExit(
            f"planning failed: {prepared.status.value}, {prepared.progress.total} tasks, {prepared.failure_reasons}"
        )
    return {
        "tasks": prepared.progress.total,
        "chunks": prepared.chunk_count,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": _peak_rss_mib(),
    }


def tasks(data: str, rows: int) -> dict[str, float]:
    """Rows to tasks, keys decoded, from the local gzip file (no S3, no ledger)."""
    from batchops.manifest.inventory import InventoryFile, InventoryManifest, iter_inventory_tasks

    manifest = InventoryManifest(
        source_bucket="bench-src",
        destination_bucket=INVENTORY_BUCKET,
        file_format="CSV",
        file_schema=tuple(name.strip() for name in FILE_SCHEMA.split(",")),
        files=(InventoryFile("data", Path(data).stat().st_size, _md5_file(Path(data))),),
    )

    def open_file(key: str) -> BinaryIO:
        return Path(data).open("rb")

    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    first = None
    for task in iter_inventory_tasks(manifest, open_file):
        if first is None:
            first = task
        count += 1
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    if count != rows or first is None or first.key != "data/café/dir 000/object 000000000 v.bin":
        raise SystemExit(f"reading failed: {count} tasks, first {first}")
    return {"tasks": count, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": _peak_rss_mib()}


def main() -> int:
    command, *args = sys.argv[1:]
    if command == "plan":
        endpoint, manifest_key, etag, db, rows = args
        result = plan(endpoint, manifest_key, etag, db, int(rows))
    elif command == "tasks":
        data, rows = args
        result = tasks(data, int(rows))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
