"""ReportWriter against a moto server over HTTP: the S3 report layout, MD5s, scope, reruns, parts
and files, aborts, memory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

import boto3
import pytest
from botocore.config import Config

from batchops.report.rows import REPORT_SCHEMA, ReportRow, parse_row
from batchops.report.writer import (
    MAX_PARTS,
    MIN_PART_BYTES,
    ReportAbandonedError,
    ReportLocation,
    ReportWriter,
    WrittenFile,
    iso_millis,
    results_key,
)
from tests.conftest import ROOT
from tests.faults import count_only, inject

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.integration

JOB_ID = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"
FORMAT = "Report_CSV_V1"
CREATED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


class Boom(Exception):
    """Raised by a hook to make one S3 call fail."""


@pytest.fixture
def s3(moto_endpoint: str) -> S3Client:
    return boto3.client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(s3: S3Client) -> str:
    name = f"reports-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def mixed_rows() -> list[ReportRow]:
    return [
        ReportRow("src-bucket", "photos/a b.jpg", None, True, 200, "", "Successful"),
        ReportRow("src-bucket", "photos/c+d.jpg", "v1", True, 200, "", "Successful"),
        ReportRow(
            "src-bucket", "gone,1.jpg", None, False, 404, "NoSuchKey", "The specified key does not exist."
        ),
        ReportRow("src-bucket", "日本/e.jpg", None, True, 200, "", "Successful"),
        ReportRow("src-bucket", "denied", "v9", False, 403, "AccessDenied", '=HYPERLINK("x")\nmore'),
    ]


def write_report(
    s3: S3Client,
    bucket: str,
    rows: list[ReportRow],
    *,
    prefix: str | None = "reports",
    failed_only: bool = False,
    created: datetime = CREATED,
) -> ReportLocation:
    with ReportWriter(
        s3, bucket, prefix, JOB_ID, FORMAT, failed_only=failed_only, clock=lambda: created
    ) as w:
        for each in rows:
            w.add(each)
        return w.finish()


def read_json(s3: S3Client, bucket: str, key: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return loaded


def all_keys(s3: S3Client, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_mixed_report_matches_the_s3_layout_and_each_md5(s3: S3Client, bucket: str) -> None:
    # GIVEN three succeeded and two failed tasks
    rows = mixed_rows()
    # WHEN the report is written under prefix "reports"
    location = write_report(s3, bucket, rows)
    # THEN manifest.json describes one results file per status, each MD5 matching its bytes
    root = f"reports/job-{JOB_ID}"
    manifest = read_json(s3, bucket, f"{root}/manifest.json")
    assert list(manifest) == ["Format", "ReportCreationDate", "Results", "ReportSchema"]
    assert manifest["Format"] == FORMAT
    assert manifest["ReportCreationDate"] == "2024-05-06T07:08:09.123Z"
    assert manifest["ReportSchema"] == REPORT_SCHEMA
    assert [r["TaskExecutionStatus"] for r in manifest["Results"]] == ["succeeded", "failed"]
    read_back: list[ReportRow] = []
    for result in manifest["Results"]:
        assert result["Bucket"] == bucket
        assert result["Key"].startswith(f"{root}/results/")
        body = s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == result["MD5Checksum"]
        lines = body.decode().splitlines(keepends=True)
        parsed = [parse_row(line) for line in lines]
        assert {each.task_status for each in parsed} == {result["TaskExecutionStatus"]}
        read_back.extend(parsed)
    # AND every task is in the report once, keys decoded back to the originals
    assert sorted((r.key, r.succeeded, r.http_status) for r in read_back) == sorted(
        (r.key, r.succeeded, r.http_status) for r in rows
    )
    denied = next(r for r in read_back if r.key == "denied")
    assert (denied.http_status, denied.error_code, denied.message) == (
        403,
        "AccessDenied",
        '\'=HYPERLINK("x") more',
    )
    # AND the location returned says the same, and nothing else was written
    assert location == ReportLocation(
        bucket=bucket,
        manifest_key=f"{root}/manifest.json",
        result_keys=tuple(r["Key"] for r in manifest["Results"]),
        rows_written={"succeeded": 3, "failed": 2},
    )
    assert all_keys(s3, bucket) == sorted([location.manifest_key, *location.result_keys])


def test_results_files_are_named_by_the_sha1_of_job_and_status(s3: S3Client, bucket: str) -> None:
    # GIVEN a written report
    location = write_report(s3, bucket, mixed_rows())
    # THEN each results key is results/<sha1("<job>/<status>")>.csv: 40 hex digits
    expected = {
        results_key("reports", JOB_ID, status): hashlib.sha1(f"{JOB_ID}/{status}".encode()).hexdigest()
        for status in ("succeeded", "failed")
    }
    assert set(location.result_keys) == set(expected)
    for key, digest in expected.items():
        assert key == f"reports/job-{JOB_ID}/results/{digest}.csv"
        assert len(digest) == 40


def test_failed_tasks_only_writes_only_failed_rows(s3: S3Client, bucket: str) -> None:
    # GIVEN the mixed tasks and a FailedTasksOnly report
    # WHEN it is written
    location = write_report(s3, bucket, mixed_rows(), failed_only=True)
    # THEN only a failed results file exists, holding the two failed rows
    manifest = read_json(s3, bucket, location.manifest_key)
    assert [r["TaskExecutionStatus"] for r in manifest["Results"]] == ["failed"]
    body = s3.get_object(Bucket=bucket, Key=manifest["Results"][0]["Key"])["Body"].read().decode()
    assert sorted(parse_row(line).key for line in body.splitlines()) == ["denied", "gone,1.jpg"]
    assert location.rows_written == {"succeeded": 0, "failed": 2}
    assert len(all_keys(s3, bucket)) == 2


@pytest.mark.parametrize(
    ("prefix", "root"),
    [
        (None, f"job-{JOB_ID}"),
        ("", f"job-{JOB_ID}"),
        ("reports", f"reports/job-{JOB_ID}"),
        ("a/b/", f"a/b/job-{JOB_ID}"),
    ],
)
def test_prefix_or_no_prefix_layout(s3: S3Client, bucket: str, prefix: str | None, root: str) -> None:
    # GIVEN a report prefix (or none)
    # WHEN the report is written
    location = write_report(s3, bucket, mixed_rows(), prefix=prefix)
    # THEN every key sits under <prefix>/job-<id>/ (or job-<id>/), results under results/
    keys = all_keys(s3, bucket)
    assert location.manifest_key == f"{root}/manifest.json"
    assert all(key.startswith(f"{root}/") for key in keys)
    assert sorted(key.removeprefix(f"{root}/").split("/")[0] for key in keys) == [
        "manifest.json",
        "results",
        "results",
    ]
    assert not any("//" in key for key in keys)


def test_rerun_overwrites_the_same_keys(s3: S3Client, bucket: str) -> None:
    # GIVEN a report already written for the job
    first = write_report(s3, bucket, mixed_rows())
    # WHEN finalize runs again an hour later with the same rows
    second = write_report(s3, bucket, mixed_rows(), created=CREATED + timedelta(hours=1))
    # THEN the same keys were overwritten: no second set of results files
    assert second.result_keys == first.result_keys
    assert all_keys(s3, bucket) == sorted([first.manifest_key, *first.result_keys])
    manifest = read_json(s3, bucket, second.manifest_key)
    assert manifest["ReportCreationDate"] == "2024-05-06T08:08:09.123Z"
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == result["MD5Checksum"]


def test_no_rows_still_writes_a_manifest_with_no_results(s3: S3Client, bucket: str) -> None:
    # GIVEN a job whose report holds nothing (all succeeded, FailedTasksOnly)
    rows = [r for r in mixed_rows() if r.succeeded]
    # WHEN the report is written
    location = write_report(s3, bucket, rows, failed_only=True)
    # THEN manifest.json exists with an empty Results list and is the only object
    manifest = read_json(s3, bucket, location.manifest_key)
    assert manifest["Results"] == []
    assert location.result_keys == ()
    assert all_keys(s3, bucket) == [location.manifest_key]


def test_manifest_is_written_last(s3: S3Client, bucket: str) -> None:
    # GIVEN a record of every S3 call the writer makes
    calls: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params.get("Key", "")))

    s3.meta.events.register("before-parameter-build.s3", record)
    # WHEN a report is written
    write_report(s3, bucket, mixed_rows())
    # THEN manifest.json is put once, as the very last call, after both results files
    manifest = f"reports/job-{JOB_ID}/manifest.json"
    assert [key for _, key in calls].count(manifest) == 1
    assert calls[-1] == ("PutObject", manifest)
    assert len([c for c in calls if c[1].endswith(".csv")]) == 2


def big_rows(count: int, failed_every: int = 10) -> list[ReportRow]:
    """``count`` rows of about 70 bytes, every ``failed_every``-th failed."""
    return [
        ReportRow(
            "src-bucket",
            f"dir/sub directory/object-{n:07d}.bin",
            None,
            n % failed_every != 0,
            200 if n % failed_every else 404,
            "" if n % failed_every else "NoSuchKey",
            "Successful" if n % failed_every else "gone",
        )
        for n in range(count)
    ]


def uploads_in_progress(s3: S3Client, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_a_failed_part_aborts_the_upload_and_writes_no_manifest(s3: S3Client, bucket: str) -> None:
    # GIVEN an S3 that refuses the second part of any upload (after botocore's retries)
    def refuse_part_2(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            raise Boom("part 2")

    s3.meta.events.register("before-parameter-build.s3.UploadPart", refuse_part_2)
    with ReportWriter(
        s3, bucket, "reports", JOB_ID, FORMAT, failed_only=False, part_bytes=MIN_PART_BYTES
    ) as w:
        # WHEN rows fill more than two parts
        with pytest.raises(Boom):
            for each in big_rows(200_000):
                w.add(each)
        # THEN the upload in progress was aborted, nothing is visible, and the writer is done
        assert uploads_in_progress(s3, bucket) == []
        assert all_keys(s3, bucket) == []
        with pytest.raises(RuntimeError, match="cannot be added"):
            w.add(mixed_rows()[0])
        with pytest.raises(RuntimeError, match="failed"):
            w.finish()


def test_a_failed_completion_aborts_every_upload_and_writes_no_manifest(s3: S3Client, bucket: str) -> None:
    # GIVEN an S3 that refuses to complete any upload, and rows that start one upload per status
    def refuse(params: dict[str, Any], **_: Any) -> None:
        raise Boom(params["Key"])

    s3.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", refuse)
    with ReportWriter(
        s3, bucket, "reports", JOB_ID, FORMAT, failed_only=False, part_bytes=MIN_PART_BYTES
    ) as w:
        for each in big_rows(180_000, failed_every=2):
            w.add(each)
        assert len(uploads_in_progress(s3, bucket)) == 2
        # WHEN finish fails on the first completion
        with pytest.raises(Boom):
            w.finish()
    # THEN both uploads were aborted and no object, manifest or results, exists
    assert uploads_in_progress(s3, bucket) == []
    assert all_keys(s3, bucket) == []


def test_leaving_the_block_without_finish_aborts_the_uploads(s3: S3Client, bucket: str) -> None:
    # GIVEN a writer whose succeeded file has parts in S3
    with (
        pytest.raises(ZeroDivisionError),
        ReportWriter(s3, bucket, None, JOB_ID, FORMAT, failed_only=False, part_bytes=MIN_PART_BYTES) as w,
    ):
        for each in big_rows(100_000):
            w.add(each)
        assert uploads_in_progress(s3, bucket) != []
        # WHEN the block ends with an exception
        _ = 1 / 0
    # THEN the upload is aborted, nothing was written, and the rows are gone
    assert uploads_in_progress(s3, bucket) == []
    assert all_keys(s3, bucket) == []
    with pytest.raises(RuntimeError, match="closed"):
        w.finish()


def test_told_to_stop_it_stops_before_the_next_write_and_leaves_nothing(s3: S3Client, bucket: str) -> None:
    # GIVEN a writer allowed 3 writes (its finalizer then loses the job)
    calls: list[str] = []
    s3.meta.events.register("before-parameter-build.s3", lambda model, **_: calls.append(model.name))
    allowed = iter([True, True, True])
    writer = ReportWriter(
        s3,
        bucket,
        "reports",
        JOB_ID,
        FORMAT,
        failed_only=False,
        part_bytes=MIN_PART_BYTES,
        may_write=lambda: next(allowed, False),
    )
    # WHEN rows keep coming past the third write
    with writer as w, pytest.raises(ReportAbandonedError):
        for each in big_rows(250_000):
            w.add(each)
    # THEN the writes were the three allowed (create, part 1, part 2); then only the abort
    assert calls == ["CreateMultipartUpload", "UploadPart", "UploadPart", "AbortMultipartUpload"]
    assert uploads_in_progress(s3, bucket) == []
    assert all_keys(s3, bucket) == []


def test_results_roll_over_to_new_files_at_the_size_bound(s3: S3Client, bucket: str) -> None:
    # GIVEN results files bounded to 4 KiB and 2,000 rows (about 140 KB)
    rows = big_rows(2_000)
    with ReportWriter(
        s3, bucket, "reports", JOB_ID, FORMAT, failed_only=False, clock=lambda: CREATED, file_bytes=4096
    ) as w:
        for each in rows:
            w.add(each)
        location = w.finish()
    # THEN manifest.json lists every file, succeeded ones first, each numbered in turn
    manifest = read_json(s3, bucket, location.manifest_key)
    statuses = [r["TaskExecutionStatus"] for r in manifest["Results"]]
    assert statuses == sorted(statuses, key=("succeeded", "failed").index)
    for status in ("succeeded", "failed"):
        keys = [r["Key"] for r in manifest["Results"] if r["TaskExecutionStatus"] == status]
        assert len(keys) > 3
        assert keys == [results_key("reports", JOB_ID, status, n) for n in range(len(keys))]
    # AND each file is whole rows within the bound, its MD5 right, and in manifest order the
    # files hold every row once, in the order written
    read_back: dict[str, list[str]] = {"succeeded": [], "failed": []}
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
        assert 0 < len(body) <= 4096
        assert body.endswith(b"\n")
        assert hashlib.md5(body).hexdigest() == result["MD5Checksum"]
        read_back[result["TaskExecutionStatus"]].extend(
            parse_row(line).key for line in body.decode().splitlines()
        )
    assert read_back == {
        status: [r.key for r in rows if r.task_status == status] for status in ("succeeded", "failed")
    }
    assert all_keys(s3, bucket) == sorted([location.manifest_key, *location.result_keys])
    assert location.rows_written == {"succeeded": 1_800, "failed": 200}


@pytest.mark.parametrize(
    ("checksums", "part_header"),
    [("when_supported", "x-amz-checksum-crc32"), ("when_required", "Content-MD5")],
)
def test_every_part_carries_a_checksum_whatever_the_clients_setting(
    moto_endpoint: str, bucket: str, checksums: Literal["when_supported", "when_required"], part_header: str
) -> None:
    # GIVEN a client that adds checksums by default (AWS), or only where required (an endpoint
    # that does not know the newer ones)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, config=Config(request_checksum_calculation=checksums))
    headers = inject(s3, "UploadPart", count_only())
    # WHEN a results file goes up in parts
    with ReportWriter(
        s3, bucket, "reports", JOB_ID, FORMAT, failed_only=True, part_bytes=MIN_PART_BYTES
    ) as w:
        for each in big_rows(160_000, failed_every=1):
            w.add(each)
        location = w.finish()
    # THEN each part was sent with its checksum, and the object is whole, its MD5 the manifest's
    assert len(headers.seen) >= 2
    assert all(part_header.lower() in {h.lower() for h in req.headers} for req in headers.seen)
    manifest = read_json(s3, bucket, location.manifest_key)
    (result,) = manifest["Results"]
    body = s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
    assert hashlib.md5(body).hexdigest() == result["MD5Checksum"]
    assert body.count(b"\n") == 160_000


def test_refuses_parts_s3_would_refuse() -> None:
    s3 = boto3.client("s3")
    # GIVEN parts under S3's 5 MiB minimum, or files that would need over 10,000 parts
    # THEN the writer refuses them before writing anything
    with pytest.raises(ValueError, match="part_bytes"):
        ReportWriter(s3, "b", None, JOB_ID, FORMAT, failed_only=False, part_bytes=MIN_PART_BYTES - 1)
    with pytest.raises(ValueError, match="file_bytes"):
        ReportWriter(
            s3,
            "b",
            None,
            JOB_ID,
            FORMAT,
            failed_only=False,
            part_bytes=MIN_PART_BYTES,
            file_bytes=MIN_PART_BYTES * MAX_PARTS,
        )


def test_report_creation_date_is_utc_with_milliseconds() -> None:
    # GIVEN a moment in UTC+08:00 and a naive one
    beijing = datetime(2024, 1, 1, 8, 0, 0, 5_000, tzinfo=timezone(timedelta(hours=8)))
    # THEN it is written in UTC with three-digit milliseconds and Z; a naive clock is refused
    assert iso_millis(beijing) == "2024-01-01T00:00:00.005Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        iso_millis(datetime(2024, 1, 1))


# The report runs in a child process so that tracemalloc sees only the writer (the moto server
# lives in this process and keeps every object it stores in memory).
_CHILD = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import boto3
    from batchops.report.rows import ReportRow
    from batchops.report.writer import MIN_PART_BYTES, ReportWriter

    endpoint, bucket, job_id, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    s3 = boto3.client("s3", endpoint_url=endpoint)
    # Rows made before tracing starts, so that the trace sees the writer's own allocations.
    made = [ReportRow("src-bucket", f"dir/sub directory/object-{i:07d}.bin", None, i % 10 != 0,
                      200 if i % 10 else 404, "" if i % 10 else "NoSuchKey", "Successful" if i % 10 else "gone")
            for i in range(rows)]
    tracemalloc.start()
    with ReportWriter(s3, bucket, "big", job_id, "Report_CSV_V1", failed_only=False,
                      part_bytes=MIN_PART_BYTES, file_bytes=2 * MIN_PART_BYTES) as w:
        for row in made:
            w.add(row)
        location = w.finish()
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"peak": peak, "rows": location.rows_written, "manifest": location.manifest_key}))
    """
)


