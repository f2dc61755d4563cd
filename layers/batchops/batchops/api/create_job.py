"""CreateJobRequest XML -> JobSpec: every element of the seed's request table, validated.

Errors name the field that is wrong. A problem inside Manifest, Operation or Report is
MalformedXML naming that subtree (the seed's error table); a bad top-level value is
InvalidArgument, except Priority, which the seed answers with InvalidRequest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from lxml import etree

from batchops.api.errors import (
    MALFORMED_BODY,
    PRIORITY_RANGE,
    ApiError,
    ErrorCode,
    invalid_argument,
    malformed,
)
from batchops.api.xml_safe import BodyTooLargeError, UnsafeXmlError, parse_untrusted
from batchops.jobs.model import (
    CannedAcl,
    DeleteObject,
    Directive,
    Grant,
    GranteeType,
    GrantPermission,
    InitiateRestoreObject,
    JobSpec,
    JobTier,
    Manifest,
    ManifestField,
    ManifestFormat,
    ManifestLocation,
    ManifestSpec,
    ObjectMetadata,
    Operation,
    OperationName,
    PutObjectCopy,
    ReportFormat,
    ReportScope,
    ReportSpec,
    SseAlgorithm,
    StorageClass,
    Tag,
)
from batchops.manifest.resources import ResourceError, parse_bucket, parse_object

MAX_PRIORITY = 2_147_483_647
MAX_REPEATED = 100  # grants, tags, metadata pairs, fields: far above any real request
_INT = re.compile(r"^[0-9]{1,12}$")  # ASCII only: \d also matches other scripts' digits
_ROLE_ARN = re.compile(
    r"^(qcs::cam::uin/[0-9]+:roleName/[A-Za-z0-9_+=,.@/-]+|arn:[a-z-]+:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+)$"
)
_METADATA_KEY = re.compile(r"^[A-Za-z0-9!#$&'*+.^_`|~-]{1,128}$")
_CSV_FORMATS = frozenset({ManifestFormat.CSV, ManifestFormat.S3_CSV})

E = TypeVar("E", bound=StrEnum)
Fail = Callable[[str], ApiError]


def parse_create_job(body: bytes) -> JobSpec:
    """Parse and validate a CreateJobRequest body. Raises ApiError."""
    if not body.strip():
        raise ApiError(
            ErrorCode.INVALID_REQUEST, "The request body is empty; a CreateJobRequest is required."
        )
    try:
        root = parse_untrusted(body)
    except BodyTooLargeError as exc:
        raise ApiError(ErrorCode.ENTITY_TOO_LARGE, f"The request body is too large: {exc}.") from exc
    except UnsafeXmlError as exc:
        raise ApiError(ErrorCode.MALFORMED_XML, f"{MALFORMED_BODY}: {exc}.") from exc
    if root.tag != "CreateJobRequest":
        raise ApiError(
            ErrorCode.MALFORMED_XML,
            f"{MALFORMED_BODY}: the root element must be CreateJobRequest (no namespace), not {_name(root)}.",
        )

    def fail_body(detail: str) -> ApiError:
        return ApiError(ErrorCode.MALFORMED_XML, f"{MALFORMED_BODY}: {detail}")

    top = _Children(
        root,
        "CreateJobRequest",
        fail_body,
        single={
            "ClientRequestToken",
            "ConfirmationRequired",
            "Description",
            "Manifest",
            "Operation",
            "Priority",
            "Report",
            "RoleArn",
        },
    )
    token = top.text("ClientRequestToken", invalid_argument, required=True, max_bytes=64)
    description = top.text("Description", invalid_argument, max_bytes=256, min_bytes=0) or ""
    confirmation = top.boolean("ConfirmationRequired", invalid_argument, default=False)
    role_arn = top.text("RoleArn", invalid_argument, required=True, max_bytes=2048)
    assert role_arn is not None
    if not _ROLE_ARN.match(role_arn):
        raise invalid_argument(
            f"RoleArn {role_arn!r} is not a role name such as qcs::cam::uin/100000000001:roleName/<role> "
            "or arn:aws:iam::123456789012:role/<role>."
        )
    return JobSpec(
        client_request_token=token or "",
        confirmation_required=confirmation,
        description=description,
        manifest=_manifest(top.element("Manifest", _subtree("Manifest"))),
        operation=_operation(top.element("Operation", _subtree("Operation"))),
        priority=_priority(top),
        report=_report(top.element("Report", _subtree("Report"))),
        role_arn=role_arn,
    )


_PRINTABLE = re.compile("[\t\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def printable_xml_text(text: str) -> bool:
    """True if ``text`` has no control characters and can be written back in an XML 1.0 document."""
    return _PRINTABLE.fullmatch(text) is not None


def _subtree(field: str) -> Fail:
    def fail(detail: str) -> ApiError:
        return malformed(field, detail)

    return fail


def parse_priority(text: str | None) -> int:
    """A priority from XML or a query string. Raises InvalidRequest with the seed's message."""
    if text is None or not _INT.match(text.strip()) or int(text) > MAX_PRIORITY:
        raise ApiError(ErrorCode.INVALID_REQUEST, PRIORITY_RANGE)
    return int(text)


