"""CreateJobRequest parsing: every element of the seed's table, every rule, the right COS error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from lxml import etree

from batchops.api.create_job import parse_create_job
from batchops.api.errors import ApiError, ErrorCode
from batchops.api.render import describe_job_result
from batchops.jobs.model import (
    DeleteObject,
    Directive,
    GranteeType,
    GrantPermission,
    InitiateRestoreObject,
    Job,
    JobTier,
    ManifestField,
    ManifestFormat,
    PutObjectCopy,
    ReportScope,
    SseAlgorithm,
    StorageClass,
    Tag,
)
from batchops.jobs.status import JobStatus
from tests.conftest import SEED_XML

FULL_COPY = """
<COSPutObjectCopy>
  <AccessControlDirective>Replaced</AccessControlDirective>
  <AccessControlGrants>
    <COSGrant><Grantee><Identifier>100000000011</Identifier><TypeIdentifier>ID</TypeIdentifier></Grantee>
      <Permission>READ</Permission></COSGrant>
    <COSGrant><Grantee><DisplayName>ops</DisplayName><Identifier>100000000012</Identifier>
      <TypeIdentifier>ID</TypeIdentifier></Grantee><Permission>FULL_CONTROL</Permission></COSGrant>
  </AccessControlGrants>
  <PrefixReplace>true</PrefixReplace>
  <ResourcesPrefix>pic</ResourcesPrefix>
  <TargetKeyPrefix>abc</TargetKeyPrefix>
  <MetadataDirective>Add</MetadataDirective>
  <ModifiedSinceConstraint>2019-12-19T18:00:30Z</ModifiedSinceConstraint>
  <UnModifiedSinceConstraint>2030-01-01T00:00:00Z</UnModifiedSinceConstraint>
  <NewObjectMetadata>
    <CacheControl>max-age=600</CacheControl>
    <ContentDisposition>attachment</ContentDisposition>
    <ContentEncoding>gzip</ContentEncoding>
    <ContentType>text/plain</ContentType>
    <HttpExpiresDate>2030-01-01T00:00:00Z</HttpExpiresDate>
    <SSEAlgorithm>AES256</SSEAlgorithm>
    <UserMetadata><member><Key>team</Key><Value>data</Value></member>
      <member><Key>x-origin</Key><Value>batch, "copy"</Value></member></UserMetadata>
  </NewObjectMetadata>
  <TaggingDirective>Replaced</TaggingDirective>
  <NewObjectTagging><COSTag><Key>env</Key><Value>prod</Value></COSTag></NewObjectTagging>
  <StorageClass>STANDARD_IA</StorageClass>
  <TargetResource>qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000</TargetResource>