def test_a_report_bigger_than_the_writers_memory_streams_in_parts_and_files(
    s3: S3Client, bucket: str, moto_endpoint: str
) -> None:
    # GIVEN 300,000 tasks (270k succeeded, 30k failed): about 20 MB of rows, in 5 MiB parts and
    # results files of at most 10 MiB
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "batchops"), str(ROOT)])}
    # WHEN a separate process writes the report under tracemalloc
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, moto_endpoint, bucket, JOB_ID, "300000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    assert measured["rows"] == {"succeeded": 270_000, "failed": 30_000}
    # THEN every results file went up in parts and its bytes match MD5Checksum, and the files
    # together hold every row
    manifest = read_json(s3, bucket, measured["manifest"])
    total = lines = 0
    for result in manifest["Results"]:
        body = s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == result["MD5Checksum"]
        assert len(body) <= 2 * MIN_PART_BYTES
        total, lines = total + len(body), lines + body.count(b"\n")
        if len(body) > MIN_PART_BYTES:
            assert "-" in s3.head_object(Bucket=bucket, Key=result["Key"])["ETag"]
    assert lines == 300_000
    assert [r["TaskExecutionStatus"] for r in manifest["Results"]].count("succeeded") == 2
    # AND Python's peak allocation stayed under three parts (a part being sent, a buffer per
    # status), less than the report itself: memory is set by the part size, not by the rows
    assert measured["peak"] < 3 * MIN_PART_BYTES, measured
    assert total > 3 * MIN_PART_BYTES, (total, measured)


