"""The ``s3control`` target: the job goes to AWS S3 Batch Operations instead of batchops.

The COS request is translated to ``s3control.create_job``. What S3 cannot express is refused
when the rule loads (``TranslationError``): COSDeleteObject (S3 has no delete operation),
PrefixReplace and ResourcesPrefix (S3 only prepends a TargetKeyPrefix), the Add directives and
an AccessControlDirective Copy (an S3 copy neither merges nor copies ACLs), and any resource that
is not an S3 ARN's bucket. S3 answers a reused ClientRequestToken with the same job, or with
IdempotencyException when the parameters differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from batchops.api.create_job import parse_create_job
from batchops.jobs.model import (
    DeleteObject,
    Directive,
    InitiateRestoreObject,
    JobSpec,
    ManifestFormat,
    ObjectMetadata,
    PutObjectCopy,
)
from batchops.manifest.resources import parse_bucket, parse_object
from batchops.submit.targets import SubmitError, Submitted

if TYPE_CHECKING:
    from mypy_boto3_s3control.client import S3ControlClient

_FORMATS = {
    ManifestFormat.CSV: "S3BatchOperations_CSV_20180820",
    ManifestFormat.S3_CSV: "S3BatchOperations_CSV_20180820",
    ManifestFormat.INVENTORY: "S3InventoryReport_CSV_20161130",
    ManifestFormat.S3_INVENTORY: "S3InventoryReport_CSV_20161130",
}


class TranslationError(ValueError):
    """The request asks for something S3 Batch Operations cannot do."""


def to_create_job(spec: JobSpec, account_id: str) -> dict[str, Any]:
    """``s3control.create_job`` parameters for a COS CreateJob request."""
    location = spec.manifest.location
    manifest_object = parse_object(location.object_arn)
    manifest: dict[str, Any] = {
        "Spec": {"Format": _FORMATS[spec.manifest.spec.format]},
        "Location": {
            "ObjectArn": f"arn:aws:s3:::{manifest_object.bucket}/{manifest_object.key}",
            "ETag": location.etag.strip('"'),
        },
    }
    if spec.manifest.spec.fields:
        manifest["Spec"]["Fields"] = [field.value for field in spec.manifest.spec.fields]
    if location.object_version_id:
        manifest["Location"]["ObjectVersionId"] = location.object_version_id
    report: dict[str, Any] = {"Enabled": spec.report.enabled}
    if spec.report.enabled and spec.report.bucket:
        report.update(
            Bucket=parse_bucket(spec.report.bucket).bucket_arn,
            Format="Report_CSV_20180820",
            ReportScope=spec.report.scope.value,
        )
        if spec.report.prefix:
            report["Prefix"] = spec.report.prefix
    if not spec.role_arn.startswith("arn:"):
        raise TranslationError(
            f"RoleArn {spec.role_arn!r} is not an IAM role ARN (S3 cannot take a CAM role)"
        )
    params: dict[str, Any] = {
        "AccountId": account_id,
        "ConfirmationRequired": spec.confirmation_required,
        "Operation": _operation(spec),
        "Report": report,
        "ClientRequestToken": spec.client_request_token,
        "Manifest": manifest,
        "Priority": spec.priority,
        "RoleArn": spec.role_arn,
    }
    if spec.description:
        params["Description"] = spec.description
    return params


def _operation(spec: JobSpec) -> dict[str, Any]:
    op = spec.operation
    if isinstance(op, DeleteObject):
        raise TranslationError("COSDeleteObject: S3 Batch Operations has no delete operation")
    if isinstance(op, InitiateRestoreObject):
        return {
            "S3InitiateRestoreObject": {
                "ExpirationInDays": op.expiration_in_days,
                "GlacierJobTier": op.job_tier.value.upper(),
            }
        }
    assert isinstance(op, PutObjectCopy)
    return {"S3PutObjectCopy": _copy(op)}


def _refuse_what_s3_cannot_do(op: PutObjectCopy) -> None:
    if op.prefix_replace or op.resources_prefix:
        raise TranslationError("PrefixReplace/ResourcesPrefix: S3 can only prepend a TargetKeyPrefix")
    for name, directive in (
        ("MetadataDirective", op.metadata_directive),
        ("TaggingDirective", op.tagging_directive),
        ("AccessControlDirective", op.access_control_directive),
    ):
        if directive is Directive.ADD:
            raise TranslationError(f"{name} Add: S3 cannot merge with the source's")
    if op.access_control_directive is Directive.COPY:
        raise TranslationError("AccessControlDirective Copy: an S3 copy does not copy the source's ACL")


def _copy(op: PutObjectCopy) -> dict[str, Any]:
    _refuse_what_s3_cannot_do(op)
    copy: dict[str, Any] = {"TargetResource": parse_bucket(op.target_resource).bucket_arn}
    if op.target_key_prefix:
        copy["TargetKeyPrefix"] = op.target_key_prefix
    if op.canned_access_control_list is not None:
        copy["CannedAccessControlList"] = op.canned_access_control_list.value
    if op.access_control_grants:
        copy["AccessControlGrants"] = [
            {
                "Grantee": {
                    "TypeIdentifier": grant.type_identifier.s3_name,
                    "Identifier": grant.identifier,
                    **({"DisplayName": grant.display_name} if grant.display_name else {}),
                },
                "Permission": grant.permission.value,
            }
            for grant in op.access_control_grants
        ]
    if op.metadata_directive is not None:
        copy["MetadataDirective"] = "COPY" if op.metadata_directive is Directive.COPY else "REPLACE"
    if op.new_object_metadata is not None:
        copy["NewObjectMetadata"] = _metadata(op.new_object_metadata)
    if op.tagging_directive is Directive.REPLACED:
        copy["NewObjectTagging"] = [{"Key": tag.key, "Value": tag.value} for tag in op.new_object_tagging]
    if op.modified_since_constraint is not None:
        copy["ModifiedSinceConstraint"] = op.modified_since_constraint
    if op.unmodified_since_constraint is not None:
        copy["UnModifiedSinceConstraint"] = op.unmodified_since_constraint
    if op.storage_class is not None:
        copy["StorageClass"] = op.storage_class.value
    return copy


def _metadata(meta: ObjectMetadata) -> dict[str, Any]:
    new: dict[str, Any] = {
        key: value
        for key, value in (
            ("CacheControl", meta.cache_control),
            ("ContentDisposition", meta.content_disposition),
            ("ContentEncoding", meta.content_encoding),
            ("ContentType", meta.content_type),
            ("HttpExpiresDate", meta.http_expires_date),
        )
        if value is not None
    }
    if meta.sse_algorithm is not None:
        new["SSEAlgorithm"] = "AES256" if meta.sse_algorithm.value == "AES256" else "KMS"
    if meta.user_metadata:
        new["UserMetadata"] = {tag.key: tag.value for tag in meta.user_metadata}
    return new


class S3ControlTarget:
    def __init__(self, client: S3ControlClient, account_id: str) -> None:
        self._client = client
        self._account_id = account_id

    def submit(self, appid: str, request_xml: bytes) -> Submitted:
        params = to_create_job(parse_create_job(request_xml), self._account_id)
        try:
            response = self._client.create_job(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "IdempotencyException":
                # The token was used with other parameters: the job exists, S3 does not say which.
                return Submitted(job_id="", duplicate=True)
            raise SubmitError(f"S3 CreateJob refused: {code}: {exc}") from exc
        return Submitted(job_id=response["JobId"], duplicate=False)
