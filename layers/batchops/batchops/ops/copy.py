"""COSPutObjectCopy: one object copied with every directive of the COS operation.

One CopyObject request per object, unless a directive needs the source's attributes (Add merges
with them, Copy of an ACL reads it) or the object is larger than CopyObject allows: then the copy
runs as a multipart upload of UploadPartCopy parts in parallel, aborted if any part fails for
good. Neither S3 nor COS Batch Operations copy objects above 5 GB; this does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from batchops.jobs.model import Directive, Grant, GranteeType, GrantPermission, PutObjectCopy, Tag
from batchops.manifest.resources import MAX_KEY_BYTES, parse_bucket
from batchops.ops.outcome import TaskOutcome, failure, outcome_of_error, success
from batchops.s3fast.client import call_steps
from batchops.s3fast.steps import Steps, blocking_call

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

MAX_COPY_OBJECT_BYTES = 5 * 1024**3  # CopyObject's limit on the source size
MIN_PART_BYTES = 5 * 1024**2
MAX_PARTS = 10_000

_GRANT_PARAMS = {
    GrantPermission.READ: "GrantRead",
    GrantPermission.READ_ACP: "GrantReadACP",
    GrantPermission.WRITE_ACP: "GrantWriteACP",
    GrantPermission.FULL_CONTROL: "GrantFullControl",
}
_S3_GRANTEE_TYPE = {
    "CanonicalUser": GranteeType.ID,
    "AmazonCustomerByEmail": GranteeType.EMAIL,
    "Group": GranteeType.URI,
}
_S3_GRANTEE_FIELD = {GranteeType.ID: "ID", GranteeType.EMAIL: "EmailAddress", GranteeType.URI: "URI"}


@dataclass(frozen=True)
class CopySettings:
    multipart_threshold: int = MAX_COPY_OBJECT_BYTES
    """Objects larger than this are copied in parts (lower it to test the multipart path)."""
    part_size: int = 256 * 1024**2
    part_concurrency: int = 8


class TargetKeyError(ValueError):
    """The source key cannot be mapped to a target key under the operation's prefix rules."""


def target_key(source_key: str, op: PutObjectCopy) -> str:
    """The destination key of ``source_key``, by COS's prefix rules.

    Without PrefixReplace, TargetKeyPrefix is put in front. With it, ResourcesPrefix at the start
    of the key is replaced by TargetKeyPrefix (``pic`` -> ``abc`` turns ``picture.jpg`` into
    ``abcture.jpg``); an empty ResourcesPrefix adds the prefix, an empty TargetKeyPrefix strips one.
    """
    new_prefix = op.target_key_prefix or ""
    if not op.prefix_replace:
        return new_prefix + source_key
    old_prefix = op.resources_prefix or ""
    if not source_key.startswith(old_prefix):
        raise TargetKeyError(f"the key does not start with ResourcesPrefix {old_prefix!r}")
    return new_prefix + source_key[len(old_prefix) :]


def copy_task(
    s3: S3Client,
    bucket: str,
    key: str,
    version_id: str | None,
    op: PutObjectCopy,
    *,
    settings: CopySettings,
) -> TaskOutcome:
    """Copy one object. Never raises for S3 errors: they become the failed outcome."""
    copy = _prepared(s3, bucket, key, version_id, op, settings=settings)
    if isinstance(copy, TaskOutcome):
        return copy
    return _outcome_of(copy.run)


def copy_task_steps(
    s3: S3Client,
    bucket: str,
    key: str,
    version_id: str | None,
    op: PutObjectCopy,
    *,
    settings: CopySettings,
) -> Steps[TaskOutcome]:
    """``copy_task`` as steps (``s3fast.steps``), to be multiplexed: a copy that is one CopyObject
    makes it as steps; one that reads the source first, or goes multipart, runs blocking."""
    copy = _prepared(s3, bucket, key, version_id, op, settings=settings)
    if isinstance(copy, TaskOutcome):
        return copy
    params = copy.plain_params()
    if params is None:
        return (yield from blocking_call(partial(_outcome_of, copy.run)))
    try:
        yield from call_steps(s3, "copy_object", params)
    except ClientError as exc:
        if _source_too_large(exc):
            return (yield from blocking_call(partial(_outcome_of, copy.multipart)))
        return outcome_of_error(exc)
    except BotoCoreError as exc:
        return outcome_of_error(exc)
    return success()


def _prepared(
    s3: S3Client, bucket: str, key: str, version_id: str | None, op: PutObjectCopy, *, settings: CopySettings
) -> _Copy | TaskOutcome:
    """The copy to make, or the failed outcome of a task that cannot be made."""
    try:
        destination_key = target_key(key, op)
    except TargetKeyError as exc:
        return failure(400, "InvalidTargetKey", str(exc))
    if len(destination_key.encode()) > MAX_KEY_BYTES:
        return failure(400, "KeyTooLongError", f"the target key is longer than {MAX_KEY_BYTES} bytes")
    if any(grant.permission is GrantPermission.WRITE for grant in op.access_control_grants):
        return failure(400, "InvalidArgument", "WRITE cannot be granted on an object")
    source: dict[str, str] = {"Bucket": bucket, "Key": key}
    if version_id:
        source["VersionId"] = version_id
    bucket_to = parse_bucket(op.target_resource).bucket
    return _Copy(s3, source, bucket_to, destination_key, op=op, settings=settings)


