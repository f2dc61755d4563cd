"""Finalize on each ledger: a report that cannot be written, two finalizers on one job, and a
report written in steps.

A report that cannot be written fails the job (ReportNotWritten), leaving nothing half-written.
A finalizer renews its claim while it writes, so the sweeper's second finalize is refused and
writes nothing; a finalizer that cannot renew (cut off from the ledger) stops before its next
write and leaves the other's report whole; one whose job changes status under it stops too.
A finalize past its deadline stops with a checkpoint and the next one goes on from it, to the
report one go writes; a step killed mid-upload leaves its upload recorded, and the next step
aborts it and finishes the report.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

from batchops.api.create_job import parse_create_job
from batchops.cli.main import local_service
from batchops.engine.finalized import Finalized
from batchops.engine.outcomes import encode_outcomes
from batchops.engine.phases import FINALIZE_CLAIM_LEASES, Engine
from batchops.jobs.model import Job
from batchops.jobs.service import JobService
from batchops.jobs.status import JobStatus, RequestedJobStatus
from batchops.manifest.chunks import decode_chunk
from batchops.ops.outcome import TaskOutcome
from batchops.report.checkpoint import decode_report_checkpoint
from batchops.report.writer import results_key
from batchops.store.base import (
    ChunkClaim,
    ChunkLedger,
    ChunkRecord,
    FinalizeCheckpoint,
    PrepareCheckpoint,
    Segment,
    StoreUnavailableError,
)
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.dynamodb_ledger import DynamoDBLedger
from batchops.store.sqlite import SQLiteJobStore
from tests.conftest import new_bucket
from tests.faults import count_only, inject, s3_error
from tests.integration.invariants import JobView, assert_invariants, copied_to, listed_nowhere
from tests.integration.jobs_harness import csv_manifest, engine_settings, put_manifest, read_report, request

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.integration

APPID = "1250000000"
TASKS = 30
# Short leases so that a claim runs out within the test: renewed every 0.4 s, 2 s long.
SETTINGS = engine_settings(lease_seconds=0.4, chunk_max_tasks=10)
CLAIM_SECONDS = SETTINGS.lease_seconds * FINALIZE_CLAIM_LEASES


@dataclass
class Rig:
    service: JobService
    ledger: ChunkLedger
    endpoint: str
    engines: list[Engine] = field(default_factory=list)

    def s3(self) -> S3Client:
        config = Config(retries={"mode": "standard", "max_attempts": 2}, s3={"addressing_style": "path"})
        return boto3.client("s3", endpoint_url=self.endpoint, config=config)

    def engine(self, s3: S3Client, ledger: ChunkLedger | None = None) -> Engine:
        built = Engine(self.service, ledger or self.ledger, s3, SETTINGS)
        self.engines.append(built)
        return built


@pytest.fixture(params=["sqlite", "dynamodb"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, moto_endpoint: str) -> Iterator[Rig]:
    if request.param == "sqlite":
        store = SQLiteJobStore(tmp_path / "jobs.db")
        built = Rig(local_service(store, 10), store, moto_endpoint)
    else:
        client, table = request.getfixturevalue("dynamodb"), request.getfixturevalue("jobs_table")
        ledger = DynamoDBLedger(table, client)
        service = JobService(
            DynamoDBJobStore(table, client), max_active_jobs=10, live_progress=ledger.progress
        )
        built = Rig(service, ledger, moto_endpoint)
    yield built
    for engine in built.engines:
        engine.close()


def completing_job(rig: Rig) -> tuple[str, str]:
    """A job whose 30 deletes (3 chunks) all ran: Completing, its report still to write."""
    s3 = rig.s3()
    bucket = new_bucket(s3)
    etag = put_manifest(s3, bucket, "m.csv", csv_manifest([(bucket, f"k{n:02d}") for n in range(TASKS)]))
    job = rig.service.create(
        APPID, parse_create_job(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket))
    )
    runner = rig.engine(s3)
    runner.prepare(APPID, job.job_id)
    runner.activate(APPID, job.job_id)
    for index in range(TASKS // SETTINGS.chunk_max_tasks):
        now = time.time()
        assert rig.ledger.hold_chunk(job.job_id, index, "runner", now, now + 60)
        chunk = rig.ledger.get_chunk(job.job_id, index)
        assert chunk is not None
        runner.run_chunk(ChunkClaim(APPID, job.job_id, chunk, 0), "runner")
    assert rig.service.get(APPID, job.job_id).status is JobStatus.COMPLETING
    return job.job_id, bucket


def finalize_in_thread(engine: Engine, job_id: str, worker: str) -> tuple[threading.Thread, list[Finalized]]:
    result: list[Finalized] = []
    thread = threading.Thread(target=lambda: result.append(engine.finalize(APPID, job_id, worker)))
    thread.start()
    return thread, result


def assert_one_whole_report(rig: Rig, job_id: str, bucket: str) -> Job:
    """The job is Complete with every task counted, and its report is one report, whole."""
    job = rig.service.describe(APPID, job_id)
    assert job.status is JobStatus.COMPLETE
    assert (job.progress.succeeded, job.progress.failed) == (TASKS, 0)
    s3 = rig.s3()
    manifest, rows = read_report(s3, bucket, job_id)  # checks every MD5Checksum too
    assert sorted(row[1] for row in rows["succeeded"]) == [f"k{n:02d}" for n in range(TASKS)]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"reports/job-{job_id}/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(
        [f"reports/job-{job_id}/manifest.json", *(r["Key"] for r in manifest["Results"])]
    )
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    return job


def assert_ledger_dropped(ledger: ChunkLedger, job_id: str) -> None:
    assert list(ledger.segments(job_id)) == []
    assert ledger.progress(job_id) == (0, 0)
    # A claim at time 0 is refused by any claim left behind: none is.
    assert ledger.claim_finalize(job_id, "probe", now=0.0, until=1.0)
    ledger.drop_chunks(job_id)


def test_a_report_that_cannot_be_written_fails_the_job_and_leaves_nothing(rig: Rig) -> None:
    # GIVEN a finalizer whose role may not write the report's results
    job_id, bucket = completing_job(rig)
    denied_s3 = rig.s3()
    inject(
        denied_s3,
        "PutObject",
        lambda req, _n: s3_error(403, "AccessDenied") if "/results/" in req.url else None,
    )
    # WHEN it finalizes the job
    assert rig.engine(denied_s3).finalize(APPID, job_id, "finalizer-1") is Finalized.DONE
    # THEN the job failed, saying why, with its tasks still counted
    job = rig.service.describe(APPID, job_id)
    assert job.status is JobStatus.FAILED
    assert [f.code for f in job.failure_reasons] == ["ReportNotWritten"]
    assert "AccessDenied" in job.failure_reasons[0].reason
    assert (job.progress.succeeded, job.progress.failed) == (TASKS, 0)
    # AND no report object or upload was left behind, and the ledger is gone
    s3 = rig.s3()
    assert s3.list_objects_v2(Bucket=bucket, Prefix="reports/").get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_ledger_dropped(rig.ledger, job_id)


def test_a_slow_finalizer_keeps_its_claim_and_the_sweepers_second_one_writes_nothing(rig: Rig) -> None:
    # GIVEN a finalizer whose results upload takes longer than its claim lasts unrenewed
    job_id, bucket = completing_job(rig)
    slow_s3 = rig.s3()
    uploading = threading.Event()

    def slow(req: AWSPreparedRequest, _count: int) -> AWSResponse | None:
        if req.url.endswith(".csv"):
            uploading.set()
            time.sleep(2.5 * CLAIM_SECONDS)
        return None

    inject(slow_s3, "PutObject", slow)
    second_s3 = rig.s3()
    second_calls = inject(second_s3, "*", count_only())
    first, second = rig.engine(slow_s3), rig.engine(second_s3)
    thread, first_result = finalize_in_thread(first, job_id, "finalizer-1")
    assert uploading.wait(30)
    # WHEN the sweeper's finalize comes after the first claim would have run out
    time.sleep(1.2 * CLAIM_SECONDS)
    second_result = second.finalize(APPID, job_id, "finalizer-2")
    thread.join(60)
    # THEN the second is refused and sent nothing to S3; the first ends the job with its report
    assert second_result is Finalized.BUSY
    assert second_calls.seen == []
    assert first_result == [Finalized.DONE]
    assert_one_whole_report(rig, job_id, bucket)
    assert_ledger_dropped(rig.ledger, job_id)


class CutOffLedger:
    """A finalizer's view of the ledger when it is cut off from it after claiming the job.

    Its first claim goes through; every renewal after fails as an unreachable store does. Reading
    the segments stops after the first one until ``resume`` is set (the finalizer stalls).
    """

    def __init__(self, ledger: ChunkLedger) -> None:
        self.ledger = ledger
        self.claims = 0
        self.reading = threading.Event()
        self.resume = threading.Event()

    def claim_finalize(self, job_id: str, worker: str, now: float, until: float) -> bool:
        self.claims += 1
        if self.claims > 1:
            raise StoreUnavailableError("cut off")
        return self.ledger.claim_finalize(job_id, worker, now, until)

    def segments(self, job_id: str, start: tuple[int, int] = (0, 0)) -> Iterator[tuple[Segment, ChunkRecord]]:
        for n, each in enumerate(self.ledger.segments(job_id, start)):
            if n == 1:
                self.reading.set()
                assert self.resume.wait(60)
            yield each

    def put_chunks(self, job_id: str, chunks: Sequence[ChunkRecord]) -> None:
        self.ledger.put_chunks(job_id, chunks)

    def finalize_claimed(self, job_id: str, now: float) -> bool:
        return self.ledger.finalize_claimed(job_id, now)

    def finalize_checkpoint(self, job_id: str) -> FinalizeCheckpoint | None:
        return self.ledger.finalize_checkpoint(job_id)

    def advance_finalize(
        self, job_id: str, expected: FinalizeCheckpoint | None, checkpoint: FinalizeCheckpoint
    ) -> bool:
        return self.ledger.advance_finalize(job_id, expected, checkpoint)

    def prepare_checkpoint(self, job_id: str) -> PrepareCheckpoint | None:
        return self.ledger.prepare_checkpoint(job_id)

    def advance_prepare(
        self, job_id: str, expected: PrepareCheckpoint | None, checkpoint: PrepareCheckpoint
    ) -> bool:
        return self.ledger.advance_prepare(job_id, expected, checkpoint)

    def get_chunk(self, job_id: str, index: int) -> ChunkRecord | None:
        return self.ledger.get_chunk(job_id, index)

    def hold_chunk(self, job_id: str, index: int, worker: str, now: float, until: float) -> bool:
        return self.ledger.hold_chunk(job_id, index, worker, now, until)

    def renew_lease(self, job_id: str, index: int, worker: str, until: float) -> bool:
        return self.ledger.renew_lease(job_id, index, worker, until)

    def release_chunk(self, job_id: str, index: int, worker: str) -> None:
        self.ledger.release_chunk(job_id, index, worker)

    def record_segment(self, job_id: str, segment: Segment) -> Segment | None:
        return self.ledger.record_segment(job_id, segment)

    def segment_at(self, job_id: str, index: int, start: int) -> Segment | None:
        return self.ledger.segment_at(job_id, index, start)

    def progress(self, job_id: str) -> tuple[int, int]:
        return self.ledger.progress(job_id)

    def busy_chunks(self, job_id: str, now: float) -> int:
        return self.ledger.busy_chunks(job_id, now)

    def drop_chunks(self, job_id: str) -> None:
        self.ledger.drop_chunks(job_id)


class StaleFirstLook(JobService):
    """A job service whose first look at a job gives what it was before (a read that raced)."""

    def __init__(self, real: JobService, stale: Job) -> None:
        self.__dict__.update(real.__dict__)
        self._stale: Job | None = stale

    def get(self, appid: str, job_id: str, *, consistent: bool = True) -> Job:
        stale, self._stale = self._stale, None
        return stale if stale is not None else super().get(appid, job_id, consistent=consistent)


def test_a_finalizer_that_read_the_job_before_another_ended_it_writes_nothing(rig: Rig) -> None:
    # GIVEN a Completing job that one finalizer ended (its ledger and claim dropped), and a
    # second finalizer whose look at the job came before that (it still sees Completing)
    job_id, bucket = completing_job(rig)
    before = rig.service.get(APPID, job_id)
    assert rig.engine(rig.s3()).finalize(APPID, job_id, "finalizer-1") is Finalized.DONE
    report = rig.s3().get_object(Bucket=bucket, Key=f"reports/job-{job_id}/manifest.json")["Body"].read()
    late_s3 = rig.s3()
    late_calls = inject(late_s3, "*", count_only())
    late = Engine(StaleFirstLook(rig.service, before), rig.ledger, late_s3, SETTINGS)
    rig.engines.append(late)
    # WHEN the second one finalizes
    result = late.finalize(APPID, job_id, "finalizer-2")
    # THEN it did nothing: no S3 call, the first report whole, no claim left behind
    assert result is Finalized.DONE
    assert late_calls.seen == []
    assert (
        rig.s3().get_object(Bucket=bucket, Key=f"reports/job-{job_id}/manifest.json")["Body"].read() == report
    )
    assert_one_whole_report(rig, job_id, bucket)
    assert_ledger_dropped(rig.ledger, job_id)


def test_a_finalizer_that_cannot_renew_stops_before_writing_over_the_next_ones_report(rig: Rig) -> None:
    # GIVEN a finalizer cut off from the ledger after claiming, stalled while reading segments
    job_id, bucket = completing_job(rig)
    cut_off = CutOffLedger(rig.ledger)
    first_s3 = rig.s3()
    first_calls = inject(first_s3, "*", count_only())
    first = rig.engine(first_s3, cut_off)
    thread, first_result = finalize_in_thread(first, job_id, "finalizer-1")
    assert cut_off.reading.wait(30)
    # WHEN its claim runs out unrenewed and another finalizer takes the job and ends it
    second = rig.engine(rig.s3())
    deadline = time.monotonic() + 30
    while second.finalize(APPID, job_id, "finalizer-2") is not Finalized.DONE:
        assert time.monotonic() < deadline, "the first claim never ran out"
        time.sleep(0.1)
    cut_off.resume.set()
    thread.join(60)
    # THEN the first sent nothing to S3, and knows the job is over
    assert first_calls.seen == []
    assert first_result == [Finalized.DONE]
    # AND the job holds the second's report, whole, and its ledger is gone
    assert_one_whole_report(rig, job_id, bucket)
    assert_ledger_dropped(rig.ledger, job_id)


def test_a_job_cancelled_while_its_report_is_written_ends_cancelled_with_one_report(rig: Rig) -> None:
    # GIVEN a Completing job whose finalizer is slow to upload its results
    job_id, bucket = completing_job(rig)
    slow_s3 = rig.s3()
    uploading = threading.Event()

    def slow(req: AWSPreparedRequest, _count: int) -> AWSResponse | None:
        if req.url.endswith(".csv"):
            uploading.set()
            time.sleep(2 * SETTINGS.lease_seconds)
        return None

    calls = inject(slow_s3, "*", slow)
    first = rig.engine(slow_s3)
    thread, first_result = finalize_in_thread(first, job_id, "finalizer-1")
    assert uploading.wait(30)
    # WHEN the job is cancelled meanwhile
    assert (
        rig.service.update_status(APPID, job_id, RequestedJobStatus.CANCELLED, None).status
        is JobStatus.CANCELLING
    )
    thread.join(60)
    # THEN the finalizer saw its job change, stopped before its manifest and left it to the next
    assert first_result == [Finalized.BUSY]
    assert not any(req.url.endswith("manifest.json") for req in calls.seen)
    assert rig.service.get(APPID, job_id).status is JobStatus.CANCELLING
    # AND the next finalize ends it Cancelled, with one whole report
    assert rig.engine(rig.s3()).finalize(APPID, job_id, f"finalizer-{uuid.uuid4().hex[:6]}") is Finalized.DONE
    job = rig.service.describe(APPID, job_id)
    assert job.status is JobStatus.CANCELLED
    manifest, rows = read_report(rig.s3(), bucket, job_id)
    assert len(rows["succeeded"]) == TASKS
    assert [r["TaskExecutionStatus"] for r in manifest["Results"]] == ["succeeded"]
    assert_ledger_dropped(rig.ledger, job_id)


# --- a report written in steps ----------------------------------------------------------------

COPY = "<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"


def run_to_completing(rig: Rig, body: bytes) -> str:
    """Create, prepare and run a job, chunk by chunk, until it is Completing."""
    job = rig.service.create(APPID, parse_create_job(body))
    runner = rig.engine(rig.s3())
    runner.prepare(APPID, job.job_id)
    runner.activate(APPID, job.job_id)
    for index in range(rig.service.get(APPID, job.job_id).chunk_count):
        now = time.time()
        assert rig.ledger.hold_chunk(job.job_id, index, "runner", now, now + 60)
        chunk = rig.ledger.get_chunk(job.job_id, index)
        assert chunk is not None
        runner.run_chunk(ChunkClaim(APPID, job.job_id, chunk, 0), "runner")
    assert rig.service.get(APPID, job.job_id).status is JobStatus.COMPLETING
    return job.job_id


def report_bytes(s3: S3Client, bucket: str, job_id: str) -> dict[str, bytes]:
    """A report's rows as bytes, status by status: its results files one after the other, in the
    order its manifest.json lists them."""
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"reports/job-{job_id}/manifest.json")["Body"].read()
    )
    rows: dict[str, bytes] = {}
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
        rows[result["TaskExecutionStatus"]] = rows.get(result["TaskExecutionStatus"], b"") + body
    return rows


def assert_between_steps(rig: Rig, job_id: str, bucket: str) -> None:
    """A report stopped at a checkpoint: the job still ending, no manifest.json, nothing in
    progress, and the claim released for the next step."""
    s3 = rig.s3()
    assert rig.service.get(APPID, job_id).status is JobStatus.COMPLETING
    assert rig.ledger.finalize_checkpoint(job_id) is not None
    assert not rig.ledger.finalize_claimed(job_id, time.time())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="reports/").get("Contents", [])]
    assert not any(key.endswith("manifest.json") for key in keys), keys
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_finalize_past_its_deadline_goes_on_in_steps_to_the_report_of_one_go(rig: Rig) -> None:
    # GIVEN two Completing jobs over one manifest of 30 copies (3 chunks), 8 of them failing
    # (their source is missing), one to be finalized in steps and one in one go
    s3 = rig.s3()
    src, dst, bucket = new_bucket(s3), new_bucket(s3), new_bucket(s3)
    keys = [f"dir/o {n:02d}+%" for n in range(TASKS)]
    for n, key in enumerate(keys):
        if n % 4:
            s3.put_object(Bucket=src, Key=key, Body=f"body {n}".encode())
    etag = put_manifest(s3, src, "m.csv", csv_manifest([(src, key) for key in keys]))
    stepped, one_go = (
        run_to_completing(rig, request(src, "m.csv", etag, COPY.format(dst=dst), bucket, token=token))
        for token in ("stepped", "one-go")
    )
    engine = rig.engine(rig.s3())
    # WHEN one is finalized with its deadline always past, a new finalizer each step
    steps: list[Finalized] = []
    while not steps or steps[-1] is Finalized.MORE:
        if steps:
            assert_between_steps(rig, stepped, bucket)
        steps.append(engine.finalize(APPID, stepped, f"step-{len(steps)}", deadline=0.0))
    assert engine.finalize(APPID, one_go, "one-go") is Finalized.DONE
    # THEN each step wrote one segment (one chunk) and handed on, the last one ended the job
    assert steps == [Finalized.MORE, Finalized.MORE, Finalized.DONE]
    # AND its rows are those of the report written in one go, byte for byte, status by status
    rows = report_bytes(s3, bucket, stepped)
    assert rows == report_bytes(s3, bucket, one_go)
    assert (rows["succeeded"].count(b"\n"), rows["failed"].count(b"\n")) == (22, 8)
    # AND its manifest.json lists each step's files, succeeded first, under the layout's keys
    manifest, _ = read_report(s3, bucket, stepped)
    assert [(r["TaskExecutionStatus"], r["Key"]) for r in manifest["Results"]] == [
        (status, results_key("reports", stepped, status, n))
        for status in ("succeeded", "failed")
        for n in range(3)
    ]
    # AND I1-I4 hold, and the ledger is gone
    for job_id in (stepped, one_go):
        assert_invariants(
            s3,
            JobView.from_job(rig.service.describe(APPID, job_id)),
            [(src, key, "") for key in keys],
            copied_to(s3, dst),
            report_bucket=bucket,
        )
        assert_ledger_dropped(rig.ledger, job_id)


class Killed(BaseException):
    """The process running a finalize dies: nothing it would still send goes out."""


def big_completing_job(rig: Rig, tasks: int) -> tuple[str, str, list[tuple[str, str, str]]]:
    """A Completing delete job whose report is about 3 KB a row (keys of 1,016 bytes, 3,036
    characters URL-encoded), so that a few thousand rows make a multipart upload. Its tasks are
    recorded as succeeded straight in the ledger: running them would only slow the test."""
    s3 = rig.s3()
    bucket = new_bucket(s3)
    keys = [f"{'é' * 505}-{n:05d}" for n in range(tasks)]
    etag = put_manifest(s3, bucket, "m.csv", csv_manifest([(bucket, key) for key in keys]))
    job = rig.service.create(
        APPID, parse_create_job(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket))
    )
    runner = rig.engine(s3)
    runner.prepare(APPID, job.job_id)
    runner.activate(APPID, job.job_id)
    for index in range(rig.service.get(APPID, job.job_id).chunk_count):
        chunk = rig.ledger.get_chunk(job.job_id, index)
        assert chunk is not None
        count = len(decode_chunk(chunk.payload))
        outcomes = encode_outcomes([TaskOutcome(True, 204, "", "Successful")] * count)
        rig.ledger.record_segment(job.job_id, Segment(index, 0, count, count, 0, outcomes))
    runner.settle(APPID, job.job_id)
    assert rig.service.get(APPID, job.job_id).status is JobStatus.COMPLETING
    return job.job_id, bucket, [(bucket, key, "") for key in keys]


def test_a_step_killed_mid_upload_leaves_its_upload_to_the_next_which_aborts_it_and_finishes(
    rig: Rig,
) -> None:
    # GIVEN a Completing job of 3,000 rows (9 MB of report), a first step already stopped at its
    # deadline
    job_id, bucket, manifest_rows = big_completing_job(rig, 3000)
    s3 = rig.s3()
    assert rig.engine(s3).finalize(APPID, job_id, "step-1", deadline=0.0) is Finalized.MORE
    # WHEN the next step, writing the rest in one go, dies as it sends its second part
    upload_id = kill_a_step_mid_upload(rig, job_id)
    # THEN its upload is still in progress, recorded in the report checkpoint
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [upload_id]
    assert recorded_uploads(rig, job_id) == [upload_id]
    # WHEN the next finalize comes, once the dead one's claim has run out
    done = finalize_once_free(rig, s3, job_id, "step-3")
    # THEN it aborted the dead step's upload and ended the job with every row once, in order
    assert done is Finalized.DONE
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    report = assert_invariants(
        s3,
        JobView.from_job(rig.service.describe(APPID, job_id)),
        manifest_rows,
        listed_nowhere(s3, bucket, "é"),
        report_bucket=bucket,
    )
    assert [row[1] for row in report.rows["succeeded"]] == [
        row[1] for row in csv_rows(csv_manifest([(b, k) for b, k, _ in manifest_rows]))
    ]
    # AND its files are step 1's and step 3's (a small one, then one of two parts)
    manifest, _ = read_report(s3, bucket, job_id)
    assert [r["Key"] for r in manifest["Results"]] == [
        results_key("reports", job_id, "succeeded", n) for n in range(2)
    ]
    assert_ledger_dropped(rig.ledger, job_id)


def kill_a_step_mid_upload(rig: Rig, job_id: str) -> str:
    """Run a finalize step that dies as it sends its second part; the id of the upload it leaves."""
    dying_s3 = rig.s3()
    dead = threading.Event()

    def die(req: AWSPreparedRequest, _count: int) -> AWSResponse | None:
        if "partNumber=2" in req.url:
            dead.set()
        if dead.is_set():
            raise Killed
        return None

    inject(dying_s3, "*", die)
    with pytest.raises(Killed):
        rig.engine(dying_s3).finalize(APPID, job_id, "step-2")
    recorded = recorded_uploads(rig, job_id)
    assert len(recorded) == 1
    return recorded[0]


def recorded_uploads(rig: Rig, job_id: str) -> list[str]:
    """The upload ids the job's report checkpoint holds for a next step to abort."""
    stored = rig.ledger.finalize_checkpoint(job_id)
    assert stored is not None
    return [u.upload_id for u in decode_report_checkpoint(stored.state, "reports", job_id).uploads]


