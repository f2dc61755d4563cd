"""COSDeleteObject: delete objects, 1,000 keys per DeleteObjects request.

A task deletes the version its manifest row names, or else the current object (which, in a
versioned bucket, adds a delete marker). S3 reports a missing key as deleted, so deleting twice
(a redelivered chunk) succeeds twice. Errors are per key; a request that fails as a whole fails
every task in it with that error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from batchops.manifest.resources import MAX_KEY_BYTES
from batchops.ops.outcome import TaskOutcome, failure, outcome_of_error, success

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MAX_KEYS_PER_REQUEST = 1000
_XML_SAFE = re.compile("[\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")

ObjectRef = tuple[str, str, str | None]
"""(bucket, key, version id or None)"""


def delete_tasks(s3: S3Client, objects: Sequence[ObjectRef]) -> list[TaskOutcome]:
    """Delete every object; the outcome list matches ``objects`` position by position."""
    outcomes: list[TaskOutcome | None] = [None] * len(objects)
    by_bucket: dict[str, list[int]] = {}
    for index, (bucket, key, version) in enumerate(objects):
        if len(key.encode()) > MAX_KEY_BYTES:
            outcomes[index] = failure(400, "KeyTooLongError", f"the key is longer than {MAX_KEY_BYTES} bytes")
        elif _XML_SAFE.fullmatch(key) is None:
            # A DeleteObjects body cannot carry this key as it is (XML turns CR into LF and has no
            # way to write most control characters): the key goes in the URL of a DeleteObject.
            outcomes[index] = _delete_one(s3, bucket, key, version)
        else:
            by_bucket.setdefault(bucket, []).append(index)
    for bucket, indexes in by_bucket.items():
        for start in range(0, len(indexes), MAX_KEYS_PER_REQUEST):
            batch = indexes[start : start + MAX_KEYS_PER_REQUEST]
            for index, outcome in zip(
                batch, _delete_batch(s3, bucket, [objects[i] for i in batch]), strict=True
            ):
                outcomes[index] = outcome
    return [o for o in outcomes if o is not None]


def _delete_batch(s3: S3Client, bucket: str, objects: list[ObjectRef]) -> list[TaskOutcome]:
    wanted: dict[tuple[str, str | None], None] = {(key, version): None for _, key, version in objects}
    request: list[dict[str, Any]] = [
        {"Key": key, "VersionId": version} if version else {"Key": key} for key, version in wanted
    ]
    try:
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": request, "Quiet": False})  # type: ignore[typeddict-item]
    except (ClientError, BotoCoreError) as exc:
        outcome = outcome_of_error(exc)
        return [outcome] * len(objects)
    results: dict[tuple[str, str | None], TaskOutcome] = {}
    for deleted in response.get("Deleted", []):
        results[(deleted["Key"], deleted.get("VersionId") or None)] = success(200, _deleted_message(deleted))
    for error in response.get("Errors", []):
        code = str(error.get("Code", "InternalError"))
        results[(error["Key"], error.get("VersionId") or None)] = failure(
            _status_of(code),
            code,
            str(error.get("Message", code)),
            transient=code in ("SlowDown", "InternalError"),
        )
    return [
        results.get((key, version))
        or results.get((key, None))
        or failure(500, "InternalError", "DeleteObjects did not report on this key", transient=True)
        for _, key, version in objects
    ]


def _delete_one(s3: S3Client, bucket: str, key: str, version: str | None) -> TaskOutcome:
    extra: dict[str, Any] = {"VersionId": version} if version else {}
    try:
        response = s3.delete_object(Bucket=bucket, Key=key, **extra)
    except (ClientError, BotoCoreError) as exc:
        return outcome_of_error(exc)
    return success(200, _deleted_message(response))


def _deleted_message(deleted: Any) -> str:
    if deleted.get("DeleteMarker") and deleted.get("DeleteMarkerVersionId") and not deleted.get("VersionId"):
        return f"Delete marker {deleted['DeleteMarkerVersionId']} added"
    return "Successful"


def _status_of(code: str) -> int:
    return {
        "AccessDenied": 403,
        "NoSuchKey": 404,
        "NoSuchVersion": 404,
        "SlowDown": 503,
        "InternalError": 500,
    }.get(code, 400)