</COSPutObjectCopy>
"""


def seed() -> etree._Element:
    return etree.fromstring(SEED_XML.read_bytes())


def body(root: etree._Element) -> bytes:
    return etree.tostring(root)


def set_text(path: str, text: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        el = root.find(path)
        assert el is not None, path
        el.text = text

    return mutate


def remove(path: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        el = root.find(path)
        assert el is not None, path
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)

    return mutate


def operation(xml: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        op = root.find("Operation")
        assert op is not None
        for child in list(op):
            op.remove(child)
        for child in etree.fromstring(f"<Operation>{xml}</Operation>"):
            op.append(child)

    return mutate


def append(path: str, xml: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        parent = root if path == "." else root.find(path)
        assert parent is not None
        parent.append(etree.fromstring(xml))

    return mutate


def parse_error(mutate: Callable[[etree._Element], None]) -> ApiError:
    root = seed()
    mutate(root)
    with pytest.raises(ApiError) as caught:
        parse_create_job(body(root))
    return caught.value


def test_seed_example_parses_to_its_values() -> None:
    # GIVEN the seed's example CreateJob body
    # WHEN it is parsed
    spec = parse_create_job(SEED_XML.read_bytes())
    # THEN every element is read
    assert spec.client_request_token == "184ce261-18af-5e3d-3e30-253723cfd937"
    assert spec.confirmation_required is False
    assert spec.description == "example-job"
    assert spec.priority == 10
    assert spec.role_arn == "qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole"
    assert spec.manifest.location.etag == '"15150651828fa9cdcb8356b6d1c7638b"'
    assert spec.manifest.location.object_arn.endswith("/manifests/batch-copy-manifest.csv")
    assert spec.manifest.spec.format is ManifestFormat.CSV
    assert spec.manifest.spec.fields == (ManifestField.BUCKET, ManifestField.KEY)
    assert spec.operation == PutObjectCopy(
        target_resource="qcs::cos:ap-chengdu:uid/1250000000:destinationbucket-1250000000"
    )
    assert spec.report.enabled is True
    assert spec.report.prefix == "job-result"
    assert spec.report.scope is ReportScope.ALL_TASKS


def test_every_copy_element_is_read() -> None:
    # GIVEN a COSPutObjectCopy with every child the seed lists
    root = seed()
    operation(FULL_COPY)(root)
    # WHEN parsed
    op = parse_create_job(body(root)).operation
    # THEN each child has its typed value
    assert isinstance(op, PutObjectCopy)
    assert op.access_control_directive is Directive.REPLACED
    assert [
        (g.identifier, g.type_identifier, g.permission, g.display_name) for g in op.access_control_grants
    ] == [
        ("100000000011", GranteeType.ID, GrantPermission.READ, None),
        ("100000000012", GranteeType.ID, GrantPermission.FULL_CONTROL, "ops"),
    ]
    assert op.canned_access_control_list is None
    assert (op.prefix_replace, op.resources_prefix, op.target_key_prefix) == (True, "pic", "abc")
    assert op.metadata_directive is Directive.ADD
    assert op.modified_since_constraint == datetime(2019, 12, 19, 18, 0, 30, tzinfo=UTC)
    assert op.unmodified_since_constraint == datetime(2030, 1, 1, tzinfo=UTC)
    meta = op.new_object_metadata
    assert meta is not None
    assert (meta.cache_control, meta.content_disposition, meta.content_encoding, meta.content_type) == (
        "max-age=600",
        "attachment",
        "gzip",
        "text/plain",
    )
    assert meta.http_expires_date == datetime(2030, 1, 1, tzinfo=UTC)
    assert meta.sse_algorithm is SseAlgorithm.AES256
    assert meta.user_metadata == (Tag("team", "data"), Tag("x-origin", 'batch, "copy"'))
    assert op.tagging_directive is Directive.REPLACED
    assert op.new_object_tagging == (Tag("env", "prod"),)
    assert op.storage_class is StorageClass.STANDARD_IA


@pytest.mark.parametrize(
    "xml",
    [
        FULL_COPY,
        "<COSInitiateRestoreObject><ExpirationInDays>7</ExpirationInDays><JobTier>Bulk</JobTier></COSInitiateRestoreObject>",
        "<COSDeleteObject/>",
    ],
)
def test_described_job_echoes_the_request_it_was_created_from(xml: str) -> None:
    # GIVEN a request with one operation
    root = seed()
    operation(xml)(root)
    spec = parse_create_job(body(root))
    job = Job("j-1", "1250000000", spec, JobStatus.NEW, datetime(2026, 1, 1, tzinfo=UTC), spec.priority)
    # WHEN the job is described and the Manifest/Operation/Report are sent back as a new request
    described = etree.fromstring(describe_job_result(job)).find("Job")
    assert described is not None
    again = etree.Element("CreateJobRequest")
    for name in (
        "ClientRequestToken",
        "Manifest",
        "Operation",
        "Priority",
        "Report",
        "RoleArn",
        "Description",
    ):
        el = described.find(name)
        if el is None:
            el = root.find(name)
        assert el is not None
        again.append(el)
    # THEN it parses to the same spec
    assert parse_create_job(etree.tostring(again)) == spec


def test_restore_and_delete_operations() -> None:
    root = seed()
    operation(
        "<COSInitiateRestoreObject><ExpirationInDays>365</ExpirationInDays>"
        "<JobTier>Standard</JobTier></COSInitiateRestoreObject>"
    )(root)
    assert parse_create_job(body(root)).operation == InitiateRestoreObject(365, JobTier.STANDARD)
    operation("<COSDeleteObject></COSDeleteObject>")(root)
    assert parse_create_job(body(root)).operation == DeleteObject()


def test_optional_elements_take_their_defaults() -> None:
    root = seed()
    remove("ConfirmationRequired")(root)
    remove("Description")(root)
    remove("Report/Prefix")(root)
    spec = parse_create_job(body(root))
    assert (spec.confirmation_required, spec.description, spec.report.prefix) == (False, "", None)


def test_s3_manifest_format_spellings_are_accepted() -> None:
    root = seed()
    set_text("Manifest/Spec/Format", "S3BatchOperations_CSV_20180820")(root)
    assert parse_create_job(body(root)).manifest.spec.format is ManifestFormat.S3_CSV


def test_inventory_manifest_needs_no_fields() -> None:
    root = seed()
    remove("Manifest/Spec/Fields")(root)
    set_text("Manifest/Spec/Format", "COSInventoryReport_CSV_V1")(root)
    assert parse_create_job(body(root)).manifest.spec.fields == ()


def test_report_disabled_needs_only_enabled() -> None:
    root = seed()
    report = root.find("Report")
    assert report is not None
    for child in list(report):
        report.remove(child)
    report.append(etree.fromstring("<Enabled>false</Enabled>"))
    spec = parse_create_job(body(root))
    assert (spec.report.enabled, spec.report.bucket) == (False, None)


def test_priority_bounds_are_inclusive() -> None:
    for value in ("0", "2147483647"):
        root = seed()
        set_text("Priority", value)(root)
        assert parse_create_job(body(root)).priority == int(value)


def test_byte_lengths_are_counted_in_utf8() -> None:
    # 64 bytes of token is fine, 22 three-byte characters (66 bytes) is not
    root = seed()
    set_text("ClientRequestToken", "t" * 64)(root)
    parse_create_job(body(root))
    error = parse_error(set_text("ClientRequestToken", "\u4e2d" * 22))
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert "ClientRequestToken" in error.message


MANIFEST = "The XML Manifest field"
OPERATION = "The XML Operation field"
REPORT = "The XML Report field"
PRIORITY = "Priority must be an integer between 0 and 2147483647."
BAD = [
    # (mutation, code, fragments of the message)
    (set_text("Priority", "-1"), ErrorCode.INVALID_REQUEST, [PRIORITY]),
    (set_text("Priority", "2147483648"), ErrorCode.INVALID_REQUEST, [PRIORITY]),
    (set_text("Priority", "ten"), ErrorCode.INVALID_REQUEST, [PRIORITY]),
    (set_text("Priority", "1.5"), ErrorCode.INVALID_REQUEST, [PRIORITY]),
    (remove("Priority"), ErrorCode.INVALID_REQUEST, [PRIORITY]),
    (remove("ClientRequestToken"), ErrorCode.INVALID_ARGUMENT, ["ClientRequestToken is required"]),
    (set_text("ClientRequestToken", ""), ErrorCode.INVALID_ARGUMENT, ["ClientRequestToken", "1-64 bytes"]),
    (set_text("ClientRequestToken", "x" * 65), ErrorCode.INVALID_ARGUMENT, ["ClientRequestToken", "not 65"]),
    (set_text("Description", "d" * 257), ErrorCode.INVALID_ARGUMENT, ["Description", "0-256"]),
    (set_text("Description", "a\r\nX-Injected: 1"), ErrorCode.INVALID_ARGUMENT, ["control characters"]),
    (set_text("ClientRequestToken", "t\nx"), ErrorCode.INVALID_ARGUMENT, ["ClientRequestToken", "control"]),
    (
        set_text("Manifest/Location/ETag", '"e"\r\nX: 1'),
        ErrorCode.MALFORMED_XML,
        ["Location/ETag", "control"],
    ),
    (set_text("Report/Bucket", "qcs::cos:ap-chengdu::b-1250000000\n"), ErrorCode.MALFORMED_XML, ["control"]),
    (set_text("Priority", "\u0661"), ErrorCode.INVALID_REQUEST, [PRIORITY]),
    (
        set_text("ConfirmationRequired", "yes"),
        ErrorCode.INVALID_ARGUMENT,
        ["ConfirmationRequired", "true or false"],
    ),
    (remove("RoleArn"), ErrorCode.INVALID_ARGUMENT, ["RoleArn is required"]),
    (set_text("RoleArn", "admin"), ErrorCode.INVALID_ARGUMENT, ["RoleArn 'admin'"]),
    # Manifest
    (remove("Manifest"), ErrorCode.MALFORMED_XML, [MANIFEST, "Manifest is required"]),
    (
        remove("Manifest/Location/ETag"),
        ErrorCode.MALFORMED_XML,
        [MANIFEST, "Manifest/Location/ETag is required"],
    ),
    (set_text("Manifest/Location/ETag", "e" * 1025), ErrorCode.MALFORMED_XML, [MANIFEST, "ETag"]),
    (remove("Manifest/Location/ObjectArn"), ErrorCode.MALFORMED_XML, [MANIFEST, "ObjectArn is required"]),
    (
        set_text("Manifest/Location/ObjectArn", "s3://b/k"),
        ErrorCode.MALFORMED_XML,
        [MANIFEST, "not a resource name"],
    ),
    (
        set_text("Manifest/Location/ObjectArn", "qcs::cos:ap-chengdu::sourcebucket-1250000000"),
        ErrorCode.MALFORMED_XML,
        [MANIFEST, "an object is expected"],
    ),
    (set_text("Manifest/Spec/Format", "CSV"), ErrorCode.MALFORMED_XML, [MANIFEST, "Format must be one of"]),
    (remove("Manifest/Spec/Format"), ErrorCode.MALFORMED_XML, [MANIFEST, "Format is required"]),
    (remove("Manifest/Spec/Fields"), ErrorCode.MALFORMED_XML, [MANIFEST, "Fields is required"]),
    (
        set_text("Manifest/Spec/Fields/member", "Name"),
        ErrorCode.MALFORMED_XML,
        [MANIFEST, "member must be one of"],
    ),
    (
        set_text("Manifest/Spec/Fields/member", "Key"),
        ErrorCode.MALFORMED_XML,
        [MANIFEST, "Bucket exactly once"],
    ),
    (
        append("Manifest/Location", "<ETag>x</ETag>"),
        ErrorCode.MALFORMED_XML,
        [MANIFEST, "ETag appears more than once"],
    ),
    (append("Manifest", "<Extra/>"), ErrorCode.MALFORMED_XML, [MANIFEST, "unexpected element Extra"]),
    # Operation
    (remove("Operation"), ErrorCode.MALFORMED_XML, [OPERATION, "Operation is required"]),
    (operation(""), ErrorCode.MALFORMED_XML, [OPERATION, "exactly one"]),
    (
        operation("<COSDeleteObject/><COSInitiateRestoreObject/>"),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "exactly one"],
    ),
    (
        operation("<S3PutObjectCopy/>"),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "unexpected element S3PutObjectCopy"],
    ),
    (operation("<COSPutObjectCopy/>"), ErrorCode.MALFORMED_XML, [OPERATION, "TargetResource is required"]),
    (
        operation(
            "<COSPutObjectCopy><TargetResource>qcs::cos:ap-chengdu::b-1/k</TargetResource></COSPutObjectCopy>"
        ),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "a bucket is expected"],
    ),
    (
        operation(FULL_COPY.replace("<StorageClass>STANDARD_IA", "<StorageClass>COLD")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "StorageClass must be one of"],
    ),
    (
        operation(FULL_COPY.replace("<MetadataDirective>Add", "<MetadataDirective>Replace")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "MetadataDirective must be one of Copy, Replaced, Add"],
    ),
    (
        operation(
            FULL_COPY.replace(
                "<StorageClass>", "<CannedAccessControlList>world</CannedAccessControlList><StorageClass>"
            )
        ),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "CannedAccessControlList must be one of"],
    ),
    (
        operation(
            FULL_COPY.replace(
                "<StorageClass>", "<CannedAccessControlList>private</CannedAccessControlList><StorageClass>"
            )
        ),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "not both"],
    ),
    (
        operation(FULL_COPY.replace("<Permission>READ<", "<Permission>ALL<")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "Permission must be one of"],
    ),
    (
        operation(FULL_COPY.replace("<PrefixReplace>true", "<PrefixReplace>1")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "PrefixReplace must be true or false"],
    ),
    (
        operation(FULL_COPY.replace("<PrefixReplace>true", "<PrefixReplace>false")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "ResourcesPrefix is only used with PrefixReplace true"],
    ),
    (
        operation(FULL_COPY.replace("2019-12-19T18:00:30Z", "yesterday")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "ModifiedSinceConstraint must be an ISO 8601 timestamp"],
    ),
    (
        operation(FULL_COPY.replace("2019-12-19T18:00:30Z", "0001-01-01T00:00:00+05:00")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "ModifiedSinceConstraint must be between 1970 and 9999"],
    ),
    (
        operation(FULL_COPY.replace("<TaggingDirective>Replaced", "<TaggingDirective>Copy")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "NewObjectTagging needs TaggingDirective Replaced or Add"],
    ),
    (
        operation(FULL_COPY.replace("<MetadataDirective>Add", "<MetadataDirective>Copy")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "NewObjectMetadata needs MetadataDirective Replaced or Add"],
    ),
    (
        operation(FULL_COPY.replace("<AccessControlDirective>Replaced", "<AccessControlDirective>Copy")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "need AccessControlDirective Replaced or Add"],
    ),
    (
        operation(FULL_COPY.replace("<Key>env</Key>", "<Key>env</Key><Key>dup</Key>")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "Key appears more than once"],
    ),
    (
        operation(FULL_COPY.replace("<Key>team</Key>", "<Key>bad key</Key>")),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "not a valid metadata name"],
    ),
    (
        operation(
            "<COSInitiateRestoreObject><ExpirationInDays>0</ExpirationInDays><JobTier>Bulk</JobTier>"
            "</COSInitiateRestoreObject>"
        ),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "ExpirationInDays must be an integer from 1 to 365"],
    ),
    (
        operation(
            "<COSInitiateRestoreObject><ExpirationInDays>3</ExpirationInDays><JobTier>Expedited</JobTier>"
            "</COSInitiateRestoreObject>"
        ),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "JobTier must be one of Bulk, Standard"],
    ),
    (
        operation("<COSInitiateRestoreObject><JobTier>Bulk</JobTier></COSInitiateRestoreObject>"),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "ExpirationInDays is required"],
    ),
    (operation("<COSDeleteObject>now</COSDeleteObject>"), ErrorCode.MALFORMED_XML, [OPERATION, "no content"]),
    (
        operation("<COSDeleteObject><Quiet/></COSDeleteObject>"),
        ErrorCode.MALFORMED_XML,
        [OPERATION, "unexpected"],
    ),
    # Report
    (remove("Report"), ErrorCode.MALFORMED_XML, [REPORT, "Report is required"]),
    (remove("Report/Enabled"), ErrorCode.MALFORMED_XML, [REPORT, "Enabled is required"]),
    (set_text("Report/Enabled", "on"), ErrorCode.MALFORMED_XML, [REPORT, "Enabled must be true or false"]),
    (remove("Report/Bucket"), ErrorCode.MALFORMED_XML, [REPORT, "Bucket is required"]),
    (set_text("Report/Bucket", "bucket"), ErrorCode.MALFORMED_XML, [REPORT, "not a resource name"]),
    (set_text("Report/Format", "Report_JSON"), ErrorCode.MALFORMED_XML, [REPORT, "Format must be one of"]),
    (set_text("Report/ReportScope", "Some"), ErrorCode.MALFORMED_XML, [REPORT, "ReportScope must be one of"]),
    (set_text("Report/Prefix", "p" * 257), ErrorCode.MALFORMED_XML, [REPORT, "Prefix must be 0-256 bytes"]),
    # The body as a whole
    (append(".", "<Tags/>"), ErrorCode.MALFORMED_XML, ["unexpected element Tags"]),
    (append(".", "<Priority>3</Priority>"), ErrorCode.MALFORMED_XML, ["Priority appears more than once"]),
]


@pytest.mark.parametrize(("mutate", "code", "fragments"), BAD)
def test_bad_requests_get_the_right_error_naming_the_field(
    mutate: Callable[[etree._Element], None], code: ErrorCode, fragments: list[str]
) -> None:
    # GIVEN the seed request with one thing wrong
    # WHEN it is parsed
    error = parse_error(mutate)
    # THEN the COS code is right and the message says what is wrong
    assert error.code is code, error.message
    for fragment in fragments:
        assert fragment in error.message


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", ErrorCode.INVALID_REQUEST),
        (b"   ", ErrorCode.INVALID_REQUEST),
        (b"<CreateJobRequest>", ErrorCode.MALFORMED_XML),
        (b"not xml at all", ErrorCode.MALFORMED_XML),
        (b"<CreateJob/>", ErrorCode.MALFORMED_XML),
        (
            b'<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"/>',
            ErrorCode.MALFORMED_XML,
        ),
        (b"<CreateJobRequest>\xff\xfe</CreateJobRequest>", ErrorCode.MALFORMED_XML),
    ],
)
def test_bodies_that_are_not_a_create_job_request(raw: bytes, code: ErrorCode) -> None:
    with pytest.raises(ApiError) as caught:
        parse_create_job(raw)
    assert caught.value.code is code
    assert "line" not in caught.value.message  # no parser internals


def test_key_prefixes_may_hold_any_character_s3_keys_may() -> None:
    # GIVEN prefixes with a line break (S3 keys may hold one; other fields may not)
    root = seed()
    operation(
        "<COSPutObjectCopy><TargetResource>qcs::cos:ap-chengdu:uid/1250000000:d-1250000000</TargetResource>"
        "<PrefixReplace>true</PrefixReplace><ResourcesPrefix>a&#10;</ResourcesPrefix>"
        "<TargetKeyPrefix>b&#13;</TargetKeyPrefix></COSPutObjectCopy>"
    )(root)
    set_text("Report/Prefix", "reports\n")(root)
    # WHEN parsed THEN they are kept as sent
    spec = parse_create_job(body(root))
    assert isinstance(spec.operation, PutObjectCopy)
    assert (spec.operation.resources_prefix, spec.operation.target_key_prefix) == ("a\n", "b\r")
    assert spec.report.prefix == "reports\n"