def _priority(top: _Children) -> int:
    def out_of_range(_: str) -> ApiError:
        return ApiError(ErrorCode.INVALID_REQUEST, PRIORITY_RANGE)

    return parse_priority(top.text("Priority", out_of_range, required=True, max_bytes=32))


# --- Manifest -------------------------------------------------------------------------------------


def _manifest(el: etree._Element) -> Manifest:
    fail = _subtree("Manifest")
    node = _Children(el, "Manifest", fail, single={"Location", "Spec"})
    loc = _Children(
        node.element("Location", fail),
        "Manifest/Location",
        fail,
        single={"ETag", "ObjectArn", "ObjectVersionId"},
    )
    object_arn = loc.text("ObjectArn", fail, required=True, max_bytes=1024) or ""
    try:
        parse_object(object_arn)
    except ResourceError as exc:
        raise fail(f"Manifest/Location/ObjectArn: {exc}") from exc
    location = ManifestLocation(
        object_arn=object_arn,
        etag=loc.text("ETag", fail, required=True, max_bytes=1024) or "",
        object_version_id=loc.text("ObjectVersionId", fail, max_bytes=1024),
    )
    spec = _Children(node.element("Spec", fail), "Manifest/Spec", fail, single={"Format", "Fields"})
    fmt = spec.enum("Format", ManifestFormat, fail, required=True)
    assert fmt is not None
    fields: tuple[ManifestField, ...] = ()
    if spec.has("Fields"):
        members = _Children(spec.element("Fields", fail), "Manifest/Spec/Fields", fail, repeated={"member"})
        fields = tuple(members.enums("member", ManifestField, fail))
    if fmt in _CSV_FORMATS:
        _check_csv_fields(fields, fail)
    elif fields:
        raise fail(f"Manifest/Spec/Fields is only for CSV manifests, not {fmt.value}.")
    return Manifest(location=location, spec=ManifestSpec(format=fmt, fields=fields))


def _check_csv_fields(fields: tuple[ManifestField, ...], fail: Fail) -> None:
    if not fields:
        raise fail("Manifest/Spec/Fields is required for a CSV manifest (members Bucket and Key at least).")
    for needed in (ManifestField.BUCKET, ManifestField.KEY):
        if fields.count(needed) != 1:
            raise fail(f"Manifest/Spec/Fields must list {needed.value} exactly once.")
    if fields.count(ManifestField.VERSION_ID) > 1:
        raise fail("Manifest/Spec/Fields may list VersionId at most once.")


# --- Operation ------------------------------------------------------------------------------------


def _operation(el: etree._Element) -> Operation:
    fail = _subtree("Operation")
    names = {op.value for op in OperationName}
    node = _Children(el, "Operation", fail, single=names)
    present = [name for name in names if node.has(name)]
    if len(present) != 1:
        raise fail(f"Operation must hold exactly one of {', '.join(sorted(names))}; found {len(present)}.")
    name = OperationName(present[0])
    child = node.element(name.value, fail)
    if name is OperationName.DELETE_OBJECT:
        _Children(child, name.value, fail)
        if (child.text or "").strip():
            raise fail("COSDeleteObject takes no content.")
        return DeleteObject()
    if name is OperationName.INITIATE_RESTORE_OBJECT:
        return _restore(child, fail)
    return _copy(child, fail)


def _restore(el: etree._Element, fail: Fail) -> InitiateRestoreObject:
    path = "COSInitiateRestoreObject"
    node = _Children(el, path, fail, single={"ExpirationInDays", "JobTier"})
    days = node.text("ExpirationInDays", fail, required=True, max_bytes=16) or ""
    if not _INT.match(days) or not 1 <= int(days) <= 365:
        raise fail(f"{path}/ExpirationInDays must be an integer from 1 to 365, not {days!r}.")
    tier = node.enum("JobTier", JobTier, fail, required=True)
    assert tier is not None
    return InitiateRestoreObject(expiration_in_days=int(days), job_tier=tier)


