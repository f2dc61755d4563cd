"""Reading manifest objects from S3-compatible storage, with S3's guarantees and clear failures.

A job's manifest is pinned by ``Location/ETag`` (and optionally ``ObjectVersionId``): the object
is read with ``GetObject IfMatch`` so a manifest overwritten after CreateJob is refused instead
of silently processed (S3 fails such a job; so do we). Storage errors become ``ManifestError``
with a FailureCode and a message naming the object:

- 412 PreconditionFailed: ManifestETagMismatch, naming the expected ETag and, when a HEAD can
  tell, the object's current one;
- 404 NoSuchKey, NoSuchBucket, NoSuchVersion: ManifestNotFound, naming ``bucket/key``;
- 403 AccessDenied: ManifestAccessDenied; 403 InvalidObjectState: ManifestUnreadable (archived);
- 5xx, throttling, connection errors: ManifestUnreadable with ``transient=True``.

Bodies are returned as streams and never read whole (except ``read_small_object``, capped).
Errors while streaming a body (dropped connection, short read) also become a transient
ManifestUnreadable, so callers handle one exception type.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from batchops.manifest.streams import BUFFER_SIZE, ByteSource, SourceReader
from batchops.manifest.tasks import (
    ACCESS_DENIED,
    ETAG_MISMATCH,
    NOT_FOUND,
    TOO_LARGE,
    UNREADABLE,
    ManifestError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

MAX_SMALL_OBJECT_BYTES = 64 * 1024 * 1024
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound", "404"})
_THROTTLING_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"})


def normalize_etag(etag: str) -> str:
    """The bare ETag value: surrounding spaces and double quotes removed (both spellings are
    common: S3 returns ``"abc"``, consoles and users often write ``abc``)."""
    return etag.strip().strip('"')


def open_manifest(
    s3_client: S3Client,
    bucket: str,
    key: str,
    etag: str,
    version_id: str | None,
    *,
    first_byte: int = 0,
) -> BinaryIO:
    """Open the manifest object ``bucket/key`` if its ETag is ``etag`` (quotes optional).

    ``version_id`` pins a version when given. From ``first_byte`` on (a ranged GET, still pinned
    by the ETag) when resuming part-way. The caller closes the returned stream.
    """
    stream, _ = _get(s3_client, bucket, key, etag, version_id, what="manifest object", first_byte=first_byte)
    return stream


def read_small_object(
    s3_client: S3Client,
    bucket: str,
    key: str,
    etag: str | None,
    version_id: str | None,
    *,
    max_bytes: int = MAX_SMALL_OBJECT_BYTES,
) -> bytes:
    """Read a small object (an inventory manifest.json) whole, refusing one above ``max_bytes``.

    ``etag`` None reads whatever is there (for objects no job pinned). The cap is checked against
    Content-Length before reading and again while reading (a server may not send the length).
    """
    stream, length = _get(s3_client, bucket, key, etag, version_id, what="manifest object")
    with stream:
        too_large = ManifestError(
            TOO_LARGE,
            f"manifest object {bucket}/{key} is larger than {max_bytes} bytes; an inventory manifest.json is "
            "far smaller, so this is not one",
        )
        if length is not None and length > max_bytes:
            raise too_large
        data = bytearray()
        while piece := stream.read(min(BUFFER_SIZE, max_bytes + 1 - len(data))):
            data += piece
            if len(data) > max_bytes:
                raise too_large
        return bytes(data)


def inventory_file_opener(s3_client: S3Client, bucket: str) -> Callable[[str], BinaryIO]:
    """``open_file`` for ``iter_inventory_tasks``: GET each data file from the destination bucket."""

    def open_file(key: str) -> BinaryIO:
        stream, _ = _get(s3_client, bucket, key, None, None, what="inventory data file")
        return stream

    return open_file


class _BodyReader(SourceReader):
    """A response body whose transport errors surface as a transient ManifestUnreadable."""

    def __init__(self, source: ByteSource, name: str) -> None:
        super().__init__(source, close_source=True)
        self._name = name

    def _pull(self, size: int) -> bytes:
        try:
            return super()._pull(size)
        except BotoCoreError as exc:
            raise ManifestError(
                UNREADABLE, f"reading {self._name} was interrupted: {exc}", transient=True
            ) from exc


def _get(
    s3_client: S3Client,
    bucket: str,
    key: str,
    etag: str | None,
    version_id: str | None,
    *,
    what: str,
    first_byte: int = 0,
) -> tuple[BinaryIO, int | None]:
    """GET with the precondition and version; ``what`` (e.g. "manifest object") starts messages."""
    name = f"{what} {bucket}/{key}" + (f" (version {version_id})" if version_id else "")
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if etag is not None:
        params["IfMatch"] = _quoted(etag)
    if version_id is not None:
        params["VersionId"] = version_id
    if first_byte:
        params["Range"] = f"bytes={first_byte}-"
    try:
        response: GetObjectOutputTypeDef = s3_client.get_object(**params)
    except ClientError as exc:
        raise _client_error(
            exc, s3_client=s3_client, bucket=bucket, key=key, etag=etag, version_id=version_id, name=name
        ) from exc
    except BotoCoreError as exc:
        raise ManifestError(UNREADABLE, f"could not read {name}: {exc}", transient=True) from exc
    stream = io.BufferedReader(_BodyReader(response["Body"], name), BUFFER_SIZE)
    length = response.get("ContentLength")
    return stream, length


def _quoted(etag: str) -> str:
    return f'"{normalize_etag(etag)}"'


def _client_error(
    exc: ClientError,
    *,
    s3_client: S3Client,
    bucket: str,
    key: str,
    etag: str | None,
    version_id: str | None,
    name: str,
) -> ManifestError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if (status == 412 or code == "PreconditionFailed") and etag is not None:
        expected = normalize_etag(etag)
        actual = _current_etag(s3_client, bucket, key, version_id)
        now = f"; the object's ETag is now {actual}" if actual else ""
        return ManifestError(
            ETAG_MISMATCH,
            f"{name} does not have the expected ETag {expected}{now}: it was changed "
            "after the job was created; create the job again with the current ETag",
        )
    if status == 404 or code in _NOT_FOUND_CODES:
        return ManifestError(NOT_FOUND, f"{name} does not exist ({code or status})")
    if code == "InvalidArgument" and version_id is not None:
        return ManifestError(NOT_FOUND, f"{name} does not exist: {message}")
    if code == "InvalidObjectState":
        return ManifestError(UNREADABLE, f"{name} is archived; restore it before running the job")
    if status == 403 or code == "AccessDenied":
        return ManifestError(ACCESS_DENIED, f"access to {name} was denied ({code or status}): {message}")
    transient = status >= 500 or code in _THROTTLING_CODES
    return ManifestError(
        UNREADABLE, f"could not read {name}: {code or status}: {message}", transient=transient
    )


def _current_etag(s3_client: S3Client, bucket: str, key: str, version_id: str | None) -> str | None:
    """The object's ETag as a HEAD sees it, or None when HEAD cannot tell (best effort only)."""
    try:
        if version_id is None:
            head = s3_client.head_object(Bucket=bucket, Key=key)
        else:
            head = s3_client.head_object(Bucket=bucket, Key=key, VersionId=version_id)
    except (ClientError, BotoCoreError):
        return None
    etag = head.get("ETag")
    return normalize_etag(etag) if etag else None