def finalize_once_free(
    rig: Rig, s3: S3Client, job_id: str, worker: str, deadline: float | None = None
) -> Finalized:
    """Finalize once a dead step's claim has run out (BUSY until then)."""
    ended = time.monotonic() + 30
    while (done := rig.engine(s3).finalize(APPID, job_id, worker, deadline=deadline)) is Finalized.BUSY:
        assert time.monotonic() < ended, "the dead step's claim never ran out"
        time.sleep(0.1)
    return done


def test_an_upload_a_step_could_not_abort_stays_recorded_past_its_deadline_for_the_next(rig: Rig) -> None:
    # GIVEN a report whose second step died mid-upload
    job_id, bucket, manifest_rows = big_completing_job(rig, 3000)
    s3 = rig.s3()
    assert rig.engine(s3).finalize(APPID, job_id, "step-1", deadline=0.0) is Finalized.MORE
    upload_id = kill_a_step_mid_upload(rig, job_id)
    # WHEN the next step may not abort it, and stops at its deadline after one segment
    no_abort_s3 = rig.s3()
    inject(no_abort_s3, "AbortMultipartUpload", lambda _req, _n: s3_error(403, "AccessDenied"))
    assert finalize_once_free(rig, no_abort_s3, job_id, "step-3", deadline=0.0) is Finalized.MORE
    # THEN the checkpoint it stored still holds the dead upload, which is still in progress
    assert recorded_uploads(rig, job_id) == [upload_id]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [upload_id]
    # AND the step after it aborts it and ends the job with every row once
    assert finalize_once_free(rig, s3, job_id, "step-4") is Finalized.DONE
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_invariants(
        s3,
        JobView.from_job(rig.service.describe(APPID, job_id)),
        manifest_rows,
        listed_nowhere(s3, bucket, "é"),
        report_bucket=bucket,
    )
    assert_ledger_dropped(rig.ledger, job_id)


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode(), newline="")))