def _copy(el: etree._Element, fail: Fail) -> PutObjectCopy:
    path = "COSPutObjectCopy"
    node = _Children(
        el,
        path,
        fail,
        single={
            "TargetResource",
            "AccessControlDirective",
            "AccessControlGrants",
            "CannedAccessControlList",
            "PrefixReplace",
            "ResourcesPrefix",
            "TargetKeyPrefix",
            "MetadataDirective",
            "ModifiedSinceConstraint",
            "UnModifiedSinceConstraint",
            "NewObjectMetadata",
            "TaggingDirective",
            "NewObjectTagging",
            "StorageClass",
        },
    )
    target = node.text("TargetResource", fail, required=True, max_bytes=1024) or ""
    try:
        parse_bucket(target)
    except ResourceError as exc:
        raise fail(f"{path}/TargetResource: {exc}") from exc

    acl_directive = node.enum("AccessControlDirective", Directive, fail)
    grants = (
        _grants(node.element("AccessControlGrants", fail), fail) if node.has("AccessControlGrants") else ()
    )
    canned = node.enum("CannedAccessControlList", CannedAcl, fail)
    if acl_directive in (None, Directive.COPY) and (grants or canned):
        raise fail(
            f"{path}: AccessControlGrants and CannedAccessControlList need "
            "AccessControlDirective Replaced or Add."
        )
    if grants and canned:
        # S3 and COS take either a canned ACL or explicit grants on one request, never both.
        raise fail(f"{path}: use AccessControlGrants or CannedAccessControlList, not both.")
    if acl_directive is Directive.ADD and not grants:
        raise fail(f"{path}: AccessControlDirective Add needs AccessControlGrants.")
    if acl_directive is Directive.REPLACED and not (grants or canned):
        raise fail(
            f"{path}: AccessControlDirective Replaced needs AccessControlGrants or CannedAccessControlList."
        )

    prefix_replace = node.boolean("PrefixReplace", fail, default=False)
    resources_prefix = node.text("ResourcesPrefix", fail, max_bytes=1024, min_bytes=0, key_part=True)
    target_key_prefix = node.text("TargetKeyPrefix", fail, max_bytes=1024, min_bytes=0, key_part=True)
    if prefix_replace and not (resources_prefix or target_key_prefix):
        raise fail(f"{path}: PrefixReplace true needs ResourcesPrefix or TargetKeyPrefix.")
    if not prefix_replace and resources_prefix:
        raise fail(f"{path}: ResourcesPrefix is only used with PrefixReplace true.")

    metadata_directive = node.enum("MetadataDirective", Directive, fail)
    metadata = (
        _metadata(node.element("NewObjectMetadata", fail), fail) if node.has("NewObjectMetadata") else None
    )
    if metadata is not None and metadata_directive in (None, Directive.COPY):
        raise fail(f"{path}: NewObjectMetadata needs MetadataDirective Replaced or Add.")
    if metadata_directive is Directive.ADD and metadata is None:
        raise fail(f"{path}: MetadataDirective Add needs NewObjectMetadata.")

    tagging_directive = node.enum("TaggingDirective", Directive, fail)
    tags = _tags(node.element("NewObjectTagging", fail), fail) if node.has("NewObjectTagging") else ()
    if tags and tagging_directive in (None, Directive.COPY):
        raise fail(f"{path}: NewObjectTagging needs TaggingDirective Replaced or Add.")
    if tagging_directive in (Directive.REPLACED, Directive.ADD) and not node.has("NewObjectTagging"):
        raise fail(f"{path}: TaggingDirective {tagging_directive.value} needs NewObjectTagging.")

    return PutObjectCopy(
        target_resource=target,
        access_control_directive=acl_directive,
        access_control_grants=grants,
        canned_access_control_list=canned,
        prefix_replace=prefix_replace,
        resources_prefix=resources_prefix,
        target_key_prefix=target_key_prefix,
        metadata_directive=metadata_directive,
        modified_since_constraint=node.timestamp("ModifiedSinceConstraint", fail),
        unmodified_since_constraint=node.timestamp("UnModifiedSinceConstraint", fail),
        new_object_metadata=metadata,
        tagging_directive=tagging_directive,
        new_object_tagging=tags,
        storage_class=node.enum("StorageClass", StorageClass, fail),
    )


