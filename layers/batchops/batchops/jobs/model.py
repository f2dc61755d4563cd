"""What a job is: the CreateJob request as typed values, and the record the stores keep.

Names follow the COS elements they come from, in snake case. Enumerations hold the exact wire
values, so rendering a job back is a lookup, never a translation table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from batchops.jobs.status import JobStatus


class ManifestFormat(StrEnum):
    CSV = "COSBatchOperations_CSV_V1"
    INVENTORY = "COSInventoryReport_CSV_V1"
    # S3 spellings of the same two formats, accepted so S3 users can reuse their manifests.
    S3_CSV = "S3BatchOperations_CSV_20180820"
    S3_INVENTORY = "S3InventoryReport_CSV_20161130"


class ManifestField(StrEnum):
    IGNORE = "Ignore"
    BUCKET = "Bucket"
    KEY = "Key"
    VERSION_ID = "VersionId"


class Directive(StrEnum):
    COPY = "Copy"
    REPLACED = "Replaced"
    ADD = "Add"


class StorageClass(StrEnum):
    """COS and S3 storage classes a copy may write."""

    STANDARD = "STANDARD"
    STANDARD_IA = "STANDARD_IA"
    MAZ_STANDARD = "MAZ_STANDARD"
    MAZ_STANDARD_IA = "MAZ_STANDARD_IA"
    INTELLIGENT_TIERING = "INTELLIGENT_TIERING"
    MAZ_INTELLIGENT_TIERING = "MAZ_INTELLIGENT_TIERING"
    ARCHIVE = "ARCHIVE"
    DEEP_ARCHIVE = "DEEP_ARCHIVE"
    ONEZONE_IA = "ONEZONE_IA"
    GLACIER = "GLACIER"
    GLACIER_IR = "GLACIER_IR"
    REDUCED_REDUNDANCY = "REDUCED_REDUNDANCY"


class CannedAcl(StrEnum):
    PRIVATE = "private"
    PUBLIC_READ = "public-read"
    PUBLIC_READ_WRITE = "public-read-write"
    AUTHENTICATED_READ = "authenticated-read"
    BUCKET_OWNER_READ = "bucket-owner-read"
    BUCKET_OWNER_FULL_CONTROL = "bucket-owner-full-control"


class GrantPermission(StrEnum):
    READ = "READ"
    WRITE = "WRITE"
    READ_ACP = "READ_ACP"
    WRITE_ACP = "WRITE_ACP"
    FULL_CONTROL = "FULL_CONTROL"


class GranteeType(StrEnum):
    ID = "ID"
    EMAIL = "EmailAddress"
    URI = "URI"

    @property
    def s3_name(self) -> str:
        """How S3 names this kind of grantee in grant headers and S3 Batch Operations grants."""
        return {"ID": "id", "EmailAddress": "emailAddress", "URI": "uri"}[self.value]


class JobTier(StrEnum):
    BULK = "Bulk"
    STANDARD = "Standard"


class SseAlgorithm(StrEnum):
    AES256 = "AES256"
    KMS = "KMS"
    AWS_KMS = "aws:kms"


class ReportFormat(StrEnum):
    CSV = "Report_CSV_V1"
    S3_CSV = "Report_CSV_20180820"


class ReportScope(StrEnum):
    ALL_TASKS = "AllTasks"
    FAILED_TASKS_ONLY = "FailedTasksOnly"


class OperationName(StrEnum):
    PUT_OBJECT_COPY = "COSPutObjectCopy"
    INITIATE_RESTORE_OBJECT = "COSInitiateRestoreObject"
    DELETE_OBJECT = "COSDeleteObject"


@dataclass(frozen=True)
class ManifestLocation:
    object_arn: str
    etag: str
    object_version_id: str | None = None


@dataclass(frozen=True)
class ManifestSpec:
    format: ManifestFormat
    fields: tuple[ManifestField, ...] = ()


@dataclass(frozen=True)
class Manifest:
    location: ManifestLocation
    spec: ManifestSpec


@dataclass(frozen=True)
class Grant:
    identifier: str
    type_identifier: GranteeType
    permission: GrantPermission
    display_name: str | None = None


@dataclass(frozen=True)
class Tag:
    key: str
    value: str


@dataclass(frozen=True)
class ObjectMetadata:
    cache_control: str | None = None
    content_disposition: str | None = None
    content_encoding: str | None = None
    content_type: str | None = None
    http_expires_date: datetime | None = None
    sse_algorithm: SseAlgorithm | None = None
    user_metadata: tuple[Tag, ...] = ()


@dataclass(frozen=True)
class PutObjectCopy:
    target_resource: str
    access_control_directive: Directive | None = None
    access_control_grants: tuple[Grant, ...] = ()
    canned_access_control_list: CannedAcl | None = None
    prefix_replace: bool = False
    resources_prefix: str | None = None
    target_key_prefix: str | None = None
    metadata_directive: Directive | None = None
    modified_since_constraint: datetime | None = None
    unmodified_since_constraint: datetime | None = None
    new_object_metadata: ObjectMetadata | None = None
    tagging_directive: Directive | None = None
    new_object_tagging: tuple[Tag, ...] = ()
    storage_class: StorageClass | None = None

    name = OperationName.PUT_OBJECT_COPY


@dataclass(frozen=True)
class InitiateRestoreObject:
    expiration_in_days: int
    job_tier: JobTier

    name = OperationName.INITIATE_RESTORE_OBJECT


@dataclass(frozen=True)
class DeleteObject:
    name = OperationName.DELETE_OBJECT


Operation = PutObjectCopy | InitiateRestoreObject | DeleteObject


@dataclass(frozen=True)
class ReportSpec:
    bucket: str | None
    enabled: bool
    format: ReportFormat
    scope: ReportScope
    prefix: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """Everything a CreateJob request says, validated."""

    client_request_token: str
    manifest: Manifest
    operation: Operation
    priority: int
    report: ReportSpec
    role_arn: str
    confirmation_required: bool = False
    description: str = ""


@dataclass(frozen=True)
class JobFailure:
    code: str
    reason: str


@dataclass(frozen=True)
class ProgressSummary:
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    elapsed_active_seconds: int = 0


@dataclass(frozen=True)
class Job:
    """A job as stored: the spec plus what the service and the engine learned since."""

    job_id: str
    appid: str
    spec: JobSpec
    status: JobStatus
    creation_time: datetime
    priority: int
    status_update_reason: str | None = None
    termination_date: datetime | None = None
    failure_reasons: tuple[JobFailure, ...] = ()
    progress: ProgressSummary = field(default_factory=ProgressSummary)
    active_since: datetime | None = None
    """When the job last became Active: ElapsedTimeInActiveSeconds runs from here."""
    chunk_count: int = 0
    """How many chunks preparing cut the manifest into."""
