"""COSInitiateRestoreObject and COSDeleteObject against a moto S3 server over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from botocore.awsrequest import AWSResponse

from batchops.jobs.model import InitiateRestoreObject, JobTier
from batchops.ops.delete import MARKER_RECHECK_SECONDS, DeleteMarkerMemo, delete_tasks
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


# --- quiet and verbose ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def quiet_flags(sent: list[Any]) -> list[bool]:
    """Whether each DeleteObjects request sent asked for a quiet answer."""
    flags = []
    for request in sent:
        assert isinstance(request.body, bytes)
        assert request.body.count(b"<Quiet>") == 1
        flags.append(b"<Quiet>true</Quiet>" in request.body)
    return flags


def xml(body: str) -> Callable[[], AWSResponse]:
    return lambda: response(200, body.encode(), {"Content-Type": "application/xml"})


def test_simple_deletes_are_verbose_until_the_bucket_showed_it_adds_no_markers(s3: S3Client) -> None:
    # GIVEN an unversioned bucket with objects, and a memo that knows nothing of it
    bucket = new_bucket(s3)
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    clock = Clock()
    memo = DeleteMarkerMemo(clock)
    sent = inject(s3, "DeleteObjects", count_only())
    # WHEN its objects are deleted in three requests, the last after the memo's time ran out
    first_answer = delete_tasks(s3, [(bucket, "a", None)], markers=memo)
    second_answer = delete_tasks(s3, [(bucket, "b", None)], markers=memo)
    clock.now += MARKER_RECHECK_SECONDS
    third_answer = delete_tasks(s3, [(bucket, "c", None)], markers=memo)
    # THEN the first is verbose, the second quiet (the first answer showed no delete marker), the
    # third verbose again; every row is the same, and every object is gone
    assert quiet_flags(sent.seen) == [False, True, False]
    for outcomes in (first_answer, second_answer, third_answer):
        assert [(o.succeeded, o.http_status, o.message) for o in outcomes] == [(True, 200, "Successful")]
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_simple_deletes_in_a_versioned_bucket_stay_verbose_for_their_delete_markers(s3: S3Client) -> None:
    # GIVEN a versioned bucket
    bucket = new_bucket(s3, versioned=True)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    memo = DeleteMarkerMemo(Clock())
    sent = inject(s3, "DeleteObjects", count_only())
    # WHEN the current object is deleted twice
    (first_marker,) = delete_tasks(s3, [(bucket, "k", None)], markers=memo)
    (second_marker,) = delete_tasks(s3, [(bucket, "k", None)], markers=memo)
    # THEN both requests are verbose and each row names the delete marker S3 added
    assert quiet_flags(sent.seen) == [False, False]
    markers = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["DeleteMarkers"]]
    assert sorted([first_marker.message, second_marker.message]) == sorted(
        f"Delete marker {m} added" for m in markers
    )


def test_deletes_of_named_versions_are_quiet(s3: S3Client) -> None:
    # GIVEN a versioned bucket with two versions of a key
    bucket = new_bucket(s3, versioned=True)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
    sent = inject(s3, "DeleteObjects", count_only())
    # WHEN both versions are deleted, named
    outcomes = delete_tasks(s3, [(bucket, "k", v1), (bucket, "k", v2)], markers=DeleteMarkerMemo(Clock()))
    # THEN the request is quiet (such rows never carry a marker), both succeed, no version is left
    assert quiet_flags(sent.seen) == [True]
    assert [(o.succeeded, o.message) for o in outcomes] == [(True, "Successful")] * 2
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)


def quiet_memo(s3: S3Client, bucket: str) -> DeleteMarkerMemo:
    """A memo that has seen ``bucket``'s simple deletes add no marker: the next request is quiet."""
    memo = DeleteMarkerMemo(Clock())
    memo.learn((str(s3.meta.endpoint_url), bucket), markers=False)
    return memo