def _outcome_of(copy: Callable[[], TaskOutcome]) -> TaskOutcome:
    try:
        return copy()
    except (ClientError, BotoCoreError) as exc:
        return outcome_of_error(exc)


class _SourceNeeded(Exception):
    """Building the request needs a call to S3 first."""


class _NoCalls:
    """An S3 client that makes no call: each raises _SourceNeeded."""

    def __getattr__(self, name: str) -> Any:
        raise _SourceNeeded(name)


class _Copy:
    def __init__(
        self,
        s3: S3Client,
        source: dict[str, str],
        bucket: str,
        key: str,
        *,
        op: PutObjectCopy,
        settings: CopySettings,
    ) -> None:
        self.s3 = s3
        self.source = source
        self.bucket = bucket
        self.key = key
        self.op = op
        self.settings = settings
        self._head: Mapping[str, Any] | None = None

    def needs_head(self) -> bool:
        """Whether the source's HEAD comes first (metadata to add to, a size to check)."""
        return (
            self.op.metadata_directive is Directive.ADD
            or self.settings.multipart_threshold < MAX_COPY_OBJECT_BYTES
        )

    def run(self) -> TaskOutcome:
        if self.needs_head() and self.head()["ContentLength"] > self.settings.multipart_threshold:
            return self.multipart()
        try:
            self.s3.copy_object(
                Bucket=self.bucket, Key=self.key, CopySource=self.copy_source(), **self.single_params()
            )
        except ClientError as exc:
            if _source_too_large(exc):
                return self.multipart()
            raise
        return success()

    def plain_params(self) -> dict[str, Any] | None:
        """``run``'s CopyObject parameters when that one request is the whole copy (nothing is
        read from S3 to build it, no multipart); else None."""
        if self.needs_head():
            return None
        s3, self.s3 = self.s3, cast("S3Client", _NoCalls())
        try:
            params = self.single_params()
        except _SourceNeeded:
            return None
        finally:
            self.s3 = s3
        return {"Bucket": self.bucket, "Key": self.key, "CopySource": self.copy_source(), **params}

    def copy_source(self) -> CopySourceTypeDef:
        source: CopySourceTypeDef = {"Bucket": self.source["Bucket"], "Key": self.source["Key"]}
        if "VersionId" in self.source:
            source["VersionId"] = self.source["VersionId"]
        return source

    def version(self) -> dict[str, Any]:
        return {"VersionId": self.source["VersionId"]} if "VersionId" in self.source else {}

    def head(self) -> Mapping[str, Any]:
        if self._head is None:
            version = self.version()
            self._head = self.s3.head_object(Bucket=self.source["Bucket"], Key=self.source["Key"], **version)
        assert self._head is not None
        return self._head

    # --- what the copy request carries ------------------------------------------------------------

    def single_params(self) -> dict[str, Any]:
        params = self.common_params()
        directive = self.op.metadata_directive
        if directive in (None, Directive.COPY):
            params["MetadataDirective"] = "COPY"
        else:
            params["MetadataDirective"] = "REPLACE"
            params.update(self.metadata())
        tagging = self.op.tagging_directive
        if tagging in (None, Directive.COPY):
            params["TaggingDirective"] = "COPY"
        else:
            params["TaggingDirective"] = "REPLACE"
            params["Tagging"] = _tagging(self.tags())
        params.update(self.date_conditions())
        return params

    def multipart_params(self) -> dict[str, Any]:
        # A multipart upload copies bytes only: every attribute the copy keeps is set explicitly.
        params = self.common_params()
        params.update(self.metadata())
        tags = self.tags()
        if tags:
            params["Tagging"] = _tagging(tags)
        return params

    def common_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        op = self.op
        if op.storage_class is not None:
            params["StorageClass"] = op.storage_class.value
        if op.new_object_metadata is not None and op.new_object_metadata.sse_algorithm is not None:
            algorithm = op.new_object_metadata.sse_algorithm.value
            params["ServerSideEncryption"] = "AES256" if algorithm == "AES256" else "aws:kms"
        params.update(self.acl())
        return params

    def metadata(self) -> dict[str, Any]:
        """Content headers and user metadata the destination gets, per MetadataDirective."""
        new = self.op.new_object_metadata
        directive = self.op.metadata_directive
        keeps_source = directive in (None, Directive.COPY, Directive.ADD)
        values: dict[str, Any] = {}
        if keeps_source:
            head = self.head()
            for name in (
                "ContentType",
                "CacheControl",
                "ContentDisposition",
                "ContentEncoding",
                "ContentLanguage",
                "Expires",
                "WebsiteRedirectLocation",
            ):
                if head.get(name):
                    values[name] = head[name]
            values["Metadata"] = dict(head.get("Metadata") or {})
        if new is not None and directive is not Directive.COPY:
            for name, value in (
                ("ContentType", new.content_type),
                ("CacheControl", new.cache_control),
                ("ContentDisposition", new.content_disposition),
                ("ContentEncoding", new.content_encoding),
                ("Expires", new.http_expires_date),
            ):
                if value is not None:
                    values[name] = value
            merged = {k.lower(): v for k, v in values.get("Metadata", {}).items()}
            merged.update({tag.key.lower(): tag.value for tag in new.user_metadata})
            values["Metadata"] = merged
        return {k: v for k, v in values.items() if v or k == "Metadata"}

    def tags(self) -> list[Tag]:
        directive = self.op.tagging_directive
        if directive is Directive.REPLACED:
            return list(self.op.new_object_tagging)
        version = self.version()
        current = self.s3.get_object_tagging(Bucket=self.source["Bucket"], Key=self.source["Key"], **version)
        tags = {t["Key"]: t["Value"] for t in current.get("TagSet", [])}
        if directive is Directive.ADD:
            tags.update({t.key: t.value for t in self.op.new_object_tagging})
        return [Tag(k, v) for k, v in tags.items()]

    def acl(self) -> dict[str, str]:
        directive = self.op.access_control_directive
        if directive is None:
            return {}
        if directive is Directive.REPLACED and self.op.canned_access_control_list is not None:
            return {"ACL": self.op.canned_access_control_list.value}
        grants: list[Grant] = []
        if directive in (Directive.COPY, Directive.ADD):
            grants.extend(self.source_grants())
        if directive in (Directive.REPLACED, Directive.ADD):
            grants.extend(self.op.access_control_grants)
        return _grant_params(grants)

    def source_grants(self) -> list[Grant]:
        version = self.version()
        acl = self.s3.get_object_acl(Bucket=self.source["Bucket"], Key=self.source["Key"], **version)
        grants = []
        for entry in acl.get("Grants", []):
            grantee = entry.get("Grantee", {})
            kind = _S3_GRANTEE_TYPE.get(str(grantee.get("Type")))
            permission = entry.get("Permission")
            if kind is None or permission not in _GRANT_PARAMS:
                continue
            identifier = str(dict(grantee).get(_S3_GRANTEE_FIELD[kind], ""))
            grants.append(Grant(identifier, kind, GrantPermission(permission)))
        return grants

    # --- multipart ---------------------------------------------------------------------------------

    def multipart(self) -> TaskOutcome:
        size = int(self.head()["ContentLength"])
        part_size = max(self.settings.part_size, MIN_PART_BYTES, math.ceil(size / MAX_PARTS))
        ranges = [(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)] or [
            (0, -1)
        ]
        upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key, **self.multipart_params())
        upload_id = upload["UploadId"]
        conditions = self.source_conditions()
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.settings.part_concurrency)) as pool:
                etags = list(
                    pool.map(
                        lambda numbered: self.copy_part(upload_id, numbered[0], numbered[1], conditions),
                        enumerate(ranges, start=1),
                    )
                )
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, start=1)]
                },
            )
        except BaseException:
            # Never leave an orphaned upload (it is billed until aborted).
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            raise
        return success(message=f"Successful (multipart copy in {len(ranges)} parts)")

    def copy_part(
        self, upload_id: str, number: int, byte_range: tuple[int, int], conditions: dict[str, Any]
    ) -> str:
        start, end = byte_range
        extra: dict[str, Any] = {"CopySourceRange": f"bytes={start}-{end}"} if end >= start else {}
        part = self.s3.upload_part_copy(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=self.copy_source(),
            **extra,
            **conditions,
        )
        return str(part["CopyPartResult"]["ETag"])

    def source_conditions(self) -> dict[str, Any]:
        # Every part must come from the same source object: pin its ETag, keep the user's dates.
        conditions: dict[str, Any] = {"CopySourceIfMatch": self.head()["ETag"]}
        conditions.update(self.date_conditions())
        return conditions

    def date_conditions(self) -> dict[str, datetime]:
        conditions = {}
        if self.op.modified_since_constraint is not None:
            conditions["CopySourceIfModifiedSince"] = self.op.modified_since_constraint
        if self.op.unmodified_since_constraint is not None:
            conditions["CopySourceIfUnmodifiedSince"] = self.op.unmodified_since_constraint
        return conditions


def _grant_params(grants: list[Grant]) -> dict[str, str]:
    by_param: dict[str, list[str]] = {}
    for grant in grants:
        header = f'{grant.type_identifier.s3_name}="{grant.identifier}"'
        values = by_param.setdefault(_GRANT_PARAMS[grant.permission], [])
        if header not in values:
            values.append(header)
    return {param: ", ".join(values) for param, values in by_param.items()}


def _tagging(tags: list[Tag]) -> str:
    return urlencode([(t.key, t.value) for t in tags])


def _source_too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "EntityTooLarge" or (
        error.get("Code") == "InvalidRequest" and "maximum allowable size" in str(error.get("Message", ""))
    )
