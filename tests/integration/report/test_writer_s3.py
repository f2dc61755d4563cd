"""ReportWriter against a moto server over HTTP: the S3 report layout, MD5s, scope, reruns, memory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from batchops.report.rows import REPORT_SCHEMA, ReportRow, parse_row
from batchops.report.writer import ReportLocation, ReportWriter, iso_millis, results_key
from tests.conftest import ROOT

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


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile at a private directory so a test can see the spools come and go."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


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


def test_a_failed_upload_writes_no_manifest_and_finish_can_be_retried(
    s3: S3Client, bucket: str, spool_dir: Path
) -> None:
    # GIVEN an S3 that fails the failed-rows upload once
    failing = results_key("reports", JOB_ID, "failed")
    failures = [failing]

    def fail_once(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") in failures:
            failures.remove(params["Key"])
            raise Boom(params["Key"])

    s3.meta.events.register("before-parameter-build.s3.PutObject", fail_once)
    with ReportWriter(s3, bucket, "reports", JOB_ID, FORMAT, failed_only=False, clock=lambda: CREATED) as w:
        for each in mixed_rows():
            w.add(each)
        # WHEN finish fails
        with pytest.raises(Boom):
            w.finish()
        # THEN no manifest exists, the spools are kept, and no more rows are accepted
        assert f"reports/job-{JOB_ID}/manifest.json" not in all_keys(s3, bucket)
        assert any(spool_dir.iterdir())
        with pytest.raises(RuntimeError, match="cannot be added"):
            w.add(mixed_rows()[0])
        # AND a second finish completes the report
        location = w.finish()
        assert w.finish() is location
    manifest = read_json(s3, bucket, location.manifest_key)
    assert len(manifest["Results"]) == 2
    assert not any(spool_dir.iterdir())


def test_spool_files_are_removed_however_the_block_ends(s3: S3Client, bucket: str, spool_dir: Path) -> None:
    # GIVEN a writer holding rows on disk
    with ReportWriter(s3, bucket, None, JOB_ID, FORMAT, failed_only=False) as w:
        w.add(mixed_rows()[0])
        assert len(list(spool_dir.iterdir())) == 1
    # WHEN the block ends without finish, THEN the spool is gone and nothing was uploaded
    assert not any(spool_dir.iterdir())
    assert all_keys(s3, bucket) == []
    # AND when the block ends with an exception, the spool is gone too
    with (
        pytest.raises(ZeroDivisionError),
        ReportWriter(s3, bucket, None, JOB_ID, FORMAT, failed_only=False) as w,
    ):
        w.add(mixed_rows()[2])
        _ = 1 / 0
    assert not any(spool_dir.iterdir())
    with pytest.raises(RuntimeError, match="closed"):
        w.finish()


def test_report_creation_date_is_utc_with_milliseconds() -> None:
    # GIVEN a moment in UTC+08:00 and a naive one
    beijing = datetime(2024, 1, 1, 8, 0, 0, 5_000, tzinfo=timezone(timedelta(hours=8)))
    # THEN it is written in UTC with three-digit milliseconds and Z; a naive clock is refused
    assert iso_millis(beijing) == "2024-01-01T00:00:00.005Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        iso_millis(datetime(2024, 1, 1))


# The 100k-row report runs in a child process so that tracemalloc sees only the writer (the moto
# server lives in this process and keeps every object it stores in memory). Uploading costs about
# 1 MiB per request in flight (botocore hashes bodies in 1 MiB blocks) whatever the file size, so
# the child uploads one part at a time to keep the bound tight; measured peak is about 2.3 MB.
_CHILD = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import boto3
    from boto3.s3.transfer import TransferConfig
    from batchops.report.rows import ReportRow
    from batchops.report.writer import ReportWriter

    endpoint, bucket, job_id, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    s3 = boto3.client("s3", endpoint_url=endpoint)
    config = TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2, max_concurrency=1)
    tracemalloc.start()
    with ReportWriter(s3, bucket, "big", job_id, "Report_CSV_V1", failed_only=False, transfer_config=config) as w:
        for i in range(rows):
            ok = i % 10 != 0
            w.add(ReportRow("src-bucket", f"dir/sub directory/object-{i:07d}.bin", None, ok,
                            200 if ok else 404, "" if ok else "NoSuchKey", "Successful" if ok else "gone"))
        spool_peak = tracemalloc.get_traced_memory()[1]
        location = w.finish()
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"spool_peak": spool_peak, "peak": peak, "rows": location.rows_written,
                      "manifest": location.manifest_key}))
    """
)


def test_a_100k_row_report_keeps_memory_flat(s3: S3Client, bucket: str, moto_endpoint: str) -> None:
    # GIVEN 100,000 tasks (90k succeeded, 10k failed), big enough for a multipart upload
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "batchops"), str(ROOT)])}
    # WHEN a separate process writes the report under tracemalloc
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, moto_endpoint, bucket, JOB_ID, "100000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    # THEN Python's peak allocation stayed within a few MB while spooling and while uploading
    assert measured["spool_peak"] < 1 * 1024**2, measured
    assert measured["peak"] < 3 * 1024**2, measured
    assert measured["rows"] == {"succeeded": 90_000, "failed": 10_000}
    # AND the succeeded file went up in parts, and its bytes still match MD5Checksum
    manifest = read_json(s3, bucket, measured["manifest"])
    succeeded = next(r for r in manifest["Results"] if r["TaskExecutionStatus"] == "succeeded")
    assert s3.head_object(Bucket=bucket, Key=succeeded["Key"])["ETag"].strip('"').endswith("-2")
    body = s3.get_object(Bucket=bucket, Key=succeeded["Key"])["Body"].read()
    assert hashlib.md5(body).hexdigest() == succeeded["MD5Checksum"]
    assert body.count(b"\n") == 90_000