def _grants(el: etree._Element, fail: Fail) -> tuple[Grant, ...]:
    path = "COSPutObjectCopy/AccessControlGrants"
    grants = []
    for grant_el in _Children(el, path, fail, repeated={"COSGrant"}).all("COSGrant"):
        grant = _Children(grant_el, f"{path}/COSGrant", fail, single={"Grantee", "Permission"})
        grantee = _Children(
            grant.element("Grantee", fail),
            f"{path}/COSGrant/Grantee",
            fail,
            single={"Identifier", "TypeIdentifier", "DisplayName"},
        )
        type_identifier = grantee.enum("TypeIdentifier", GranteeType, fail, required=True)
        permission = grant.enum("Permission", GrantPermission, fail, required=True)
        assert type_identifier is not None and permission is not None
        grants.append(
            Grant(
                identifier=grantee.text("Identifier", fail, required=True, max_bytes=1024) or "",
                type_identifier=type_identifier,
                permission=permission,
                display_name=grantee.text("DisplayName", fail, max_bytes=1024),
            )
        )
    if not grants:
        raise fail(f"{path} must hold at least one COSGrant.")
    return tuple(grants)


def _metadata(el: etree._Element, fail: Fail) -> ObjectMetadata:
    path = "COSPutObjectCopy/NewObjectMetadata"
    node = _Children(
        el,
        path,
        fail,
        single={
            "CacheControl",
            "ContentDisposition",
            "ContentEncoding",
            "ContentType",
            "HttpExpiresDate",
            "SSEAlgorithm",
            "UserMetadata",
        },
    )
    user: list[Tag] = []
    if node.has("UserMetadata"):
        for member_el in _Children(
            node.element("UserMetadata", fail), f"{path}/UserMetadata", fail, repeated={"member"}
        ).all("member"):
            member = _Children(member_el, f"{path}/UserMetadata/member", fail, single={"Key", "Value"})
            key = member.text("Key", fail, required=True, max_bytes=128) or ""
            if not _METADATA_KEY.match(key):
                raise fail(
                    f"{path}/UserMetadata: {key!r} is not a valid metadata name (letters, digits, - _ .)."
                )
            value = member.text("Value", fail, max_bytes=2048, min_bytes=0) or ""
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise fail(f"{path}/UserMetadata: the value of {key!r} contains control characters.")
            user.append(Tag(key=key, value=value))
    if len({t.key.lower() for t in user}) != len(user):
        raise fail(f"{path}/UserMetadata lists a key twice.")
    return ObjectMetadata(
        cache_control=node.text("CacheControl", fail, max_bytes=1024),
        content_disposition=node.text("ContentDisposition", fail, max_bytes=1024),
        content_encoding=node.text("ContentEncoding", fail, max_bytes=1024),
        content_type=node.text("ContentType", fail, max_bytes=1024),
        http_expires_date=node.timestamp("HttpExpiresDate", fail),
        sse_algorithm=node.enum("SSEAlgorithm", SseAlgorithm, fail),
        user_metadata=tuple(user),
    )


def _tags(el: etree._Element, fail: Fail) -> tuple[Tag, ...]:
    path = "COSPutObjectCopy/NewObjectTagging"
    tags = []
    for tag_el in _Children(el, path, fail, repeated={"COSTag"}).all("COSTag"):
        tag = _Children(tag_el, f"{path}/COSTag", fail, single={"Key", "Value"})
        tags.append(
            Tag(
                key=tag.text("Key", fail, required=True, max_bytes=128) or "",
                value=tag.text("Value", fail, max_bytes=256, min_bytes=0) or "",
            )
        )
    if len({t.key for t in tags}) != len(tags):
        raise fail(f"{path} lists a tag key twice.")
    if len(tags) > 10:
        raise fail(f"{path} may hold at most 10 tags.")
    return tuple(tags)


# --- Report ---------------------------------------------------------------------------------------


def _report(el: etree._Element) -> ReportSpec:
    fail = _subtree("Report")
    node = _Children(el, "Report", fail, single={"Bucket", "Enabled", "Format", "Prefix", "ReportScope"})
    enabled = node.boolean("Enabled", fail, required=True)
    bucket = node.text("Bucket", fail, required=enabled, max_bytes=1024)
    if bucket is not None:
        try:
            parse_bucket(bucket)
        except ResourceError as exc:
            raise fail(f"Report/Bucket: {exc}") from exc
    fmt = node.enum("Format", ReportFormat, fail, required=enabled) or ReportFormat.CSV
    scope = node.enum("ReportScope", ReportScope, fail, required=enabled) or ReportScope.ALL_TASKS
    prefix = node.text("Prefix", fail, max_bytes=256, min_bytes=0, key_part=True)
    return ReportSpec(bucket=bucket, enabled=enabled, format=fmt, scope=scope, prefix=prefix or None)


