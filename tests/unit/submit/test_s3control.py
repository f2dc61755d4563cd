"""The s3control target: requests translated for S3 Batch Operations, checked by botocore's Stubber
against the real s3control service model; what S3 cannot do refused when the rule loads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from batchops.api.create_job import parse_create_job
from batchops.settings import SettingsError, SubmitSettings
from batchops.submit.rules import parse_rule
from batchops.submit.s3control import S3ControlTarget, TranslationError, to_create_job

ACCOUNT = "123456789012"
RULE = {
    "name": "copy-to-backup",
    "operation": {
        "COSPutObjectCopy": {
            "TargetResource": "arn:aws:s3:::backup-bucket",
            "TargetKeyPrefix": "copies/",
            "StorageClass": "STANDARD_IA",
            "MetadataDirective": "Replaced",
            "NewObjectMetadata": {
                "ContentType": "text/plain",
                "SSEAlgorithm": "AES256",
                "UserMetadata": [{"Key": "team", "Value": "data"}],
            },
            "TaggingDirective": "Replaced",
            "NewObjectTagging": [{"Key": "copied", "Value": "yes"}],
            "AccessControlDirective": "Replaced",
            "AccessControlGrants": [
                {"Grantee": {"Identifier": "abc123", "TypeIdentifier": "ID"}, "Permission": "READ"}
            ],
            "UnModifiedSinceConstraint": "2030-01-01T00:00:00Z",
        }
    },
    "priority": 7,
    "confirmationRequired": True,
    "report": {"bucket": "arn:aws:s3:::reports", "prefix": "batchops", "scope": "FailedTasksOnly"},
    "roleArn": "arn:aws:iam::123456789012:role/batch",
}


def request_for(rule: dict[str, object]) -> bytes:
    return parse_rule(rule, 0, "1").request_xml(
        token="tok-1",
        bucket="inv",
        key="a/manifest.json",
        etag='"abc"',
        version_id="v1",
        when=datetime(2026, 11, 24, tzinfo=UTC),
    )


def test_a_copy_job_translates_to_a_valid_s3_create_job() -> None:
    # GIVEN a copy rule S3 can express
    client = boto3.client("s3control", region_name="us-east-1")
    params = to_create_job(parse_create_job(request_for(RULE)), ACCOUNT)
    assert params["Operation"]["S3PutObjectCopy"] == {
        "TargetResource": "arn:aws:s3:::backup-bucket",
        "TargetKeyPrefix": "copies/",
        "AccessControlGrants": [
            {"Grantee": {"TypeIdentifier": "id", "Identifier": "abc123"}, "Permission": "READ"}
        ],
        "MetadataDirective": "REPLACE",
        "NewObjectMetadata": {
            "ContentType": "text/plain",
            "SSEAlgorithm": "AES256",
            "UserMetadata": {"team": "data"},
        },
        "NewObjectTagging": [{"Key": "copied", "Value": "yes"}],
        "UnModifiedSinceConstraint": datetime(2030, 1, 1, tzinfo=UTC),
        "StorageClass": "STANDARD_IA",
    }
    assert params["Manifest"] == {
        "Spec": {"Format": "S3InventoryReport_CSV_20161130"},
        "Location": {"ObjectArn": "arn:aws:s3:::inv/a/manifest.json", "ETag": "abc", "ObjectVersionId": "v1"},
    }
    # WHEN it is submitted THEN botocore accepts every parameter against the service model
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": "s3-job-0001"}, expected_params=params)
        assert S3ControlTarget(client, ACCOUNT).submit("1", request_for(RULE)).job_id == "s3-job-0001"
        stub.assert_no_pending_responses()


def test_a_restore_job_translates() -> None:
    rule = {**RULE, "operation": {"COSInitiateRestoreObject": {"ExpirationInDays": 3, "JobTier": "Bulk"}}}
    params = to_create_job(parse_create_job(request_for(rule)), ACCOUNT)
    assert params["Operation"] == {
        "S3InitiateRestoreObject": {"ExpirationInDays": 3, "GlacierJobTier": "BULK"}
    }
    client = boto3.client("s3control", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": "s3-job-0002"}, expected_params=params)
        S3ControlTarget(client, ACCOUNT).submit("1", request_for(rule))


def test_a_reused_token_with_other_parameters_is_a_duplicate() -> None:
    client = boto3.client("s3control", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("create_job", "IdempotencyException", "token reused", 400)
        assert S3ControlTarget(client, ACCOUNT).submit("1", request_for(RULE)).duplicate


@pytest.mark.parametrize(
    ("operation", "why"),
    [
        ({"COSDeleteObject": {}}, "no delete operation"),
        (
            {
                "COSPutObjectCopy": {
                    "TargetResource": "arn:aws:s3:::b-b",
                    "MetadataDirective": "Add",
                    "NewObjectMetadata": {"ContentType": "x/y"},
                }
            },
            "MetadataDirective Add",
        ),
        (
            {
                "COSPutObjectCopy": {
                    "TargetResource": "arn:aws:s3:::b-b",
                    "PrefixReplace": True,
                    "ResourcesPrefix": "a",
                    "TargetKeyPrefix": "b",
                }
            },
            "PrefixReplace",
        ),
        (
            {"COSPutObjectCopy": {"TargetResource": "arn:aws:s3:::b-b", "AccessControlDirective": "Copy"}},
            "ACL",
        ),
    ],
)
def test_what_s3_cannot_do_is_refused_when_the_rule_loads(operation: dict[str, object], why: str) -> None:
    with pytest.raises(TranslationError, match=why):
        to_create_job(parse_create_job(request_for({**RULE, "operation": operation})), ACCOUNT)
    env = {
        "BATCHOPS_TARGET": "s3control",
        "BATCHOPS_ACCOUNT_ID": ACCOUNT,
        "BATCHOPS_RULES": json.dumps([{**RULE, "operation": operation}]),
    }
    with pytest.raises(SettingsError, match="rule 'copy-to-backup': S3 Batch Operations cannot run it"):
        SubmitSettings.from_env(env)


def test_a_cam_role_cannot_go_to_s3() -> None:
    rule = {**RULE, "roleArn": "qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole"}
    with pytest.raises(TranslationError, match="not an IAM role ARN"):
        to_create_job(parse_create_job(request_for(rule)), ACCOUNT)


def test_s3control_needs_an_account() -> None:
    with pytest.raises(SettingsError, match="BATCHOPS_ACCOUNT_ID"):
        SubmitSettings.from_env({"BATCHOPS_TARGET": "s3control", "BATCHOPS_RULES": json.dumps([RULE])})
