"""Submit rules: which landed manifests make which jobs. Read from the environment once.

``BATCHOPS_RULES`` holds a JSON list of rules (or ``{"rules": [...]}``); without it, the flat
``BATCHOPS_*`` variables describe one rule (see README, "Submit rules"). A rule is checked at
cold start by building its CreateJob request with sample values and parsing it with the very
parser the jobs API uses, so a rule that loads makes requests the API accepts; an error names
the rule, the field and the value.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from lxml import etree

from batchops.api.create_job import parse_create_job
from batchops.api.errors import ApiError
from batchops.api.xml_safe import UnsafeXmlError, parse_untrusted
from batchops.jobs.model import JobSpec
from batchops.submit.errors import RuleError
from batchops.submit.filters import ObjectFilters, parse_filters

Trigger = Literal["checksum", "manifest.json", "csv"]
CHECKSUM = "manifest.checksum"
MANIFEST = "manifest.json"
INVENTORY_FORMAT = "COSInventoryReport_CSV_V1"
CSV_FORMAT = "COSBatchOperations_CSV_V1"
DESCRIPTION_FIELDS = ("rule", "bucket", "key", "date", "etag")
# Which element each list in a JSON operation repeats, as the COS request names them.
_LIST_ITEMS = {"AccessControlGrants": "COSGrant", "UserMetadata": "member", "NewObjectTagging": "COSTag"}
_RULE_KEYS = frozenset(
    {
        "name",
        "match",
        "trigger",
        "csvFields",
        "appid",
        "operation",
        "priority",
        "confirmationRequired",
        "description",
        "report",
        "roleArn",
        "filters",
        "filteredManifest",
    }
)
_DATE_IN_KEY = re.compile(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})")


@dataclass(frozen=True)
class Rule:
    name: str
    appid: str
    bucket: str | None
    prefix: str
    suffix: str | None
    glob: str | None
    trigger: Trigger
    csv_fields: tuple[str, ...]
    operation_xml: str
    priority: int
    confirmation_required: bool
    description: str
    report: Mapping[str, Any]
    role_arn: str
    filters: ObjectFilters | None
    filtered_bucket: str | None
    filtered_prefix: str

    def matches(self, bucket: str, key: str) -> bool:
        landed = {"checksum": CHECKSUM, "manifest.json": MANIFEST, "csv": ".csv"}[self.trigger]
        return (
            (self.bucket is None or bucket == self.bucket)
            and key.startswith(self.prefix)
            and (self.suffix is None or key.endswith(self.suffix))
            and (self.glob is None or fnmatch.fnmatchcase(key, self.glob))
            and key.endswith(landed)
        )

    def manifest_key(self, key: str) -> str:
        """The object the job reads, for the key that landed."""
        return key[: -len(CHECKSUM)] + MANIFEST if self.trigger == "checksum" else key

    def request_xml(
        self,
        *,
        token: str,
        bucket: str,
        key: str,
        etag: str,
        version_id: str | None,
        when: datetime,
        landed_key: str | None = None,
    ) -> bytes:
        """The CreateJobRequest this rule makes for the manifest object ``bucket/key`` (a filtered
        manifest's description still names the inventory that landed, ``landed_key``)."""
        csv = self.trigger == "csv" or self.filters is not None
        root = etree.Element("CreateJobRequest")
        _text(root, "ClientRequestToken", token)
        _text(root, "ConfirmationRequired", "true" if self.confirmation_required else "false")
        _text(root, "Description", _truncate(self.describe(bucket, landed_key or key, etag, when), 256))
        manifest = etree.SubElement(root, "Manifest")
        location = etree.SubElement(manifest, "Location")
        _text(location, "ETag", etag)
        _text(location, "ObjectArn", f"arn:aws:s3:::{bucket}/{key}")
        if version_id:
            _text(location, "ObjectVersionId", version_id)
        spec = etree.SubElement(manifest, "Spec")
        if csv:
            fields = etree.SubElement(spec, "Fields")
            for name in self.csv_fields if self.filters is None else ("Bucket", "Key", "VersionId"):
                _text(fields, "member", name)
        _text(spec, "Format", CSV_FORMAT if csv else INVENTORY_FORMAT)
        operation = etree.SubElement(root, "Operation")
        operation.append(etree.fromstring(self.operation_xml))
        _text(root, "Priority", str(self.priority))
        report = etree.SubElement(root, "Report")
        for name in ("Bucket", "Enabled", "Format", "Prefix", "ReportScope"):
            value = self.report.get(name)
            if value is not None:
                _text(report, name, str(value))
        _text(root, "RoleArn", self.role_arn)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def describe(self, bucket: str, key: str, etag: str, when: datetime) -> str:
        # The inventory's date is the name of its manifest's folder (2026-11-24T01-00Z, 20261124).
        folder = key.rsplit("/", 2)[-2] if key.count("/") >= 1 else ""
        found = _DATE_IN_KEY.match(folder)
        date = f"{found[1]}-{found[2]}-{found[3]}" if found else when.strftime("%Y-%m-%d")
        return self.description.format(
            rule=self.name, bucket=bucket, key=key, date=date, etag=etag.strip('"')
        )

    def spec_for(self, **request: Any) -> JobSpec:
        return parse_create_job(self.request_xml(**request))

    def sample_spec(self) -> JobSpec:
        """The job this rule makes for a sample manifest (to check a rule before any lands)."""
        return self.spec_for(
            token="00000000-0000-5000-8000-000000000000",  # noqa: S106 - a sample request token
            bucket="sample-bucket",
            key="sample/manifest.json",
            etag='"0123456789abcdef0123456789abcdef"',
            version_id=None,
            when=datetime(2026, 1, 1, tzinfo=UTC),
        )


def rules_from_env(env: Mapping[str, str], default_appid: str) -> list[Rule]:
    """Every rule the environment configures, checked. Raises RuleError."""
    raw = env.get("BATCHOPS_RULES", "").strip()
    if raw:
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RuleError("*", "BATCHOPS_RULES", raw[:80], f"not JSON: {exc.msg}") from exc
        items = document.get("rules") if isinstance(document, dict) else document
        if not isinstance(items, list) or not items:
            raise RuleError("*", "BATCHOPS_RULES", raw[:80], "must be a non-empty list of rules")
    elif env.get("BATCHOPS_OPERATION"):
        items = [_flat_rule(env)]
    else:
        return []
    rules = [parse_rule(item, n, default_appid) for n, item in enumerate(items)]
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise RuleError(
                name, "name", name, "two rules have this name (a rule's name is part of its tokens)"
            )
    return rules


def parse_rule(item: object, position: int, default_appid: str) -> Rule:
    if not isinstance(item, Mapping):
        raise RuleError(f"#{position}", "rule", item, "must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise RuleError(f"#{position}", "name", name, "must be 1-64 letters, digits, '.', '-' or '_'")
    unknown = set(item) - _RULE_KEYS
    if unknown:
        raise RuleError(name, sorted(unknown)[0], item[sorted(unknown)[0]], "is not a rule field")
    match = _mapping(name, "match", item.get("match", {}), {"bucket", "prefix", "suffix", "glob"})
    trigger = item.get("trigger", "checksum")
    if trigger not in ("checksum", "manifest.json", "csv"):
        raise RuleError(name, "trigger", trigger, "must be checksum, manifest.json or csv")
    report = _mapping(name, "report", item.get("report"), {"bucket", "prefix", "scope", "format", "enabled"})
    filters = parse_filters(name, _mapping(name, "filters", item["filters"])) if "filters" in item else None
    if filters is not None and filters.is_empty:
        filters = None  # "filters": {} keeps everything: the job reads the inventory itself
    filtered = _mapping(name, "filteredManifest", item.get("filteredManifest", {}), {"bucket", "prefix"})
    appid = str(item.get("appid") or default_appid)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", appid):
        raise RuleError(name, "appid", appid, "must be 1-64 letters, digits, '-' or '_'")
    if filters is not None and not filtered.get("bucket"):
        raise RuleError(name, "filteredManifest.bucket", filtered.get("bucket"), "is required with filters")
    rule = Rule(
        name=name,
        appid=appid,
        bucket=_optional_str(name, "match.bucket", match.get("bucket")),
        prefix=_optional_str(name, "match.prefix", match.get("prefix")) or "",
        suffix=_optional_str(name, "match.suffix", match.get("suffix")),
        glob=_optional_str(name, "match.glob", match.get("glob")),
        trigger=trigger,
        csv_fields=tuple(_str_list(name, "csvFields", item.get("csvFields", ["Bucket", "Key"]))),
        operation_xml=_operation_xml(name, item.get("operation")),
        priority=_int(name, "priority", item.get("priority", 10)),
        confirmation_required=_bool(name, "confirmationRequired", item.get("confirmationRequired", False)),
        description=_description(name, item.get("description", "{rule}: {bucket}/{key}")),
        report={
            "Bucket": report.get("bucket"),
            "Enabled": "true" if _bool(name, "report.enabled", report.get("enabled", True)) else "false",
            "Format": report.get("format", "Report_CSV_V1"),
            "Prefix": report.get("prefix"),
            "ReportScope": report.get("scope", "AllTasks"),
        },
        role_arn=str(item.get("roleArn", "")),
        filters=filters,
        filtered_bucket=_optional_str(name, "filteredManifest.bucket", filtered.get("bucket")),
        filtered_prefix=_optional_str(name, "filteredManifest.prefix", filtered.get("prefix"))
        or "batchops/manifests/",
    )
    _check_request(rule)
    return rule


def _check_request(rule: Rule) -> None:
    """Build a request with sample values and parse it as the API would."""
    try:
        rule.sample_spec()
    except ApiError as exc:
        field = next(
            (
                f
                for f in ("Operation", "Report", "RoleArn", "Priority", "Description", "Manifest")
                if f in exc.message
            ),
            "rule",
        )
        if field == "Manifest":
            raise RuleError(rule.name, "csvFields", list(rule.csv_fields), exc.message) from exc
        value = {
            "Operation": rule.operation_xml,
            "Report": dict(rule.report),
            "RoleArn": rule.role_arn,
            "Priority": rule.priority,
            "Description": rule.description,
        }.get(field, "")
        raise RuleError(rule.name, field[0].lower() + field[1:], value, exc.message) from exc


def _operation_xml(rule: str, value: object) -> str:
    if isinstance(value, str) and value.strip().startswith("<"):
        try:
            parse_untrusted(value.strip().encode())
        except (UnsafeXmlError, ValueError) as exc:
            raise RuleError(rule, "operation", value, f"is not well-formed XML ({exc})") from exc
        return value.strip()
    if isinstance(value, Mapping) and len(value) == 1:
        ((name, body),) = value.items()
        element = etree.Element(str(name))
        _fill(element, body)
        return etree.tostring(element).decode()
    raise RuleError(rule, "operation", value, 'must be COS operation XML or {"<COSOperation>": {...}}')


def _fill(element: etree._Element, value: object) -> None:
    if isinstance(value, Mapping):
        for name, child in value.items():
            _fill(etree.SubElement(element, str(name)), child)
    elif isinstance(value, list):
        item_name = _LIST_ITEMS.get(str(element.tag), "member")
        for child in value:
            _fill(etree.SubElement(element, item_name), child)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def _flat_rule(env: Mapping[str, str]) -> dict[str, Any]:
    """One rule from flat BATCHOPS_* variables."""

    def get(name: str) -> str | None:
        value = env.get(f"BATCHOPS_{name}")
        return value if value not in (None, "") else None

    raw_operation = get("OPERATION") or ""
    operation: object = raw_operation
    if raw_operation.strip().startswith("{"):
        try:
            operation = json.loads(raw_operation)
        except json.JSONDecodeError as exc:
            raise RuleError(
                "default", "BATCHOPS_OPERATION", raw_operation[:80], f"not JSON: {exc.msg}"
            ) from exc
    rule: dict[str, Any] = {
        "name": get("RULE_NAME") or "default",
        "match": {
            k: v
            for k, v in (
                ("bucket", get("MATCH_BUCKET")),
                ("prefix", get("MATCH_PREFIX")),
                ("suffix", get("MATCH_SUFFIX")),
                ("glob", get("MATCH_GLOB")),
            )
            if v
        },
        "trigger": get("TRIGGER") or "checksum",
        "operation": operation,
        "priority": get("PRIORITY") or 10,
        "confirmationRequired": _flat_bool(
            "BATCHOPS_CONFIRMATION_REQUIRED", get("CONFIRMATION_REQUIRED") or "false"
        ),
        "report": {
            k: v
            for k, v in (
                ("bucket", get("REPORT_BUCKET")),
                ("prefix", get("REPORT_PREFIX")),
                ("scope", get("REPORT_SCOPE")),
            )
            if v
        },
        "roleArn": get("ROLE_ARN") or "",
    }
    if get("REPORT_ENABLED"):
        rule["report"]["enabled"] = _flat_bool("BATCHOPS_REPORT_ENABLED", get("REPORT_ENABLED") or "")
    if get("CSV_FIELDS"):
        rule["csvFields"] = [f.strip() for f in (get("CSV_FIELDS") or "").split(",")]
    if get("DESCRIPTION"):
        rule["description"] = get("DESCRIPTION")
    if get("FILTERS"):
        try:
            rule["filters"] = json.loads(get("FILTERS") or "")
        except json.JSONDecodeError as exc:
            raise RuleError(rule["name"], "BATCHOPS_FILTERS", get("FILTERS"), f"not JSON: {exc.msg}") from exc
        rule["filteredManifest"] = {
            k: v
            for k, v in (
                ("bucket", get("FILTERED_MANIFEST_BUCKET")),
                ("prefix", get("FILTERED_MANIFEST_PREFIX")),
            )
            if v
        }
    return rule


def _flat_bool(variable: str, value: str) -> bool:
    if value.strip().lower() not in ("true", "false"):
        raise RuleError("default", variable, value, "must be true or false")
    return value.strip().lower() == "true"


def _mapping(rule: str, field: str, value: object, allowed: set[str] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleError(rule, field, value, "must be an object")
    for key in value:
        if allowed is not None and key not in allowed:
            raise RuleError(rule, f"{field}.{key}", value[key], f"is not a field of {field}")
    return value


def _optional_str(rule: str, field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RuleError(rule, field, value, "must be a string")
    return value


def _str_list(rule: str, field: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(rule, field, value, "must be a list of strings")
    return list(value)


def _int(rule: str, field: str, value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not re.fullmatch(r"[0-9]{1,10}", str(value))
    ):
        raise RuleError(rule, field, value, "must be an integer from 0 to 2147483647")
    return int(value)


def _bool(rule: str, field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise RuleError(rule, field, value, "must be true or false")
    return value


def _description(rule: str, value: object) -> str:
    if not isinstance(value, str):
        raise RuleError(rule, "description", value, "must be a string")
    try:
        value.format(**dict.fromkeys(DESCRIPTION_FIELDS, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        fields = ", ".join("{" + name + "}" for name in DESCRIPTION_FIELDS)
        raise RuleError(rule, "description", value, f"may use only {fields} ({exc})") from exc
    return value


def _text(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, name).text = text


def _truncate(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    return text if len(encoded) <= max_bytes else encoded[:max_bytes].decode(errors="ignore")
