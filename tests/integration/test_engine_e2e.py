"""Jobs run end to end in embedded mode: CreateJob over HTTP, workers on the SQLite ledger, a moto
S3 server over HTTP, DescribeJob polled to the end, the report read back row by row."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote_plus

import pytest
from lxml import etree

from tests.conftest import new_bucket
from tests.helpers import call
from tests.integration.jobs_harness import (
    AWKWARD_KEYS,
    Service,
    csv_manifest,
    engine_settings,
    put_manifest,
    read_report,
    request,
)


def test_copy_job_end_to_end_with_awkward_keys(make_service: Callable[..., Service]) -> None:
    # GIVEN objects with awkward keys and a CSV manifest naming them (and one missing object)
    svc = make_service()
    src, dst, reports = new_bucket(svc.s3), new_bucket(svc.s3), new_bucket(svc.s3)
    for key in AWKWARD_KEYS:
        svc.s3.put_object(Bucket=src, Key=key, Body=key.encode(), Metadata={"k": "v"}, Tagging="t=1")
    # moto's server cannot store a key with a newline (its router answers 404 to %0A), so that
    # key goes through as a failing task: it still reaches S3 exactly and is reported back exactly
    newline = 'new\nline, "quoted".txt'
    tasks = [(src, key) for key in [*AWKWARD_KEYS, "missing.txt", newline]]
    etag = put_manifest(svc.s3, src, "manifests/m.csv", csv_manifest(tasks))
    copy = (
        "<COSPutObjectCopy><AccessControlDirective>Replaced</AccessControlDirective>"
        "<CannedAccessControlList>public-read</CannedAccessControlList><StorageClass>STANDARD_IA</StorageClass>"
        f"<TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    )
    # WHEN the job is created over HTTP
    job_id = svc.create(request(src, "manifests/m.csv", etag, copy, reports))
    job = svc.wait(job_id, "Complete", "Failed")
    # THEN it completes with every task accounted for
    assert job.findtext("Status") == "Complete", etree.tostring(job)
    assert job.findtext("ProgressSummary/TotalNumberOfTasks") == str(len(tasks))
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == str(len(AWKWARD_KEYS))
    assert job.findtext("ProgressSummary/NumberOfTasksFailed") == "2"
    assert job.findtext("TerminationDate")
    # AND each object is copied, with its metadata and tags, and the ACL and storage class asked for
    for key in AWKWARD_KEYS:
        got = svc.s3.get_object(Bucket=dst, Key=key)
        assert got["Body"].read() == key.encode()
        assert got["Metadata"] == {"k": "v"}
        assert got["StorageClass"] == "STANDARD_IA"
        assert svc.s3.get_object_tagging(Bucket=dst, Key=key)["TagSet"] == [{"Key": "t", "Value": "1"}]
        grants = svc.s3.get_object_acl(Bucket=dst, Key=key)["Grants"]
        assert {"URI": "http://acs.amazonaws.com/groups/global/AllUsers", "Type": "Group"} in [
            g["Grantee"] for g in grants
        ]
    # AND the report has one row per task, keys encoded so they decode back
    manifest, rows = read_report(svc.s3, reports, job_id)
    assert manifest["Format"] == "Report_CSV_V1"
    assert (
        manifest["ReportSchema"]
        == "Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage"
    )
    succeeded = {unquote_plus(r[1]): r for r in rows["succeeded"]}
    assert set(succeeded) == set(AWKWARD_KEYS)
    assert all(r[3:6] == ["succeeded", "200", ""] for r in succeeded.values())
    failed = {unquote_plus(r[1]): r for r in rows["failed"]}
    assert failed["missing.txt"][:6] == [src, "missing.txt", "", "failed", "404", "NoSuchKey"]
    assert failed[newline][:5] == [src, failed[newline][1], "", "failed", "404"]


def test_delete_job_with_failed_tasks_only_report(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    bucket, reports = new_bucket(svc.s3), new_bucket(svc.s3)
    keys = [f"logs/{n:04d}.log" for n in range(25)]
    for key in keys:
        svc.s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    etag = put_manifest(svc.s3, reports, "m.csv", csv_manifest([(bucket, k) for k in keys]))
    job_id = svc.create(
        request(reports, "m.csv", etag, "<COSDeleteObject/>", reports, scope="FailedTasksOnly")
    )
    job = svc.wait(job_id, "Complete", "Failed")
    assert job.findtext("Status") == "Complete"
    assert svc.s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    manifest, rows = read_report(svc.s3, reports, job_id)
    assert (manifest["Results"], rows) == ([], {})  # no failed task, and succeeded rows are left out


def test_restore_job(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    bucket, reports = new_bucket(svc.s3), new_bucket(svc.s3)
    svc.s3.put_object(Bucket=bucket, Key="cold-1", Body=b"x", StorageClass="GLACIER")
    svc.s3.put_object(Bucket=bucket, Key="cold-2", Body=b"x", StorageClass="DEEP_ARCHIVE")
    svc.s3.put_object(Bucket=bucket, Key="warm", Body=b"x")
    etag = put_manifest(
        svc.s3, reports, "m.csv", csv_manifest([(bucket, "cold-1"), (bucket, "cold-2"), (bucket, "warm")])
    )
    op = "<COSInitiateRestoreObject><ExpirationInDays>3</ExpirationInDays><JobTier>Standard</JobTier></COSInitiateRestoreObject>"
    job_id = svc.create(request(reports, "m.csv", etag, op, reports))
    job = svc.wait(job_id, "Complete", "Failed")
    assert (
        job.findtext("ProgressSummary/NumberOfTasksSucceeded"),
        job.findtext("ProgressSummary/NumberOfTasksFailed"),
    ) == ("2", "1")
    assert 'ongoing-request="false"' in svc.s3.head_object(Bucket=bucket, Key="cold-1")["Restore"]
    _, rows = read_report(svc.s3, reports, job_id)
    assert rows["failed"][0][:6] == [bucket, "warm", "", "failed", "403", "InvalidObjectState"]


def test_inventory_manifest_job(make_service: Callable[..., Service]) -> None:
    # GIVEN an S3 inventory (manifest.json + gzip CSV data files) of a versioned bucket
    svc = make_service()
    src, dst, inv = new_bucket(svc.s3, versioned=True), new_bucket(svc.s3), new_bucket(svc.s3)
    lines = []
    for n in range(30):
        key = f"data/file {n}+x.bin"
        version = svc.s3.put_object(Bucket=src, Key=key, Body=str(n).encode())["VersionId"]
        lines.append(
            f'"{src}","{key.replace(" ", "+").replace("+x", "%2Bx")}","{version}","true","false","1"'
        )
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    svc.s3.put_object(Bucket=inv, Key="inv/data/part-1.csv.gz", Body=data)
    inventory = {
        "sourceBucket": src,
        "destinationBucket": f"arn:aws:s3:::{inv}",
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size",
        "files": [
            {"key": "inv/data/part-1.csv.gz", "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}
        ],
    }
    etag = put_manifest(svc.s3, inv, "inv/2026-11-24T00-00Z/manifest.json", json.dumps(inventory).encode())
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    body = request(
        inv,
        "inv/2026-11-24T00-00Z/manifest.json",
        etag,
        copy,
        inv,
        fields=(),
        fmt="S3InventoryReport_CSV_20161130",
    )
    # WHEN it runs
    job = svc.wait(svc.create(body), "Complete", "Failed")
    # THEN every version was copied
    assert job.findtext("Status") == "Complete", etree.tostring(job)
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "30"
    assert svc.s3.get_object(Bucket=dst, Key="data/file 7+x.bin")["Body"].read() == b"7"


def test_etag_mismatch_fails_the_job_saying_so(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    bucket = new_bucket(svc.s3)
    put_manifest(svc.s3, bucket, "m.csv", csv_manifest([(bucket, "a")]))
    job_id = svc.create(
        request(bucket, "m.csv", '"0123456789abcdef0123456789abcdef"', "<COSDeleteObject/>", bucket)
    )
    job = svc.wait(job_id, "Failed")
    assert job.findtext("FailureReasons/JobFailure/FailureCode") == "ManifestETagMismatch"
    assert "0123456789abcdef0123456789abcdef" in (
        job.findtext("FailureReasons/JobFailure/FailureReason") or ""
    )


def test_confirmation_then_run(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    bucket = new_bucket(svc.s3)
    svc.s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    etag = put_manifest(svc.s3, bucket, "m.csv", csv_manifest([(bucket, "a")]))
    job_id = svc.create(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket, confirm=True))
    job = svc.wait(job_id, "Suspended")
    assert job.findtext("ProgressSummary/TotalNumberOfTasks") == "1"
    time.sleep(0.3)
    assert svc.describe(job_id).findtext("Status") == "Suspended"  # nothing runs unconfirmed
    assert "Contents" in svc.s3.list_objects_v2(Bucket=bucket, Prefix="a")
    assert svc.status(job_id, "Ready").xml.findtext("Status") == "Ready"
    assert svc.wait(job_id, "Complete").findtext("ProgressSummary/NumberOfTasksSucceeded") == "1"


def test_failure_threshold_fails_the_job_and_still_reports(make_service: Callable[..., Service]) -> None:
    # GIVEN 1,200 tasks whose sources do not exist, in chunks of 100
    svc = make_service(engine_settings(chunk_max_tasks=100, workers=2, task_concurrency=16))
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"gone/{n}") for n in range(1200)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    # WHEN the job runs
    job = svc.wait(svc.create(request(src, "m.csv", etag, copy, src)), "Failed", "Complete")
    # THEN it fails once 1,000 tasks ran, saying why, and its report holds what ran
    assert job.findtext("Status") == "Failed"
    assert job.findtext("FailureReasons/JobFailure/FailureCode") == "TaskFailureRateExceeded"
    failed = int(job.findtext("ProgressSummary/NumberOfTasksFailed") or 0)
    assert 1000 <= failed <= 1200
    _, rows = read_report(svc.s3, src, job.findtext("JobId") or "")
    assert len(rows["failed"]) == failed
    assert len({r[1] for r in rows["failed"]}) == failed  # one row per task


def slow_copies(svc: Service, seconds: float) -> None:
    from tests.faults import inject

    def delay(_request: object, _count: int) -> None:
        time.sleep(seconds)

    inject(svc.s3, "CopyObject", delay)


def test_cancel_stops_a_running_job_and_reports_what_ran(make_service: Callable[..., Service]) -> None:
    # GIVEN a job of 400 slow copies
    svc = make_service(engine_settings(chunk_max_tasks=50, workers=2, task_concurrency=2))
    slow_copies(svc, 0.02)
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    for n in range(400):
        svc.s3.put_object(Bucket=src, Key=f"k{n}", Body=b"x")
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"k{n}") for n in range(400)]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    job_id = svc.create(request(src, "m.csv", etag, copy, src))
    # WHEN it is cancelled while running
    deadline = time.monotonic() + 30
    while int(svc.describe(job_id).findtext("ProgressSummary/NumberOfTasksSucceeded") or 0) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert svc.status(job_id, "Cancelled").xml.findtext("Status") == "Cancelling"
    job = svc.wait(job_id, "Cancelled", timeout=10)
    # THEN it stopped early, and counters, report rows and copies agree
    succeeded = int(job.findtext("ProgressSummary/NumberOfTasksSucceeded") or 0)
    assert 0 < succeeded < 400
    _, rows = read_report(svc.s3, src, job_id)
    assert len(rows["succeeded"]) == succeeded
    copied = svc.s3.list_objects_v2(Bucket=dst).get("KeyCount", 0)
    assert succeeded <= copied <= succeeded + 2 * 2  # at most the tasks in flight when it stopped


def test_higher_priority_jobs_run_first(make_service: Callable[..., Service]) -> None:
    # GIVEN two jobs created while no worker runs, the second with the higher priority
    svc = make_service(
        engine_settings(chunk_max_tasks=5, workers=1, task_concurrency=1), workers_started=False
    )
    bucket = new_bucket(svc.s3)
    from tests.faults import count_only, inject

    seen = inject(svc.s3, "DeleteObjects", count_only())
    ids = []
    for name, priority in (("low", 1), ("high", 100)):
        etag = put_manifest(
            svc.s3, bucket, f"{name}.csv", csv_manifest([(bucket, f"{name}/{n}") for n in range(20)])
        )
        ids.append(
            svc.create(
                request(
                    bucket, f"{name}.csv", etag, "<COSDeleteObject/>", bucket, token=name, priority=priority
                )
            )
        )
    # WHEN the workers run
    svc.dispatcher.run_until_idle()
    # THEN every chunk of the high-priority job ran before any of the low one
    order = [b"high/" in (r.body or b"") for r in seen.seen]
    assert order == [True] * 4 + [False] * 4
    assert [svc.describe(i).findtext("Status") for i in ids] == ["Complete", "Complete"]


def test_duplicate_and_concurrent_chunk_delivery_count_once(make_service: Callable[..., Service]) -> None:
    # GIVEN a prepared, active job of one chunk
    svc = make_service(engine_settings(chunk_max_tasks=50), workers_started=False)
    src, copy = _objects_to_copy(svc, [f"k{n}" for n in range(30)])
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"k{n}") for n in range(30)]))
    job_id = svc.create(request(src, "m.csv", etag, copy, src))
    engine = svc.dispatcher.engine
    engine.prepare("1250000000", job_id)
    engine.activate("1250000000", job_id)
    claim = svc.store.claim_chunk("w1", time.time(), 60)
    assert claim is not None
    # WHEN the same chunk is run by three workers at once, then delivered again
    threads = [threading.Thread(target=engine.run_chunk, args=(claim, f"w{n}")) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.run_chunk(claim, "w9")
    # AND the workers then carry on from wherever the standing segments stop
    svc.dispatcher.run_until_idle()
    # THEN the tasks are counted once, and the report has one row each
    job = svc.describe(job_id)
    assert (job.findtext("Status"), job.findtext("ProgressSummary/NumberOfTasksSucceeded")) == (
        "Complete",
        "30",
    )
    _, rows = read_report(svc.s3, src, job_id)
    assert sorted(r[1] for r in rows["succeeded"]) == sorted(f"k{n}" for n in range(30))


def test_a_report_fed_back_as_a_manifest_retries_the_failed_tasks(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN a copy job whose report lists failed tasks (their sources were missing)
    svc = make_service()
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    keys = ["ok 1", "late+2", "late%3"]
    svc.s3.put_object(Bucket=src, Key="ok 1", Body=b"x")
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, k) for k in keys]))
    copy = f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
    first = svc.wait(svc.create(request(src, "m.csv", etag, copy, src, token="first")), "Complete")
    manifest, _ = read_report(svc.s3, src, first.findtext("JobId") or "")
    (failed_result,) = [r for r in manifest["Results"] if r["TaskExecutionStatus"] == "failed"]
    # WHEN the missing objects appear and the failed-results file is the next job's manifest
    for key in ("late+2", "late%3"):
        svc.s3.put_object(Bucket=src, Key=key, Body=b"y")
    report_etag = svc.s3.head_object(Bucket=src, Key=failed_result["Key"])["ETag"]
    retry = request(
        src,
        failed_result["Key"],
        report_etag,
        copy,
        src,
        token="retry",
        fields=("Bucket", "Key", "VersionId", "Ignore", "Ignore", "Ignore", "Ignore"),
    )
    second = svc.wait(svc.create(retry), "Complete")
    # THEN exactly the failed tasks ran, and succeeded
    assert second.findtext("ProgressSummary/TotalNumberOfTasks") == "2"
    assert second.findtext("ProgressSummary/NumberOfTasksSucceeded") == "2"
    assert svc.s3.get_object(Bucket=dst, Key="late%3")["Body"].read() == b"y"


def test_a_priority_change_applies_to_chunks_not_yet_started(make_service: Callable[..., Service]) -> None:
    # GIVEN two active jobs of 4 chunks each, "b" ahead of "a", and one chunk of "b" done
    svc = make_service(
        engine_settings(chunk_max_tasks=5, workers=1, task_concurrency=1), workers_started=False
    )
    bucket = new_bucket(svc.s3)
    from tests.faults import count_only, inject

    seen = inject(svc.s3, "DeleteObjects", count_only())
    ids = {}
    for name, priority in (("a", 1), ("b", 2)):
        etag = put_manifest(
            svc.s3, bucket, f"{name}.csv", csv_manifest([(bucket, f"{name}/{n}") for n in range(20)])
        )
        ids[name] = svc.create(
            request(bucket, f"{name}.csv", etag, "<COSDeleteObject/>", bucket, token=name, priority=priority)
        )
    while len(seen.seen) < 1:
        assert svc.dispatcher.step("w")
    # WHEN "a" is raised above "b"
    reply = call(svc.url, "POST", f"/jobs/{ids['a']}/priority?priority=100")
    assert reply.xml.findtext("Priority") == "100"
    svc.dispatcher.run_until_idle()
    # THEN every chunk of "a" runs before the rest of "b"
    order = ["a" if b"<Key>a/" in (r.body or b"") else "b" for r in seen.seen]
    assert order == ["b", "a", "a", "a", "a", "b", "b", "b"]


def test_a_manifest_that_never_answers_fails_the_job_after_its_attempts(
    make_service: Callable[..., Service],
) -> None:
    from tests.faults import inject, s3_error

    svc = make_service(engine_settings(prepare_attempts=3, prepare_retry_seconds=0.05))
    bucket = new_bucket(svc.s3)
    etag = put_manifest(svc.s3, bucket, "m.csv", csv_manifest([(bucket, "a")]))
    manifest_reads = inject(svc.s3, "GetObject", lambda _r, _c: s3_error(500, "InternalError", "try again"))
    job = svc.wait(svc.create(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket)), "Failed")
    assert job.findtext("FailureReasons/JobFailure/FailureCode") == "ManifestUnreadable"
    attempts = {r.headers["amz-sdk-invocation-id"] for r in manifest_reads.seen}  # one per GetObject call
    assert len(attempts) == 3


def test_a_job_cancelled_before_it_ran_leaves_no_ledger(make_service: Callable[..., Service]) -> None:
    svc = make_service(workers_started=False)
    bucket = new_bucket(svc.s3)
    etag = put_manifest(svc.s3, bucket, "m.csv", csv_manifest([(bucket, "a"), (bucket, "b")]))
    job_id = svc.create(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket, confirm=True))
    svc.dispatcher.run_until_idle()
    assert svc.describe(job_id).findtext("Status") == "Suspended"
    assert svc.store.get_chunk(job_id, 0) is not None
    assert svc.status(job_id, "Cancelled").xml.findtext("Status") == "Cancelled"
    assert svc.store.get_chunk(job_id, 0) is None


def test_a_prepare_cut_short_goes_on_from_its_checkpoint_after_a_restart(
    make_service: Callable[..., Service],
) -> None:
    from tests.faults import count_only, inject

    # GIVEN a job whose prepare stopped after its first chunk (the process died there)
    svc = make_service(engine_settings(chunk_max_tasks=10), workers_started=False)
    bucket = new_bucket(svc.s3)
    manifest = csv_manifest([(bucket, f"k{n:02d}") for n in range(35)])
    etag = put_manifest(svc.s3, bucket, "m.csv", manifest)
    job_id = svc.create(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket))
    assert svc.dispatcher.engine.prepare("1250000000", job_id, deadline=0.0) is True
    assert svc.describe(job_id).findtext("Status") == "Preparing"
    # WHEN the workers start again
    reads = inject(svc.s3, "GetObject", count_only())
    svc.dispatcher.run_until_idle()
    # THEN the manifest was read on from the second chunk's first row, and every task ran once
    eleventh_row = manifest.index(f"{bucket},k10".encode())
    assert reads.seen[0].headers["Range"] == f"bytes={eleventh_row}-".encode()
    job = svc.describe(job_id)
    assert (job.findtext("Status"), job.findtext("ProgressSummary/TotalNumberOfTasks")) == ("Complete", "35")
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "35"


def test_until_idle_runs_chunks_on_every_worker_and_stops_when_all_is_done(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN a copy job of four chunks whose copies are slow, and two workers of one task each
    svc = make_service(
        engine_settings(chunk_max_tasks=3, workers=2, task_concurrency=1), workers_started=False
    )
    src, copy = _objects_to_copy(svc, [f"k{n:02d}" for n in range(12)])
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"k{n:02d}") for n in range(12)]))
    job_id = svc.create(request(src, "m.csv", etag, copy, src))
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow(_request: object, _count: int) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.1)
        with lock:
            in_flight[0] -= 1

    from tests.faults import inject

    inject(svc.s3, "CopyObject", slow)
    # WHEN `batchops run --until-idle` does the work
    svc.dispatcher.run_until_idle()
    # THEN both workers ran chunks at once, and it returned only once the job was complete
    assert most[0] == 2
    job = svc.describe(job_id)
    assert job.findtext("Status") == "Complete"
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "12"


def test_a_worker_goes_on_with_its_next_chunk_while_the_last_tasks_of_one_run(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN a copy job of three chunks of four, one worker with four in flight, and the last copy
    # of the first chunk slow
    svc = make_service(
        engine_settings(chunk_max_tasks=4, workers=1, task_concurrency=4), workers_started=False
    )
    src, copy = _objects_to_copy(svc, [f"k{n:02d}" for n in range(12)])
    etag = put_manifest(svc.s3, src, "m.csv", csv_manifest([(src, f"k{n:02d}") for n in range(12)]))
    job_id = svc.create(request(src, "m.csv", etag, copy, src))
    seen: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()

    def timed(request: object, _count: int) -> None:
        key = str(getattr(request, "url", "")).rsplit("/", 1)[-1]
        began = time.monotonic()
        time.sleep(0.5 if key == "k03" else 0.01)
        with lock:
            seen[key] = (began, time.monotonic())

    from tests.faults import inject

    inject(svc.s3, "CopyObject", timed)
    # WHEN `batchops run --until-idle` does the work
    svc.dispatcher.run_until_idle()
    # THEN the second chunk's copies (k04..k07) ran while the first chunk's last was held, and
    # every chunk was recorded: the job completed with all twelve
    assert all(seen[f"k{n:02d}"][1] < seen["k03"][1] for n in range(4, 8))
    job = svc.describe(job_id)
    assert job.findtext("Status") == "Complete"
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "12"
    _, rows = read_report(svc.s3, src, job_id)
    assert sorted(row[1] for row in rows["succeeded"]) == [f"k{n:02d}" for n in range(12)]


def test_a_job_created_while_a_worker_goes_from_chunk_to_chunk_is_prepared_between_them(
    make_service: Callable[..., Service],
) -> None:
    # GIVEN one worker of one task in flight running a job of four one-copy chunks, slow copies
    svc = make_service(engine_settings(chunk_max_tasks=1, workers=1, task_concurrency=1))
    src, copy = _objects_to_copy(svc, [f"k{n}" for n in range(5)])
    began: list[tuple[str, float]] = []
    first_copy = threading.Event()

    def slow(request: object, _count: int) -> None:
        began.append((str(getattr(request, "url", "")).rsplit("/", 1)[-1], time.monotonic()))
        first_copy.set()
        time.sleep(0.2)

    from tests.faults import inject

    inject(svc.s3, "CopyObject", slow)
    etag = put_manifest(svc.s3, src, "a.csv", csv_manifest([(src, f"k{n}") for n in range(4)]))
    first = svc.create(request(src, "a.csv", etag, copy, src, token="a"))
    assert first_copy.wait(30)
    # WHEN a second job is created as the first's first copy runs
    etag = put_manifest(svc.s3, src, "b.csv", csv_manifest([(src, "k4")]))
    second = svc.create(request(src, "b.csv", etag, copy, src, token="b"))
    while svc.describe(second).findtext("Status") == "New":
        time.sleep(0.005)
    prepared = time.monotonic()
    # THEN it was prepared before the first job's last copy began: the worker left its run of
    # chunks for it, as it does between chunks run one by one
    svc.wait(first, "Complete")
    svc.wait(second, "Complete")
    last_of_first = max(t for key, t in began if key in ("k0", "k1", "k2", "k3"))
    assert prepared < last_of_first


def test_chunks_begun_in_a_window_that_fails_are_all_released(
    make_service: Callable[..., Service],
) -> None:
    from functools import partial

    from batchops.settings import DEFAULT_APPID
    from batchops.store.base import StoreError

    # GIVEN an active copy job of high priority and an active delete job of low, a chunk each
    svc = make_service(
        engine_settings(chunk_max_tasks=4, workers=1, task_concurrency=4), workers_started=False
    )
    src, copy = _objects_to_copy(svc, [f"k{n}" for n in range(4)])
    etag = put_manifest(svc.s3, src, "c.csv", csv_manifest([(src, f"k{n}") for n in range(4)]))
    copy_id = svc.create(request(src, "c.csv", etag, copy, src, token="c", priority=100))
    etag = put_manifest(svc.s3, src, "d.csv", csv_manifest([(src, f"d{n}") for n in range(4)]))
    delete_id = svc.create(request(src, "d.csv", etag, "<COSDeleteObject/>", src, token="d", priority=1))
    dispatcher = svc.dispatcher
    engine = dispatcher.engine
    for job_id in (copy_id, delete_id):
        engine.prepare(DEFAULT_APPID, job_id)
        engine.activate(DEFAULT_APPID, job_id)
    # AND the job store does not answer when the copy job is settled
    settle = engine.settle

    def failing_settle(appid: str, job_id: str) -> None:
        if job_id == copy_id:
            raise StoreError("the job store did not answer")
        settle(appid, job_id)

    engine.settle = failing_settle  # type: ignore[method-assign]
    # WHEN a worker runs the copy chunk, leasing the delete chunk (to run after) as the copy
    # chunk starts its last task
    claim = svc.store.claim_chunk("w", time.time(), 60)
    assert claim is not None and claim.job_id == copy_id
    with pytest.raises(StoreError):
        engine.run_chunk(claim, "w", following=partial(dispatcher._next_chunk, "w"))
    # THEN the error is raised and no chunk is left leased, no lease kept alive
    assert [t for t in threading.enumerate() if t.name == "batchops-lease"] == []
    assert svc.store.busy_chunks(delete_id, time.time()) == 0
    assert svc.store.busy_chunks(copy_id, time.time()) == 0


def test_a_report_is_written_in_steps_the_workers_pick_up_one_after_another(
    make_service: Callable[..., Service],
) -> None:
    from batchops.report.writer import results_key

    # GIVEN workers whose finalize stops at its first chance (steps of 0 s), and a job of four
    # chunks
    svc = make_service(engine_settings(chunk_max_tasks=10, finalize_step_seconds=0.0))
    bucket = new_bucket(svc.s3)
    keys = [f"logs/{n:02d} +%.log" for n in range(35)]
    etag = put_manifest(svc.s3, bucket, "m.csv", csv_manifest([(bucket, key) for key in keys]))
    # WHEN the job runs
    job_id = svc.create(request(bucket, "m.csv", etag, "<COSDeleteObject/>", bucket))
    job = svc.wait(job_id, "Complete", "Failed")
    # THEN it completes, its report written one chunk a step, each step's rows in a file of its own
    assert job.findtext("Status") == "Complete", etree.tostring(job)
    assert job.findtext("ProgressSummary/NumberOfTasksSucceeded") == "35"
    manifest, rows = read_report(svc.s3, bucket, job_id)
    assert [r["Key"] for r in manifest["Results"]] == [
        results_key("reports", job_id, "succeeded", n) for n in range(4)
    ]
    assert [unquote_plus(row[1]) for row in rows["succeeded"]] == keys
    assert svc.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert svc.store.finalize_checkpoint(job_id) is None


def _objects_to_copy(svc: Service, keys: list[str]) -> tuple[str, str]:
    """(a new bucket holding ``keys``, a copy operation to another new bucket)."""
    src, dst = new_bucket(svc.s3), new_bucket(svc.s3)
    for key in keys:
        svc.s3.put_object(Bucket=src, Key=key, Body=b"x")
    return src, f"<COSPutObjectCopy><TargetResource>arn:aws:s3:::{dst}</TargetResource></COSPutObjectCopy>"
