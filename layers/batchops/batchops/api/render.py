"""Jobs and errors -> COS response XML (reference/batch-operations.md §1.4 shapes).

Elements are written in the order COS writes them (alphabetical within a parent), and only
elements that have a value, so a described job echoes what its CreateJob said.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum

from lxml import etree

from batchops.jobs.model import (
    DeleteObject,
    Directive,
    InitiateRestoreObject,
    Job,
    Manifest,
    ObjectMetadata,
    Operation,
    ProgressSummary,
    PutObjectCopy,
    ReportSpec,
    Tag,
)

_Element = etree._Element
# Characters XML 1.0 cannot carry; an error message may quote client input that holds them.
_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_job_result(job_id: str) -> bytes:
    root = etree.Element("CreateJobResult")
    _add(root, "JobId", job_id)
    return _serialize(root)


def describe_job_result(job: Job) -> bytes:
    root = etree.Element("DescribeJobResult")
    el = etree.SubElement(root, "Job")
    _add(el, "ConfirmationRequired", _bool(job.spec.confirmation_required))
    _add(el, "CreationTime", timestamp(job.creation_time))
    _add(el, "Description", job.spec.description)
    reasons = etree.SubElement(el, "FailureReasons")
    for failure in job.failure_reasons:
        entry = etree.SubElement(reasons, "JobFailure")
        _add(entry, "FailureCode", failure.code)
        _add(entry, "FailureReason", failure.reason)
    _add(el, "JobId", job.job_id)
    _manifest(el, job.spec.manifest)
    _operation(etree.SubElement(el, "Operation"), job.spec.operation)
    _add(el, "Priority", str(job.priority))
    _progress(el, job.progress)
    _report(el, job.spec.report)
    _add(el, "RoleArn", job.spec.role_arn)
    _add(el, "Status", job.status.value)
    _add(el, "StatusUpdateReason", job.status_update_reason)
    if job.termination_date:
        _add(el, "TerminationDate", timestamp(job.termination_date))
    return _serialize(root)


def list_jobs_result(jobs: list[Job], next_token: str | None) -> bytes:
    root = etree.Element("ListJobsResult")
    members = etree.SubElement(root, "Jobs")
    for job in jobs:
        el = etree.SubElement(members, "member")
        _add(el, "CreationTime", timestamp(job.creation_time))
        _add(el, "Description", job.spec.description)
        _add(el, "JobId", job.job_id)
        _add(el, "Operation", job.spec.operation.name.value)
        _add(el, "Priority", str(job.priority))
        _progress(el, job.progress)
        _add(el, "Status", job.status.value)
        if job.termination_date:
            _add(el, "TerminationDate", timestamp(job.termination_date))
    _add(root, "NextToken", next_token)
    return _serialize(root)


def update_job_priority_result(job: Job) -> bytes:
    root = etree.Element("UpdateJobPriorityResult")
    _add(root, "JobId", job.job_id)
    _add(root, "Priority", str(job.priority))
    return _serialize(root)


def update_job_status_result(job: Job) -> bytes:
    root = etree.Element("UpdateJobStatusResult")
    _add(root, "JobId", job.job_id)
    _add(root, "Status", job.status.value)
    _add(root, "StatusUpdateReason", job.status_update_reason or "")
    return _serialize(root)


def error_body(code: str, message: str, resource: str, request_id: str, trace_id: str) -> bytes:
    root = etree.Element("Error")
    for name, value in (
        ("Code", code),
        ("Message", message),
        ("Resource", resource),
        ("RequestId", request_id),
        ("TraceId", trace_id),
    ):
        etree.SubElement(root, name).text = _XML_UNSAFE.sub("\ufffd", value)
    return _serialize(root)


def _manifest(parent: _Element, manifest: Manifest) -> None:
    el = etree.SubElement(parent, "Manifest")
    loc = etree.SubElement(el, "Location")
    _add(loc, "ETag", manifest.location.etag)
    _add(loc, "ObjectArn", manifest.location.object_arn)
    _add(loc, "ObjectVersionId", manifest.location.object_version_id)
    spec = etree.SubElement(el, "Spec")
    if manifest.spec.fields:
        fields = etree.SubElement(spec, "Fields")
        for field in manifest.spec.fields:
            _add(fields, "member", field.value)
    _add(spec, "Format", manifest.spec.format.value)


def _operation(parent: _Element, op: Operation) -> None:
    el = etree.SubElement(parent, op.name.value)
    if isinstance(op, DeleteObject):
        return
    if isinstance(op, InitiateRestoreObject):
        _add(el, "ExpirationInDays", str(op.expiration_in_days))
        _add(el, "JobTier", op.job_tier.value)
        return
    _copy(el, op)


def _copy(el: _Element, op: PutObjectCopy) -> None:
    _add(el, "AccessControlDirective", _value(op.access_control_directive))
    if op.access_control_grants:
        grants = etree.SubElement(el, "AccessControlGrants")
        for grant in op.access_control_grants:
            grant_el = etree.SubElement(grants, "COSGrant")
            grantee = etree.SubElement(grant_el, "Grantee")
            _add(grantee, "DisplayName", grant.display_name)
            _add(grantee, "Identifier", grant.identifier)
            _add(grantee, "TypeIdentifier", grant.type_identifier.value)
            _add(grant_el, "Permission", grant.permission.value)
    _add(el, "CannedAccessControlList", _value(op.canned_access_control_list))
    _add(el, "MetadataDirective", _value(op.metadata_directive))
    if op.modified_since_constraint:
        _add(el, "ModifiedSinceConstraint", timestamp(op.modified_since_constraint))
    if op.new_object_metadata is not None:
        _metadata(etree.SubElement(el, "NewObjectMetadata"), op.new_object_metadata)
    if op.tagging_directive in (Directive.REPLACED, Directive.ADD):
        _tags(etree.SubElement(el, "NewObjectTagging"), "COSTag", op.new_object_tagging)
    if op.prefix_replace:
        _add(el, "PrefixReplace", "true")
    _add(el, "ResourcesPrefix", op.resources_prefix)
    _add(el, "StorageClass", _value(op.storage_class))
    _add(el, "TaggingDirective", _value(op.tagging_directive))
    _add(el, "TargetKeyPrefix", op.target_key_prefix)
    _add(el, "TargetResource", op.target_resource)
    if op.unmodified_since_constraint:
        _add(el, "UnModifiedSinceConstraint", timestamp(op.unmodified_since_constraint))


def _metadata(el: _Element, meta: ObjectMetadata) -> None:
    _add(el, "CacheControl", meta.cache_control)
    _add(el, "ContentDisposition", meta.content_disposition)
    _add(el, "ContentEncoding", meta.content_encoding)
    _add(el, "ContentType", meta.content_type)
    if meta.http_expires_date:
        _add(el, "HttpExpiresDate", timestamp(meta.http_expires_date))
    _add(el, "SSEAlgorithm", _value(meta.sse_algorithm))
    if meta.user_metadata:
        _tags(etree.SubElement(el, "UserMetadata"), "member", meta.user_metadata)


def _tags(parent: _Element, item: str, tags: tuple[Tag, ...]) -> None:
    for tag in tags:
        entry = etree.SubElement(parent, item)
        _add(entry, "Key", tag.key)
        etree.SubElement(entry, "Value").text = tag.value


def _progress(parent: _Element, progress: ProgressSummary) -> None:
    el = etree.SubElement(parent, "ProgressSummary")
    _add(el, "NumberOfTasksFailed", str(progress.failed))
    _add(el, "NumberOfTasksSucceeded", str(progress.succeeded))
    timers = etree.SubElement(el, "Timers")
    _add(timers, "ElapsedTimeInActiveSeconds", str(progress.elapsed_active_seconds))
    _add(el, "TotalNumberOfTasks", str(progress.total))


def _report(parent: _Element, report: ReportSpec) -> None:
    el = etree.SubElement(parent, "Report")
    _add(el, "Bucket", report.bucket)
    _add(el, "Enabled", _bool(report.enabled))
    _add(el, "Format", report.format.value)
    _add(el, "Prefix", report.prefix)
    _add(el, "ReportScope", report.scope.value)


def _add(parent: _Element, name: str, text: str | None) -> None:
    if text is not None:
        etree.SubElement(parent, name).text = text


def _value(enum: StrEnum | None) -> str | None:
    return None if enum is None else enum.value


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _serialize(root: _Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
