"""Shared pieces of the engine's integration tests: a running embedded service and its requests."""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from lxml import etree

from batchops.engine.embedded import EmbeddedDispatcher
from batchops.engine.settings import EngineSettings
from batchops.store.sqlite import SQLiteJobStore
from tests.helpers import Reply, call

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

AWKWARD_KEYS = [
    "plain.txt",
    "with space.txt",
    "plus+sign.txt",
    "percent%41.txt",
    "literal%2B.txt",
    "unicode-\u4e2d\u6587-caf\u00e9.txt",
    "comma,in,key.txt",
    'quote"in"key.txt',
    "/leading-slash.txt",
    "dir/sub/deep.txt",
]


@dataclass
class Service:
    url: str
    s3: S3Client
    store: SQLiteJobStore
    dispatcher: EmbeddedDispatcher

    def create(self, body: bytes) -> str:
        reply = call(self.url, "POST", "/jobs", body=body)
        assert reply.status == 200, reply.body
        job_id = reply.xml.findtext("JobId")
        assert job_id
        return job_id

    def describe(self, job_id: str) -> etree._Element:
        reply = call(self.url, "GET", f"/jobs/{job_id}")
        assert reply.status == 200, reply.body
        job = reply.xml.find("Job")
        assert job is not None
        return job

    def wait(self, job_id: str, *statuses: str, timeout: float = 60) -> etree._Element:
        deadline = time.monotonic() + timeout
        while True:
            job = self.describe(job_id)
            if job.findtext("Status") in statuses:
                return job
            assert time.monotonic() < deadline, f"job stuck in {job.findtext('Status')}"
            time.sleep(0.05)

    def status(self, job_id: str, requested: str) -> Reply:
        return call(self.url, "POST", f"/jobs/{job_id}/status?requestedJobStatus={requested}")


def engine_settings(**overrides: Any) -> EngineSettings:
    return replace(
        EngineSettings(
            workers=2,
            task_concurrency=8,
            idle_poll_seconds=0.02,
            status_poll_seconds=0.1,
            retry_backoff_seconds=0.01,
            slowdown_pause_seconds=0.01,
        ),
        **overrides,
    )


def csv_manifest(tasks: list[tuple[str, str]]) -> bytes:
    """A COSBatchOperations_CSV_V1 manifest: keys URL-encoded as S3 Inventory writes them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for bucket, key in tasks:
        writer.writerow([bucket, quote_plus(key, safe="/")])
    return out.getvalue().encode()


def put_manifest(s3: S3Client, bucket: str, key: str, body: bytes) -> str:
    return s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]


def request(
    manifest_bucket: str,
    manifest_key: str,
    etag: str,
    operation: str,
    report_bucket: str,
    *,
    token: str = "t-1",
    fields: tuple[str, ...] = ("Bucket", "Key"),
    fmt: str = "COSBatchOperations_CSV_V1",
    scope: str = "AllTasks",
    priority: int = 10,
    confirm: bool = False,
) -> bytes:
    members = "".join(f"<member>{f}</member>" for f in fields)
    spec_fields = f"<Fields>{members}</Fields>" if fields else ""
    return f"""<CreateJobRequest><ClientRequestToken>{token}</ClientRequestToken>
<ConfirmationRequired>{str(confirm).lower()}</ConfirmationRequired><Description>e2e</Description>
<Manifest><Location><ETag>{etag}</ETag><ObjectArn>arn:aws:s3:::{manifest_bucket}/{manifest_key}</ObjectArn></Location>
<Spec>{spec_fields}<Format>{fmt}</Format></Spec></Manifest>
<Operation>{operation}</Operation><Priority>{priority}</Priority>
<Report><Bucket>arn:aws:s3:::{report_bucket}</Bucket><Enabled>true</Enabled><Format>Report_CSV_V1</Format>
<Prefix>reports</Prefix><ReportScope>{scope}</ReportScope></Report>
<RoleArn>arn:aws:iam::123456789012:role/batch</RoleArn></CreateJobRequest>""".encode()


def read_report(s3: S3Client, bucket: str, job_id: str) -> tuple[dict[str, Any], dict[str, list[list[str]]]]:
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"reports/job-{job_id}/manifest.json")["Body"].read()
    )
    return manifest, result_rows(s3, manifest)


def result_rows(s3: S3Client, manifest: dict[str, Any]) -> dict[str, list[list[str]]]:
    """The rows of every results file a report's manifest.json lists, by TaskExecutionStatus
    (a status may span several files), each file checked against its MD5."""
    rows: dict[str, list[list[str]]] = {}
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == result["MD5Checksum"], result["Key"]
        rows.setdefault(result["TaskExecutionStatus"], []).extend(
            csv.reader(io.StringIO(body.decode(), newline=""))
        )
    return rows


def land_inventory(s3: S3Client, bucket: str, prefix: str, cos: bool = False) -> str:
    """An inventory as S3 (or COS) writes it; returns manifest.json's ETag."""
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    rows = "".join(f'"example-source-bucket","obj/{n}","{n}"\n' for n in range(5)).encode()
    data = gzip.compress(rows)
    data_key = f"{prefix}data/{uuid.uuid4().hex}.csv.gz"
    s3.put_object(Bucket=bucket, Key=data_key, Body=data)
    if cos:
        manifest = {
            "sourceAppid": "1250000000",
            "sourceBucket": "examplebucket",
            "destinationBucket": bucket,
            "fileFormat": "CSV",
            "fileSchema": "Appid, Bucket, Key",
            "files": [
                {"key": data_key, "size": str(len(data)), "md5Checksum": hashlib.md5(data).hexdigest()}
            ],
        }
        rows_cos = "".join(f'"1250000000","examplebucket","obj/{n}"\n' for n in range(5)).encode()
        data = gzip.compress(rows_cos)
        s3.put_object(Bucket=bucket, Key=data_key, Body=data)
        manifest["files"] = [
            {"key": data_key, "size": str(len(data)), "md5Checksum": hashlib.md5(data).hexdigest()}
        ]
    else:
        manifest = {
            "sourceBucket": "example-source-bucket",
            "destinationBucket": f"arn:aws:s3:::{bucket}",
            "version": "2016-11-30",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size",
            "files": [{"key": data_key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}],
        }
    body = json.dumps(manifest).encode()
    etag = s3.put_object(Bucket=bucket, Key=f"{prefix}manifest.json", Body=body)["ETag"]
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}manifest.checksum", Body=hashlib.md5(body).hexdigest().encode() + b"\n"
    )
    return etag