def test_a_report_that_cannot_be_written_in_a_later_step_leaves_no_step_behind(rig: Rig) -> None:
    # GIVEN a Completing job whose report got one step written
    job_id, bucket = completing_job(rig)
    assert rig.engine(rig.s3()).finalize(APPID, job_id, "step-1", deadline=0.0) is Finalized.MORE
    s3 = rig.s3()
    assert s3.list_objects_v2(Bucket=bucket, Prefix="reports/").get("KeyCount") == 1
    # WHEN the next step may not write its results
    denied_s3 = rig.s3()
    inject(
        denied_s3,
        "PutObject",
        lambda req, _n: s3_error(403, "AccessDenied") if "/results/" in req.url else None,
    )
    assert rig.engine(denied_s3).finalize(APPID, job_id, "step-2") is Finalized.DONE
    # THEN the job failed, saying why, its tasks still counted
    job = rig.service.describe(APPID, job_id)
    assert (job.status, [f.code for f in job.failure_reasons]) == (JobStatus.FAILED, ["ReportNotWritten"])
    assert (job.progress.succeeded, job.progress.failed) == (TASKS, 0)
    # AND the first step's file is gone with the rest: no report object, no upload, no ledger
    assert s3.list_objects_v2(Bucket=bucket, Prefix="reports/").get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_ledger_dropped(rig.ledger, job_id)


