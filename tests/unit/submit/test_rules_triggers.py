"""Rules from the environment and trigger events, at the lowest layer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from batchops.submit.errors import RuleError
from batchops.submit.rules import rules_from_env
from batchops.submit.token import client_request_token
from batchops.submit.triggers import EventError, Ignored, LandedObject, Sweep, parse_event
from tests.conftest import EVENTS

BASE: dict[str, Any] = {
    "name": "r1",
    "match": {"bucket": "inv-bucket", "prefix": "inv/"},
    "operation": {"COSDeleteObject": {}},
    "report": {"bucket": "arn:aws:s3:::reports"},
    "roleArn": "arn:aws:iam::123456789012:role/batch",
}


def load(*rules: dict[str, Any]) -> list[Any]:
    return rules_from_env({"BATCHOPS_RULES": json.dumps(list(rules))}, "1250000000")


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"priority": -1}, "priority", "integer"),
        ({"priority": 2147483648}, "priority", "2147483647"),
        ({"colour": "red"}, "colour", "not a rule field"),
        ({"trigger": "always"}, "trigger", "checksum, manifest.json or csv"),
        ({"description": "{rule} {owner}"}, "description", "may use only"),
        (
            {
                "operation": {
                    "COSPutObjectCopy": {"TargetResource": "arn:aws:s3:::b-1", "StorageClass": "COLD"}
                }
            },
            "operation",
            "StorageClass must be one of",
        ),
        ({"operation": "COSDeleteObject"}, "operation", "COS operation XML"),
        ({"roleArn": "admin"}, "roleArn", "RoleArn 'admin'"),
        ({"report": {"bucket": "reports"}}, "report", "not a resource name"),
        ({"filters": {"sizeGreaterThan": 1}}, "filteredManifest.bucket", "required with filters"),
        ({"name": "bad name"}, "name", "letters, digits"),
    ],
)
def test_a_bad_rule_names_its_field_and_value(change: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(RuleError) as caught:
        load({**BASE, **change})
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_two_rules_may_not_share_a_name() -> None:
    with pytest.raises(RuleError, match="two rules have this name"):
        load(BASE, BASE)


def test_flat_variables_make_the_same_rule_as_json() -> None:
    flat = rules_from_env(
        {
            "BATCHOPS_RULE_NAME": "r1",
            "BATCHOPS_MATCH_BUCKET": "inv-bucket",
            "BATCHOPS_MATCH_PREFIX": "inv/",
            "BATCHOPS_OPERATION": '{"COSDeleteObject": {}}',
            "BATCHOPS_REPORT_BUCKET": "arn:aws:s3:::reports",
            "BATCHOPS_ROLE_ARN": "arn:aws:iam::123456789012:role/batch",
        },
        "1250000000",
    )
    assert flat == load(BASE)


def test_matching_and_the_manifest_a_checksum_stands_for() -> None:
    (rule,) = load(BASE)
    assert rule.matches("inv-bucket", "inv/x/2026-11-24T01-00Z/manifest.checksum")
    assert not rule.matches("inv-bucket", "inv/x/2026-11-24T01-00Z/manifest.json")
    assert not rule.matches("other", "inv/x/manifest.checksum")
    assert rule.manifest_key("inv/x/manifest.checksum") == "inv/x/manifest.json"
    assert rule.describe(
        "inv-bucket", "inv/x/2026-11-24T01-00Z/manifest.json", '"e"', datetime(2020, 1, 1, tzinfo=UTC)
    ) == ("r1: inv-bucket/inv/x/2026-11-24T01-00Z/manifest.json")


def test_the_token_is_stable_and_ignores_etag_quotes() -> None:
    a = client_request_token("b", "k/manifest.json", '"abc"', "r1")
    assert a == client_request_token("b", "k/manifest.json", "abc", "r1")
    assert a != client_request_token("b", "k/manifest.json", "abc", "r2")
    assert len(a) == 36


def test_trigger_shapes() -> None:
    s3 = json.loads((EVENTS / "submit_job" / "s3_manifest_checksum.json").read_text())
    s3["Records"][0]["s3"]["object"]["key"] = "inv/a+b%2Bc/manifest.checksum"
    assert parse_event(s3) == [
        LandedObject(
            "example-inventory-bucket", "inv/a b+c/manifest.checksum", "b21b84d653bb07b05b1e6b33684dc11b"
        )
    ]
    (cos,) = parse_event(json.loads((EVENTS / "submit_job" / "cos_trigger.json").read_text()))  # type: ignore[misc]
    assert (cos.bucket, cos.appid) == ("example-inventory-1250000000", "1250000000")
    assert cos.key.startswith("cos_bucket_inventory/") and cos.key.endswith("manifest.checksum")
    assert parse_event(json.loads((EVENTS / "submit_job" / "scf_timer.json").read_text())) == Sweep()
    assert parse_event(json.loads((EVENTS / "submit_job" / "s3_test_event.json").read_text())) == Ignored(
        "s3:TestEvent"
    )
    with pytest.raises(EventError):
        parse_event({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"match": {"bucket": "inv-bucket", "keyPrefix": "prod/"}}, "match.keyPrefix"),
        ({"report": {"bucket": "arn:aws:s3:::reports", "enabled": "false"}}, "report.enabled"),
        ({"operation": "<COSDeleteObject>"}, "operation"),
        ({"appid": "12 #3"}, "appid"),
        ({"trigger": "csv", "csvFields": ["Name"]}, "csvFields"),
    ],
)
def test_more_bad_rules_are_refused_at_load(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RuleError) as caught:
        load({**BASE, **change})
    assert caught.value.field == field


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_flat_booleans_are_true_or_false(value: str) -> None:
    env = {
        "BATCHOPS_OPERATION": '{"COSDeleteObject": {}}',
        "BATCHOPS_REPORT_BUCKET": "arn:aws:s3:::reports",
        "BATCHOPS_ROLE_ARN": "arn:aws:iam::123456789012:role/batch",
        "BATCHOPS_CONFIRMATION_REQUIRED": value or " ",
    }
    with pytest.raises(RuleError, match="BATCHOPS_CONFIRMATION_REQUIRED"):
        rules_from_env(env, "1")


def test_deletions_and_csv_rules() -> None:
    event = json.loads((EVENTS / "submit_job" / "s3_manifest_checksum.json").read_text())
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert parse_event(event) == Ignored("no object was created")
    (rule,) = load({**BASE, "trigger": "csv"})
    assert rule.matches("inv-bucket", "inv/list.csv")
    assert not rule.matches("inv-bucket", "inv/x/manifest.checksum")


def test_the_description_date_comes_from_the_manifests_folder() -> None:
    (rule,) = load({**BASE, "description": "{date}"})
    when = datetime(2020, 1, 1, tzinfo=UTC)
    cos = "cos_bucket_inventory/1250000000/examplebucket/inventory01/20261124/manifest.json"
    assert rule.describe("b", cos, "e", when) == "2026-11-24"
    assert rule.describe("b", "inv/src/cfg/2026-11-23T01-00Z/manifest.json", "e", when) == "2026-11-23"
    assert rule.describe("b", "inv/manifest.json", "e", when) == "2020-01-01"