# --- reading children -----------------------------------------------------------------------------


class _Children:
    """The element children of one XML element, checked against what may appear there."""

    def __init__(
        self,
        el: etree._Element,
        path: str,
        fail: Fail,
        single: set[str] | frozenset[str] = frozenset(),
        repeated: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.path = path
        self._by_name: dict[str, list[etree._Element]] = {}
        if len(el) and (el.text or "").strip():
            raise fail(f"{path} mixes text with elements.")
        for child in el:
            name = _name(child)
            if name not in single and name not in repeated:
                raise fail(f"{path} has an unexpected element {name}.")
            if (child.tail or "").strip():
                raise fail(f"{path} mixes text with elements.")
            same = self._by_name.setdefault(name, [])
            same.append(child)
            if name in single and len(same) > 1:
                raise fail(f"{path}/{name} appears more than once.")
            if len(same) > MAX_REPEATED:
                raise fail(f"{path}/{name} appears more than {MAX_REPEATED} times.")

    def has(self, name: str) -> bool:
        return name in self._by_name

    def all(self, name: str) -> list[etree._Element]:
        return self._by_name.get(name, [])

    def element(self, name: str, fail: Fail) -> etree._Element:
        if name not in self._by_name:
            raise fail(f"{self._where(name)} is required.")
        return self._by_name[name][0]

    def text(
        self,
        name: str,
        fail: Fail,
        *,
        required: bool = False,
        max_bytes: int,
        min_bytes: int = 1,
        key_part: bool = False,
    ) -> str | None:
        """The element's text. Control characters are refused unless it is part of object keys
        (a prefix), which S3 allows to hold any: everything else ends up in an HTTP header (ETag,
        metadata, tags), a URL or ARN, a log line or a response, where CR or LF could forge more."""
        if name not in self._by_name:
            if required:
                raise fail(f"{self._where(name)} is required.")
            return None
        el = self._by_name[name][0]
        if len(el):
            raise fail(f"{self._where(name)} must hold text, not elements.")
        value = self._check_length(name, el.text or "", fail, min_bytes, max_bytes)
        if not key_part and not printable_xml_text(value):
            raise fail(f"{self._where(name)} must not contain control characters such as CR or LF.")
        return value

    def _check_length(self, name: str, value: str, fail: Fail, min_bytes: int, max_bytes: int) -> str:
        size = len(value.encode("utf-8"))
        if not min_bytes <= size <= max_bytes:
            raise fail(f"{self._where(name)} must be {min_bytes}-{max_bytes} bytes long, not {size}.")
        return value

    def boolean(self, name: str, fail: Fail, *, required: bool = False, default: bool = False) -> bool:
        value = self.text(name, fail, required=required, max_bytes=8)
        if value is None:
            return default
        if value.strip().lower() not in ("true", "false"):
            raise fail(f"{self._where(name)} must be true or false, not {value!r}.")
        return value.strip().lower() == "true"

    def enum(self, name: str, enum: type[E], fail: Fail, *, required: bool = False) -> E | None:
        value = self.text(name, fail, required=required, max_bytes=128)
        return None if value is None else _enum_value(self._where(name), value, enum, fail)

    def enums(self, name: str, enum: type[E], fail: Fail) -> list[E]:
        return [
            _enum_value(self._where(name), self._check_length(name, el.text or "", fail, 1, 128), enum, fail)
            for el in self.all(name)
        ]

    def timestamp(self, name: str, fail: Fail) -> datetime | None:
        value = self.text(name, fail, max_bytes=64)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise fail(
                f"{self._where(name)} must be an ISO 8601 timestamp such as 2019-12-19T18:00:30Z."
            ) from exc
        try:
            moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            moment = datetime.min.replace(tzinfo=UTC)
        if not 1970 <= moment.year <= 9999:
            raise fail(f"{self._where(name)} must be between 1970 and 9999, not {value!r}.")
        return moment

    def _where(self, name: str) -> str:
        return f"{self.path}/{name}"


def _enum_value(where: str, value: str, enum: type[E], fail: Fail) -> E:
    try:
        return enum(value.strip())
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise fail(f"{where} must be one of {allowed}, not {value!r}.") from None


def _name(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return "(not an element)"
    return tag if not tag.startswith("{") else f"{{{etree.QName(tag).namespace}}}{etree.QName(tag).localname}"