def test_a_quiet_answer_fails_exactly_the_keys_it_lists(s3: S3Client) -> None:
    # GIVEN a quiet request for five keys, answered with errors on two of them
    bucket = new_bucket(s3)
    answer = xml(
        "<DeleteResult>"
        "<Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        "<Error><Key>d</Key><Code>SlowDown</Code><Message>slow down</Message></Error>"
        "</DeleteResult>"
    )
    sent = inject(s3, "DeleteObjects", first(1, answer))
    # WHEN deleted
    outcomes = delete_tasks(s3, [(bucket, k, None) for k in "abcde"], markers=quiet_memo(s3, bucket))
    # THEN b and d fail with S3's codes (d transiently), the three others succeed
    assert quiet_flags(sent.seen) == [True]
    assert [(o.succeeded, o.http_status, o.error_code, o.transient) for o in outcomes] == [
        (True, 200, "", False),
        (False, 403, "AccessDenied", False),
        (True, 200, "", False),
        (False, 503, "SlowDown", True),
        (True, 200, "", False),
    ]


def test_an_empty_quiet_answer_means_every_key_was_deleted(s3: S3Client) -> None:
    # GIVEN a quiet request answered 200 with an empty body (S3: "returns an empty response")
    bucket = new_bucket(s3)
    inject(s3, "DeleteObjects", first(1, lambda: response(200, b"")))
    # WHEN deleted THEN every key succeeded
    outcomes = delete_tasks(s3, [(bucket, k, None) for k in "ab"], markers=quiet_memo(s3, bucket))
    assert [o.succeeded for o in outcomes] == [True, True]


@pytest.mark.parametrize(
    "errors",
    [
        "<Error><Code>AccessDenied</Code><Message>no key said</Message></Error>",
        "<Error><Key>zzz</Key><Code>AccessDenied</Code><Message>a key not asked</Message></Error>",
    ],
    ids=["error-without-key", "error-on-a-key-not-asked"],
)
def test_a_quiet_answer_that_cannot_be_matched_to_the_request_reports_no_success(
    s3: S3Client, errors: str
) -> None:
    # GIVEN a quiet request whose answer lists an error on b and one it cannot be matched by
    bucket = new_bucket(s3)
    answer = xml(
        "<DeleteResult><Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        f"{errors}</DeleteResult>"
    )
    inject(s3, "DeleteObjects", first(1, answer))
    # WHEN deleted
    outcomes = delete_tasks(s3, [(bucket, k, None) for k in "abc"], markers=quiet_memo(s3, bucket))
    # THEN b fails with its error and a and c fail transiently (to be retried), none succeeded
    assert [(o.succeeded, o.error_code, o.transient) for o in outcomes] == [
        (False, "InternalError", True),
        (False, "AccessDenied", False),
        (False, "InternalError", True),
    ]


def test_a_quiet_error_naming_a_key_but_another_version_fails_every_version_of_that_key(
    s3: S3Client,
) -> None:
    # GIVEN a quiet request for two versions of k and one of j; the answer names k with a version
    # that was not asked, and j both deleted and failed
    bucket = new_bucket(s3)
    answer = xml(
        "<DeleteResult>"
        "<Deleted><Key>j</Key><VersionId>j1</VersionId></Deleted>"
        "<Error><Key>k</Key><VersionId>other</VersionId><Code>AccessDenied</Code><Message>m</Message></Error>"
        "<Error><Key>j</Key><VersionId>j1</VersionId><Code>AccessDenied</Code><Message>m</Message></Error>"
        "</DeleteResult>"
    )
    inject(s3, "DeleteObjects", first(1, answer))
    # WHEN deleted
    outcomes = delete_tasks(s3, [(bucket, "k", "k1"), (bucket, "k", "k2"), (bucket, "j", "j1")])
    # THEN all three fail with the error: an error beats a Deleted entry
    assert [(o.succeeded, o.error_code) for o in outcomes] == [(False, "AccessDenied")] * 3


def test_a_quiet_answer_cut_short_fails_every_key(s3: S3Client) -> None:
    # GIVEN a quiet request whose every answer is a DeleteResult cut off after its first error
    bucket = new_bucket(s3)
    cut = (
        b"<DeleteResult><Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    )
    sent = inject(s3, "DeleteObjects", first(100, lambda: response(200, cut)))
    # WHEN deleted
    outcomes = delete_tasks(s3, [(bucket, k, None) for k in "abc"], markers=quiet_memo(s3, bucket))
    # THEN the answer is an error of the whole request (retried first): no key succeeded
    assert len(sent.seen) > 1
    assert [o.succeeded for o in outcomes] == [False, False, False]
    assert {o.http_status for o in outcomes} == {500}