def test_writers_one_after_another_make_the_report_of_one_writer(s3: S3Client, bucket: str) -> None:
    # GIVEN 150,000 rows of both statuses, and their report written by one writer
    rows = big_rows(150_000)
    with ReportWriter(
        s3,
        bucket,
        "one-go",
        JOB_ID,
        FORMAT,
        failed_only=False,
        clock=lambda: CREATED,
        part_bytes=MIN_PART_BYTES,
    ) as w:
        for each in rows:
            w.add(each)
        one_go = w.finish()
    # WHEN three writers write them in turn (as finalize steps do), each completing its files at
    # the end and handing them to the next, and each upload announced as it is created
    announced: list[tuple[str, int, str]] = []

    def announce(status: str, number: int, upload_id: str) -> None:
        key = results_key("steps", JOB_ID, status, number)
        assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", []) == []
        announced.append((status, number, upload_id))

    files: tuple[WrittenFile, ...] = ()
    for start, end in [(0, 100_000), (100_000, 100_010), (100_010, 150_000)]:
        with ReportWriter(
            s3,
            bucket,
            "steps",
            JOB_ID,
            FORMAT,
            failed_only=False,
            clock=lambda: CREATED,
            part_bytes=MIN_PART_BYTES,
            written=files,
            on_upload=announce,
        ) as w:
            for each in rows[start:end]:
                w.add(each)
            if end < len(rows):
                files = w.complete_files()
                assert uploads_in_progress(s3, bucket) == []
                assert f"steps/job-{JOB_ID}/manifest.json" not in all_keys(s3, bucket)
            else:
                stepped = w.finish()
    # THEN the manifest lists each writer's file of each status, succeeded first, in turn
    assert stepped.result_keys == tuple(
        results_key("steps", JOB_ID, status, n) for status in ("succeeded", "failed") for n in range(3)
    )

    # AND each status's rows, file after file, are those of the one writer, byte for byte
    def status_bytes(location: ReportLocation) -> dict[str, bytes]:
        manifest = read_json(s3, bucket, location.manifest_key)
        out: dict[str, bytes] = {}
        for result in manifest["Results"]:
            body = s3.get_object(Bucket=bucket, Key=result["Key"])["Body"].read()
            assert hashlib.md5(body).hexdigest() == result["MD5Checksum"], result["Key"]
            out[result["TaskExecutionStatus"]] = out.get(result["TaskExecutionStatus"], b"") + body
        return out

    assert status_bytes(stepped) == status_bytes(one_go)
    # AND the one file bigger than a part (the first writer's succeeded rows) was announced
    assert [(status, number) for status, number, _ in announced] == [("succeeded", 0)]
    assert uploads_in_progress(s3, bucket) == []
