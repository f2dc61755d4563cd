"""COSDeleteObject: delete objects, 1,000 keys per DeleteObjects request.

A task deletes the version its manifest row names, or else the current object (which, in a
versioned bucket, adds a delete marker). S3 reports a missing key as deleted, so deleting twice
(a redelivered chunk) succeeds twice. Errors are per key; a request that fails as a whole fails
every task in it with that error.

Quiet or verbose. In quiet mode S3 lists only the keys it failed to delete, and every key it
does not list was deleted (an answer with nothing to list may even be empty); in verbose mode it
lists every key, which costs S3, the network and us a ``<Deleted>`` entry per key. Quiet is the
same request to S3, so what it deletes is the same; what it leaves out is the one thing a report
row takes from a ``<Deleted>`` entry: the ResultMessage ``Delete marker <id> added`` of a simple
delete (no version named) in a versioned or suspended bucket. So:

- a request naming a version for every key is quiet (its rows always say ``Successful``);
- a request with simple deletes is verbose unless, within the last ``MARKER_RECHECK_SECONDS``,
  a verbose answer from the same bucket showed that its simple deletes add no delete marker
  (``DeleteMarkerMemo``): then it is quiet, and every verbose answer teaches the memo again.

Versioning being switched on during a job can therefore leave up to ``MARKER_RECHECK_SECONDS``
of rows saying ``Successful`` where a delete marker was added (the objects are deleted exactly
as in verbose mode); S3 itself asks for 15 minutes after enabling versioning before deletes,
since the change takes that long to reach every part of S3.

A quiet answer is read conservatively, since a key it does not list counts as deleted: an error
whose key was not in the request (or has no key) means the answer cannot be matched to the
request, and every key it does not report on fails, transiently (retried, and deleting again is
harmless); an error naming a key but not the version asked fails every version of that key in the
request; an error beats a ``<Deleted>`` entry for the same key. A body cut short or an ``<Error>``
document with status 200 is an error of the whole request in both S3 clients (botocore's rule).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from batchops.manifest.resources import MAX_KEY_BYTES
from batchops.ops.outcome import SUCCESSFUL, TaskOutcome, failure, outcome_of_error, success

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MAX_KEYS_PER_REQUEST = 1000
MARKER_RECHECK_SECONDS = 60.0
"""How long a verbose answer without delete markers lets a bucket's simple deletes be quiet."""
_XML_SAFE = re.compile("[\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_NOT_REPORTED = "DeleteObjects did not report on this key"
_UNMATCHED = "DeleteObjects answered with an error it did not say the key of, or for a key it was not asked"

ObjectRef = tuple[str, str, str | None]
"""(bucket, key, version id or None)"""


class DeleteMarkerMemo:
    """Which buckets' simple deletes were last seen adding no delete marker, and when.

    Keyed by (endpoint, bucket); shared by every thread of a process (one dict write per verbose
    answer).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._plain: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def quiet_ok(self, where: tuple[str, str]) -> bool:
        """True if a simple delete in this bucket was seen adding no marker, recently enough."""
        seen = self._plain.get(where)
        return seen is not None and self._clock() - seen < MARKER_RECHECK_SECONDS

    def learn(self, where: tuple[str, str], *, markers: bool) -> None:
        with self._lock:
            if markers:
                self._plain.pop(where, None)
            else:
                self._plain[where] = self._clock()


_MARKERS = DeleteMarkerMemo()


def delete_tasks(
    s3: S3Client, objects: Sequence[ObjectRef], *, markers: DeleteMarkerMemo | None = None
) -> list[TaskOutcome]:
    """Delete every object; the outcome list matches ``objects`` position by position."""
    memo = _MARKERS if markers is None else markers
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
                batch, _delete_batch(s3, bucket, [objects[i] for i in batch], memo), strict=True
            ):
                outcomes[index] = outcome
    return [o for o in outcomes if o is not None]


def _delete_batch(
    s3: S3Client, bucket: str, objects: list[ObjectRef], markers: DeleteMarkerMemo
) -> list[TaskOutcome]:
    wanted: dict[tuple[str, str | None], None] = {(key, version): None for _, key, version in objects}
    simple = any(version is None for _, version in wanted)
    where = (str(getattr(s3.meta, "endpoint_url", "")), bucket)
    quiet = not simple or markers.quiet_ok(where)
    request: list[dict[str, Any]] = [
        {"Key": key, "VersionId": version} if version else {"Key": key} for key, version in wanted
    ]
    try:
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": request, "Quiet": quiet})  # type: ignore[typeddict-item]
    except (ClientError, BotoCoreError) as exc:
        outcome = outcome_of_error(exc)
        return [outcome] * len(objects)

    deleted: dict[tuple[str, str | None], TaskOutcome] = {}
    saw_marker = saw_plain = False
    for entry in response.get("Deleted", []):
        message = _deleted_message(entry)
        deleted[(entry.get("Key", ""), entry.get("VersionId") or None)] = success(200, message)
        if not entry.get("VersionId"):
            if message == SUCCESSFUL:
                saw_plain = True
            else:
                saw_marker = True
    if saw_marker or saw_plain:
        markers.learn(where, markers=saw_marker)

    failed, unmatched = _failures(response.get("Errors", []), wanted)
    if quiet and not unmatched:
        default: TaskOutcome = success()
        if not failed and not deleted:  # S3 had nothing to say: every key was deleted
            return [default] * len(objects)
    else:
        default = failure(500, "InternalError", _UNMATCHED if unmatched else _NOT_REPORTED, transient=True)
    return [
        failed.get((key, version)) or deleted.get((key, version)) or deleted.get((key, None)) or default
        for _, key, version in objects
    ]


def _failures(
    errors: list[Any], wanted: dict[tuple[str, str | None], None]
) -> tuple[dict[tuple[str, str | None], TaskOutcome], bool]:
    """The failed outcome of each (key, version) asked that an error names, and whether some
    error could not be matched to a key asked."""
    failed: dict[tuple[str, str | None], TaskOutcome] = {}
    if not errors:
        return failed, False
    versions: dict[str, list[str | None]] = {}
    for key, version in wanted:
        versions.setdefault(key, []).append(version)
    unmatched = False
    for error in errors:
        key = error.get("Key")
        if key not in versions:
            unmatched = True
            continue
        code = str(error.get("Code", "InternalError"))
        outcome = failure(
            _status_of(code),
            code,
            str(error.get("Message", code)),
            transient=code in ("SlowDown", "InternalError"),
        )
        version = error.get("VersionId") or None
        if version is not None and (key, version) in wanted:
            failed[(key, version)] = outcome
        else:
            # no version said, or one that was not asked: every version of the key asked fails
            for asked in versions[key]:
                failed.setdefault((key, asked), outcome)
    return failed, unmatched


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
    return SUCCESSFUL


def _status_of(code: str) -> int:
    return {
        "AccessDenied": 403,
        "NoSuchKey": 404,
        "NoSuchVersion": 404,
        "SlowDown": 503,
        "InternalError": 500,
    }.get(code, 400)
