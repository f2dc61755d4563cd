"""`batchops demo` (and `make demo`): the main job end to end, on this machine, in about a minute.

A local S3 endpoint (a moto server on 127.0.0.1) gets a source bucket of a few thousand objects,
awkward keys included, and an S3-style inventory of it (gzip CSV data, manifest.json,
manifest.checksum). The submit side turns the landed inventory into a CreateJob through
`batchops serve`'s API; the embedded workers copy every object; the demo shows the progress, the
job summary and the report, then stops everything it started.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import boto3
from botocore.config import Config

from batchops.cli import tables
from batchops.cli.client import JobsClient
from batchops.cli.main import local_api, local_service
from batchops.cli.server import make_server, serve_in_thread
from batchops.engine.embedded import EmbeddedDispatcher
from batchops.engine.phases import Engine
from batchops.engine.settings import EngineSettings
from batchops.settings import DEFAULT_APPID
from batchops.submit.rules import parse_rule
from batchops.submit.service import Submission, Submitter
from batchops.submit.targets import HttpTarget
from batchops.submit.triggers import parse_event

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SEED_REQUEST = "create-job.xml"
OBJECTS = 2000
GONE = 5  # objects deleted after the inventory ran: their tasks fail, as in life
SOURCE, BACKUP, INVENTORY = "demo-source", "demo-backup", "demo-inventory"
INVENTORY_PREFIX = "inventory/demo-source/daily/2026-11-24T01-00Z/"
AWKWARD = [
    "with space.txt",
    "plus+sign.txt",
    "percent%41.txt",
    "literal%2B.txt",
    "caf\u00e9 \u4e2d\u6587.txt",
    'comma,and "quotes".txt',
    "/leading-slash.txt",
]


def seed_request() -> bytes:
    """The CreateJob example of the COS API page the project was created from."""
    return resources.files("batchops.cli").joinpath("examples", SEED_REQUEST).read_bytes()


def run_demo() -> int:
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - a dev dependency, only the demo needs it
    except ImportError:
        print(
            "The demo needs moto's server (`make demo` installs it with the dev dependencies).",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server would log every request
    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3_server.start()
    host, port = s3_server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo",  # noqa: S106 - moto accepts any key
        config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="batchops-demo-") as tmp:
            _step(f"A local S3 endpoint (moto) on {endpoint}; batchops keeps its jobs in {tmp}")
            _main_job(s3, Path(tmp))
    finally:
        s3_server.stop()
    print(
        f"\nDone in {time.monotonic() - started:.0f} s: the S3 endpoint, the API and the workers are stopped."
    )
    return 0


def _main_job(s3: S3Client, tmp: Path) -> None:
    keys = _fill_source(s3)
    checksum_key = _land_inventory(s3, keys)
    for key in keys[-GONE:]:
        s3.delete_object(Bucket=SOURCE, Key=key)
    print(f"({GONE} objects deleted after the inventory ran: their tasks will fail, as they would on S3)")

    api, store = local_api(tmp / "batchops.db", max_active_jobs=100)
    server = make_server(api, "127.0.0.1", 0)
    thread = serve_in_thread(server)
    settings = EngineSettings(
        workers=2, task_concurrency=16, chunk_max_tasks=100
    )  # small chunks: a smooth bar
    engine = Engine(local_service(store, 100), store, s3, settings)
    dispatcher = EmbeddedDispatcher(engine, store)
    dispatcher.start()
    try:
        _step(f"batchops serve: the jobs API on {server.url}, with 2 workers")
        rule = parse_rule(
            {
                "name": "daily-backup",
                "match": {"bucket": INVENTORY, "prefix": "inventory/demo-source/"},
                "operation": {
                    "COSPutObjectCopy": {
                        "TargetResource": f"arn:aws:s3:::{BACKUP}",
                        "StorageClass": "STANDARD_IA",
                    }
                },
                "description": "{rule}: inventory of {date}",
                "report": {"bucket": f"arn:aws:s3:::{BACKUP}", "prefix": "batchops-reports"},
                "roleArn": "arn:aws:iam::123456789012:role/batchops-demo",
            },
            0,
            DEFAULT_APPID,
        )
        submitter = Submitter([rule], s3, HttpTarget(server.url))
        event = _notification(checksum_key)
        _step("The inventory's manifest.checksum lands: the submit function handles the S3 notification")
        (submitted,) = submitter.handle(parse_event(event))
        assert isinstance(submitted, Submission)
        print(f"rule {submitted.rule}: job {submitted.job_id} (ClientRequestToken {submitted.token})")
        (again,) = submitter.handle(parse_event(event))
        assert isinstance(again, Submission)
        state = "already submitted" if again.duplicate else "a second job (a bug!)"
        print(f"the same notification again: {state}, job {again.job_id}")

        _step("The workers run the job")
        client = JobsClient(server.url, DEFAULT_APPID)
        job = _watch(client, submitted.job_id)
        _step("DescribeJob")
        print(tables.describe(job))
        _show_report(s3, submitted.job_id)
    finally:
        dispatcher.stop()
        engine.close()
        server.shutdown()
        server.server_close()
        thread.join()
        store.close()


def _fill_source(s3: S3Client) -> list[str]:
    _step(f"A source bucket of {OBJECTS:,} objects, awkward keys included")
    for bucket in (SOURCE, BACKUP, INVENTORY):
        s3.create_bucket(Bucket=bucket)
    keys = [*AWKWARD, *(f"photos/2026/{n:05d}.jpg" for n in range(OBJECTS - len(AWKWARD)))]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=SOURCE, Key=key, Body=key.encode() * 8), keys))
    print(f"s3://{SOURCE}: {len(keys):,} objects, for example " + ", ".join(repr(k) for k in AWKWARD[:4]))
    return keys


def _land_inventory(s3: S3Client, keys: list[str]) -> str:
    _step("An S3 Inventory of it lands: gzip CSV data, manifest.json, then manifest.checksum")
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for key in keys:
        writer.writerow(
            [SOURCE, quote_plus(key, safe="/"), len(key.encode()) * 8, "2026-11-24T00:30:00.000Z", "STANDARD"]
        )
    data = gzip.compress(out.getvalue().encode())
    data_key = f"inventory/demo-source/daily/data/{hashlib.md5(data).hexdigest()}.csv.gz"  # noqa: S324 - a name
    s3.put_object(Bucket=INVENTORY, Key=data_key, Body=data)
    manifest: dict[str, Any] = {
        "sourceBucket": SOURCE,
        "destinationBucket": f"arn:aws:s3:::{INVENTORY}",
        "version": "2016-11-30",
        "creationTimestamp": "1795480200000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, StorageClass",
        "files": [{"key": data_key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}],  # noqa: S324
    }
    body = json.dumps(manifest, indent=2).encode()
    s3.put_object(Bucket=INVENTORY, Key=f"{INVENTORY_PREFIX}manifest.json", Body=body)
    checksum_key = f"{INVENTORY_PREFIX}manifest.checksum"
    s3.put_object(Bucket=INVENTORY, Key=checksum_key, Body=hashlib.md5(body).hexdigest().encode() + b"\n")  # noqa: S324
    print(f"s3://{INVENTORY}/{INVENTORY_PREFIX}{{manifest.json, manifest.checksum}} and {data_key}")
    return checksum_key


def _notification(key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": INVENTORY}, "object": {"key": quote_plus(key, safe="/")}},
            }
        ]
    }


def _watch(client: JobsClient, job_id: str) -> Any:
    """Poll DescribeJob and draw a progress bar until the job ends."""
    while True:
        root = client.describe_job(job_id).root
        job = root.find("Job")
        assert job is not None
        status = job.findtext("Status") or ""
        total = int(job.findtext("ProgressSummary/TotalNumberOfTasks") or 0)
        succeeded = int(job.findtext("ProgressSummary/NumberOfTasksSucceeded") or 0)
        failed = int(job.findtext("ProgressSummary/NumberOfTasksFailed") or 0)
        done = succeeded + failed
        filled = int(40 * done / total) if total else 0
        sys.stdout.write(
            f"\r[{'#' * filled}{'.' * (40 - filled)}] {done:>5,}/{total:,} tasks  "
            f"{succeeded:,} succeeded  {failed:,} failed  {status:<10}"
        )
        sys.stdout.flush()
        if status in ("Complete", "Failed", "Cancelled"):
            print()
            return root
        time.sleep(0.2)


def _show_report(s3: S3Client, job_id: str) -> None:
    _step("The completion report")
    manifest_key = f"batchops-reports/job-{job_id}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=BACKUP, Key=manifest_key)["Body"].read())
    print(f"s3://{BACKUP}/{manifest_key}")
    print(f"ReportSchema: {manifest['ReportSchema']}")
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read().decode()
        rows = body.splitlines()
        where = f"s3://{result['Bucket']}/{result['Key']}"
        print(f"\n{result['TaskExecutionStatus']}: {where} ({len(rows):,} rows), first rows:")
        for row in rows[:3]:
            print(f"  {row}")
    copies = sum(
        1
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BACKUP)
        for item in page.get("Contents", [])
        if not item["Key"].startswith("batchops-reports/")
    )
    print(f"\ns3://{BACKUP} now holds {copies:,} copies, in STANDARD_IA; the report names the rest")


def _step(title: str) -> None:
    print(f"\n== {title}")