class FlakyCheckpoints:
    """The ledger, except that it does not take the first report checkpoint sent to it."""

    def __init__(self, ledger: ChunkLedger) -> None:
        self.ledger = ledger
        self.refused = 0

    def advance_finalize(
        self, job_id: str, expected: FinalizeCheckpoint | None, checkpoint: FinalizeCheckpoint
    ) -> bool:
        if not self.refused:
            self.refused += 1
            raise StoreUnavailableError("throttled")
        return self.ledger.advance_finalize(job_id, expected, checkpoint)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)


def test_a_checkpoint_the_ledger_does_not_take_fails_no_job_and_the_next_step_goes_on(rig: Rig) -> None:
    # GIVEN a Completing job, and a ledger that does not answer the first checkpoint's write
    job_id, bucket = completing_job(rig)
    flaky: Any = FlakyCheckpoints(rig.ledger)
    # WHEN a step reaches its deadline and cannot store its checkpoint
    with pytest.raises(StoreUnavailableError):
        rig.engine(rig.s3(), flaky).finalize(APPID, job_id, "step-1", deadline=0.0)
    # THEN the job is not failed: still Completing, nothing in progress, the claim given back
    assert rig.service.get(APPID, job_id).status is JobStatus.COMPLETING
    assert not rig.ledger.finalize_claimed(job_id, time.time())
    assert rig.s3().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # AND the next steps write the whole report, once
    steps = [rig.engine(rig.s3(), flaky).finalize(APPID, job_id, "step-2", deadline=0.0)]
    while steps[-1] is Finalized.MORE:
        steps.append(rig.engine(rig.s3()).finalize(APPID, job_id, f"step-{len(steps) + 2}", deadline=0.0))
    assert steps == [Finalized.MORE, Finalized.MORE, Finalized.DONE]
    assert_one_whole_report(rig, job_id, bucket)
    assert_ledger_dropped(rig.ledger, job_id)
