"""A segment's rows written at once (``write_report_rows`` and ``ReportWriter.add_lines``) are
the report that row-by-row ``report_rows`` and ``ReportWriter.add`` write: the same bytes in the
same files, cut into the same parts, against a moto server over HTTP."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from batchops.engine.outcomes import decode_outcomes, encode_outcomes, report_rows, write_report_rows
from batchops.manifest.tasks import ManifestTask
from batchops.ops.outcome import TaskOutcome, failure, success
from batchops.report.writer import MIN_PART_BYTES, ReportWriter
from tests.faults import count_only, inject

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.integration

Segment = tuple[list[ManifestTask], int, bytes]

KEYS = ["plain/key.txt", "with space+plus.txt", "-leading", 'comma,quote"', "new\nline", "日本語/é"]
MESSAGES = [
    "Successful",
    "Delete marker 3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY added",
    "=1+2",
    "two\nlines",
    "x" * 2000,
]


def segments(chunks: int, size: int) -> list[Segment]:
    """Chunks of tasks with every kind of column, each run in two segments, with mixed outcomes."""
    found: list[Segment] = []
    for c in range(chunks):
        tasks = [
            ManifestTask(
                "bucket,odd" if n % 97 == 0 else "examplebucket-1250000000",
                f"{KEYS[n % len(KEYS)]}/{c}/{n}",
                None if n % 3 else f'v"{n}',
            )
            for n in range(size)
        ]
        outcomes: list[TaskOutcome] = []
        for n in range(size):
            if n % 5 == 0:
                outcomes.append(
                    failure(403 + n % 2, ("AccessDenied", "@Code")[n % 2], MESSAGES[(n // 5) % len(MESSAGES)])
                )
            else:
                outcomes.append(success(200, MESSAGES[n % 2]))
        cut = size // 3
        found.append((tasks, 0, encode_outcomes(outcomes[:cut])))
        found.append((tasks, cut, encode_outcomes(outcomes[cut:])))
    return found


def write(
    s3: S3Client, bucket: str, job: str, data: list[Segment], *, at_once: bool, **options: Any
) -> list[int]:
    """Write the report; the sizes of the parts uploaded, in order."""
    parts = inject(s3, "UploadPart", count_only())
    with ReportWriter(s3, bucket, "r", job, "Report_CSV_V1", **options) as writer:
        for tasks, start, results in data:
            if at_once:
                write_report_rows(writer, tasks, start, results)
            else:
                for row in report_rows(tasks, start, decode_outcomes(results)):
                    writer.add(row)
        writer.finish()
    return [int(request.headers["Content-Length"]) for request in parts.seen]


def results_files(s3: S3Client, bucket: str, job: str) -> list[tuple[str, str, bytes]]:
    """(status, MD5Checksum, content) of each results file, in the order manifest.json lists them."""
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"r/job-{job}/manifest.json")["Body"].read())
    return [
        (
            r["TaskExecutionStatus"],
            r["MD5Checksum"],
            s3.get_object(Bucket=bucket, Key=r["Key"])["Body"].read(),
        )
        for r in manifest["Results"]
    ]


@pytest.mark.parametrize(
    ("chunks", "size", "options"),
    [
        (4, 1000, {"failed_only": False}),
        (4, 1000, {"failed_only": True}),
        (6, 300, {"failed_only": False, "file_bytes": 40_000}),  # files end inside segments
        (150, 1000, {"failed_only": False, "part_bytes": MIN_PART_BYTES}),  # parts end inside segments
    ],
    ids=["all-tasks", "failed-only", "small-files", "parts"],
)
def test_rows_written_a_segment_at_a_time_are_the_report_written_row_by_row(
    moto_endpoint: str, chunks: int, size: int, options: dict[str, Any]
) -> None:
    # GIVEN segments with every kind of field (quoted buckets and versions, encoded keys, guarded
    # and multi-line messages, long ones) and both statuses
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = f"reports-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    data = segments(chunks, size)
    # WHEN the report is written row by row under one job id, and a segment at a time under another
    one, other = str(uuid.uuid4()), str(uuid.uuid4())
    parts_row_by_row = write(s3, bucket, one, data, at_once=False, **options)
    parts_at_once = write(s3, bucket, other, data, at_once=True, **options)
    # THEN every results file holds the same bytes, and went up in the same parts
    by_row, at_once = results_files(s3, bucket, one), results_files(s3, bucket, other)
    assert by_row == at_once
    assert sum(len(body) for _, _, body in at_once) > 0
    if "file_bytes" in options:
        assert len(at_once) > 4
    assert parts_row_by_row == parts_at_once
    if "part_bytes" in options:
        assert len(parts_at_once) > 2
