"""The four invariants every fault scenario ends on (reliability-security.md §4.3):

(I1) every manifest row appears exactly once in the report (a cancelled job: at most once);
(I2) ProgressSummary's counters equal the report's rows;
(I3) every succeeded task's effect exists (copy present with its content, delete gone, restore
     initiated);
(I4) the job ends in a terminal status with a clear reason (a failed job names its failure; a
     failed row carries its HTTP status and error code).

Checked from the outside, as a user would: the job as DescribeJob shows it, the report objects
the job wrote, and the objects in S3.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError
from lxml import etree

from batchops.jobs.model import Job
from tests.integration.jobs_harness import result_rows

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

TERMINAL = frozenset({"Complete", "Failed", "Cancelled"})
Row = tuple[str, str, str]
"""(bucket, key, version id) of a manifest row, the key decoded."""
Effect = Callable[[Row], str | None]
"""What is wrong with a succeeded task's effect in S3, or None when it is there."""


@dataclass(frozen=True)
class JobView:
    """A job as DescribeJob shows it."""

    job_id: str
    status: str
    total: int
    succeeded: int
    failed: int
    terminated: bool
    failures: tuple[tuple[str, str], ...] = ()
    reason: str = ""

    @classmethod
    def from_xml(cls, job: etree._Element) -> JobView:
        def number(path: str) -> int:
            return int(job.findtext(f"ProgressSummary/{path}") or 0)

        return cls(
            job_id=job.findtext("JobId") or "",
            status=job.findtext("Status") or "",
            total=number("TotalNumberOfTasks"),
            succeeded=number("NumberOfTasksSucceeded"),
            failed=number("NumberOfTasksFailed"),
            terminated=bool(job.findtext("TerminationDate")),
            failures=tuple(
                (f.findtext("FailureCode") or "", f.findtext("FailureReason") or "")
                for f in job.iterfind("FailureReasons/JobFailure")
            ),
            reason=job.findtext("StatusUpdateReason") or "",
        )

    @classmethod
    def from_job(cls, job: Job) -> JobView:
        return cls(
            job_id=job.job_id,
            status=job.status.value,
            total=job.progress.total,
            succeeded=job.progress.succeeded,
            failed=job.progress.failed,
            terminated=job.termination_date is not None,
            failures=tuple((f.code, f.reason) for f in job.failure_reasons),
            reason=job.status_update_reason or "",
        )


@dataclass
class Report:
    rows: dict[str, list[list[str]]] = field(default_factory=dict)
    """Report rows by TaskExecutionStatus ("succeeded", "failed")."""
    written: bool = False


def read_report(s3: S3Client, bucket: str, prefix: str, job_id: str) -> Report:
    """The report a job wrote (its manifest.json, then each result file, checksums checked)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/job-{job_id}/manifest.json")["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchKey":
            return Report()
        raise
    return Report(rows=result_rows(s3, json.loads(body)), written=True)


def assert_invariants(
    s3: S3Client,
    job: JobView,
    manifest: list[Row],
    effect: Effect,
    *,
    report_bucket: str,
    report_prefix: str = "reports",
    statuses: frozenset[str] = TERMINAL,
    ran_before_planning_failed: bool = False,
) -> Report:
    """Assert I1-I4 for ``job`` run over ``manifest``; the report, for a scenario's own checks."""
    # (I4) a terminal status, with a clear reason
    assert job.status in statuses, f"job {job.job_id} ended {job.status} ({job.reason})"
    assert job.status in TERMINAL and job.terminated, f"job {job.job_id} is not terminal: {job.status}"
    if job.status == "Failed":
        assert job.failures and all(code and reason for code, reason in job.failures), job.failures
    report = read_report(s3, report_bucket, report_prefix, job.job_id)
    if job.status == "Failed" and job.total == 0 and not report.written:
        # Failed before a task was planned (the manifest refused): nothing ran, nothing to report.
        assert not ran_before_planning_failed
        assert job.succeeded == job.failed == 0
        return report
    assert report.written, f"job {job.job_id} ended {job.status} without a report"
    succeeded = report.rows.get("succeeded", [])
    failed = report.rows.get("failed", [])
    for row in succeeded:
        assert row[3] == "succeeded" and row[4].isdigit() and not row[5], row
    for row in failed:
        # (I4) a failed row says why: its HTTP status (or 0 for no answer) and an error code
        assert row[3] == "failed" and row[5], row
    # (I1) every manifest row exactly once (a job stopped early: each row at most once)
    reported = Counter(_row(r) for r in succeeded + failed)
    duplicates = {row: n for row, n in reported.items() if n > 1}
    assert not duplicates, f"rows reported more than once: {duplicates}"
    expected = Counter(manifest)
    strangers = set(reported) - set(expected)
    assert not strangers, f"rows not in the manifest: {strangers}"
    if job.status == "Complete":
        assert reported == expected, f"missing from the report: {set(expected) - set(reported)}"
    # (I2) counters equal the report's rows
    assert (job.succeeded, job.failed) == (len(succeeded), len(failed)), (job, len(succeeded), len(failed))
    assert job.total == len(manifest), (job.total, len(manifest))
    # (I3) every succeeded task's effect exists
    wrong = {row: problem for row in map(_row, succeeded) if (problem := effect(row)) is not None}
    assert not wrong, f"succeeded tasks without their effect: {wrong}"
    return report


def _version(version: str) -> dict[str, Any]:
    return {"VersionId": version} if version else {}


def _row(row: list[str]) -> Row:
    return (row[0], unquote_plus(row[1]), row[2])


def copied_to(s3: S3Client, target_bucket: str) -> Effect:
    """A copy exists in ``target_bucket`` with the source's content (the source is still there)."""

    def check(row: Row) -> str | None:
        bucket, key, version = row
        source = s3.get_object(Bucket=bucket, Key=key, **_version(version))
        try:
            copy = s3.get_object(Bucket=target_bucket, Key=key)
        except ClientError as exc:
            return f"no copy ({exc.response['Error']['Code']})"
        if copy["Body"].read() != source["Body"].read():
            return "the copy's content differs"
        return None

    return check


def deleted(s3: S3Client) -> Effect:
    def check(row: Row) -> str | None:
        bucket, key, version = row
        try:
            s3.head_object(Bucket=bucket, Key=key, **_version(version))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
                return None
            raise
        return "still there"

    return check


def listed_nowhere(s3: S3Client, bucket: str, prefix: str) -> Effect:
    """Deleted: the key is not in one listing of ``bucket`` under ``prefix`` (taken once, when the
    first row is checked), for jobs too big to HEAD every key."""
    remaining: set[str] | None = None

    def check(row: Row) -> str | None:
        nonlocal remaining
        if remaining is None:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            remaining = {o["Key"] for page in pages for o in page.get("Contents", [])}
        return "still listed" if row[1] in remaining else None

    return check


def restore_initiated(s3: S3Client) -> Effect:
    def check(row: Row) -> str | None:
        bucket, key, version = row
        head = s3.head_object(Bucket=bucket, Key=key, **_version(version))
        return None if head.get("Restore") else "no restore on record"

    return check
