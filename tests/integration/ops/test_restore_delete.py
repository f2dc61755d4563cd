"""COSInitiateRestoreObject and COSDeleteObject against a moto S3 server over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchops.jobs.model import InitiateRestoreObject, JobTier
from batchops.ops.delete import delete_tasks
from batchops.ops.restore import restore_task
from tests.conftest import new_bucket
from tests.faults import count_only, first, inject, response, s3_error

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

RESTORE = InitiateRestoreObject(expiration_in_days=7, job_tier=JobTier.BULK)


def test_restore_of_an_archived_object_and_again(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="cold", Body=b"x", StorageClass="GLACIER")
    sent = inject(s3, "RestoreObject", count_only())
    first_try = restore_task(s3, bucket, "cold", None, RESTORE)
    assert (first_try.succeeded, first_try.http_status, first_try.message) == (True, 202, "Restore initiated")
    assert b"<Days>7</Days>" in sent.seen[0].body  # type: ignore[operator]
    assert b"<Tier>Bulk</Tier>" in sent.seen[0].body  # type: ignore[operator]
    again = restore_task(s3, bucket, "cold", None, RESTORE)
    assert (again.succeeded, again.http_status) == (True, 200)


def test_restore_already_in_progress_counts_as_success(s3: S3Client) -> None:
    # moto never answers 409; S3 does while a restore runs (and to a redelivered task)
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="cold", Body=b"x", StorageClass="DEEP_ARCHIVE")
    inject(
        s3,
        "RestoreObject",
        first(1, lambda: s3_error(409, "RestoreAlreadyInProgress", "restore in progress")),
    )
    outcome = restore_task(s3, bucket, "cold", None, RESTORE)
    assert (outcome.succeeded, outcome.http_status) == (True, 409)


def test_restore_of_a_standard_object_fails_with_s3s_code(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="warm", Body=b"x")
    outcome = restore_task(s3, bucket, "warm", None, RESTORE)
    assert (outcome.succeeded, outcome.http_status, outcome.error_code) == (False, 403, "InvalidObjectState")


def test_deletes_are_batched_by_bucket_and_thousand(s3: S3Client) -> None:
    # GIVEN 2,300 objects in two buckets
    a, b = new_bucket(s3), new_bucket(s3)
    objects = []
    for n in range(2300):
        bucket = a if n % 4 else b
        key = f"k/{n:05d} +%.txt"
        objects.append((bucket, key, None))
    for bucket, key, _ in objects[:5]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    requests = inject(s3, "DeleteObjects", count_only())
    # WHEN deleted
    outcomes = delete_tasks(s3, objects)
    # THEN one request per bucket per 1,000 keys, every task succeeded (missing keys count as deleted)
    assert len(requests.seen) == 2 + 1  # 1,725 keys in a, 575 in b
    assert len(outcomes) == 2300
    assert all(o.succeeded for o in outcomes)
    assert s3.list_objects_v2(Bucket=a).get("KeyCount") == 0


def test_delete_a_version_or_the_current_object(s3: S3Client) -> None:
    bucket = new_bucket(s3, versioned=True)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    v1 = s3.head_object(Bucket=bucket, Key="k")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    (gone,) = delete_tasks(s3, [(bucket, "k", v1)])
    assert gone.succeeded
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in versions] != [] and v1 not in [v["VersionId"] for v in versions]
    (marked,) = delete_tasks(s3, [(bucket, "k", None)])
    assert marked.succeeded and marked.message.startswith("Delete marker")


def test_per_key_errors_are_per_task(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    body = (
        b"<DeleteResult><Deleted><Key>ok</Key></Deleted>"
        b"<Error><Key>locked</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>"
    )
    inject(s3, "DeleteObjects", first(1, lambda: response(200, body, {"Content-Type": "application/xml"})))
    ok, locked = delete_tasks(s3, [(bucket, "ok", None), (bucket, "locked", None)])
    assert ok.succeeded
    assert (locked.succeeded, locked.http_status, locked.error_code) == (False, 403, "AccessDenied")


def test_a_request_failing_as_a_whole_fails_each_task(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    inject(s3, "DeleteObjects", first(1, lambda: s3_error(403, "AccessDenied", "Access Denied")))
    outcomes = delete_tasks(s3, [(bucket, "a", None), (bucket, "b", None)])
    assert [(o.succeeded, o.error_code) for o in outcomes] == [(False, "AccessDenied")] * 2


def test_a_key_listed_twice_is_asked_once_and_answered_twice(s3: S3Client) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="dup", Body=b"x")
    sent = inject(s3, "DeleteObjects", count_only())
    outcomes = delete_tasks(s3, [(bucket, "dup", None), (bucket, "dup", None)])
    assert [o.succeeded for o in outcomes] == [True, True]
    body = sent.seen[0].body
    assert isinstance(body, bytes)
    assert body.count(b"<Key>dup</Key>") == 1
