"""Submit a landed manifest: one CreateJob per matching rule, each with its own token.

An inventory counts as complete when its ``manifest.checksum`` lands: then ``manifest.json``'s
ETag (read with HEAD) must equal the MD5 the checksum file holds, or the inventory is skipped as
not (yet) consistent. A rule with object filters first streams the inventory and writes the
kept objects as a CSV manifest; the job then runs on that manifest. Submitting again is always
safe: the token is a function of (bucket, key, ETag, rule), and the service answers a token it
has seen with the job it made.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from batchops.manifest.inventory import iter_inventory_records, parse_inventory_manifest
from batchops.manifest.source import inventory_file_opener, normalize_etag, read_small_object
from batchops.submit.filtered_manifest import write_filtered_manifest
from batchops.submit.filters import matcher
from batchops.submit.rules import CHECKSUM, Rule
from batchops.submit.targets import Target
from batchops.submit.token import client_request_token
from batchops.submit.triggers import Ignored, LandedObject, Sweep, Trigger

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    rule: str
    manifest: str
    token: str
    job_id: str
    duplicate: bool


@dataclass(frozen=True)
class Skipped:
    key: str
    reason: str


Outcome = Submission | Skipped


class Submitter:
    def __init__(
        self,
        rules: Sequence[Rule],
        s3: S3Client,
        target: Target,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._rules = rules
        self._s3 = s3
        self._target = target
        self._clock = clock

    def handle(self, trigger: Trigger) -> list[Outcome]:
        if isinstance(trigger, Ignored):
            return [Skipped("", trigger.reason)]
        if isinstance(trigger, Sweep):
            return self.sweep()
        return [outcome for landed in trigger for outcome in self.submit(landed)]

    def submit(self, landed: LandedObject) -> list[Outcome]:
        rules = [rule for rule in self._rules if rule.matches(landed.bucket, landed.key)]
        if not rules:
            return [Skipped(landed.key, "no rule matches this key")]
        return [self._submit(rule, landed) for rule in rules]

    def sweep(self) -> list[Outcome]:
        """For each rule, submit the newest complete inventory under its location (the safety net
        for lost notifications; submissions already made answer as duplicates)."""
        outcomes: list[Outcome] = []
        for rule in self._rules:
            if rule.bucket is None or rule.trigger != "checksum":
                continue
            newest = self._newest_checksum(rule)
            if newest is not None:
                outcomes.append(self._submit(rule, LandedObject(rule.bucket, newest, appid=rule.appid)))
        return outcomes

    def _newest_checksum(self, rule: Rule) -> str | None:
        assert rule.bucket is not None
        newest: tuple[datetime, str] | None = None
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=rule.bucket, Prefix=rule.prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                # Ties in LastModified (one-second resolution) go to the later key: inventory keys
                # carry their date.
                if rule.matches(rule.bucket, key) and (
                    newest is None or (item["LastModified"], key) > newest
                ):
                    newest = (item["LastModified"], key)
        return None if newest is None else newest[1]

    def _submit(self, rule: Rule, landed: LandedObject) -> Outcome:
        manifest_key = rule.manifest_key(landed.key)
        try:
            head = self._s3.head_object(Bucket=landed.bucket, Key=manifest_key)
            etag, version_id = head["ETag"], head.get("VersionId")
            if landed.key.endswith(CHECKSUM) and not self._checksum_matches(landed, etag):
                return Skipped(landed.key, f"{manifest_key} does not match {CHECKSUM} (not complete yet?)")
            job_version: str | None = version_id
            job_bucket, job_key, job_etag = landed.bucket, manifest_key, etag
            if rule.filters is not None:
                job_bucket, job_key, job_etag, job_version = self._filtered(
                    rule, landed.bucket, manifest_key, etag
                )
        except (ClientError, BotoCoreError) as exc:
            raise RuntimeError(
                f"rule {rule.name}: cannot read s3://{landed.bucket}/{manifest_key}: {exc}"
            ) from exc
        # The token names the manifest that landed, so a filtered manifest written twice makes one job.
        token = client_request_token(landed.bucket, manifest_key, etag, rule.name)
        request = rule.request_xml(
            token=token,
            bucket=job_bucket,
            key=job_key,
            etag=job_etag,
            version_id=job_version,
            when=self._clock(),
        )
        result = self._target.submit(landed.appid or rule.appid, request)
        log.info(
            "rule %s: %s job %s for s3://%s/%s (token %s)",
            rule.name,
            "already made" if result.duplicate else "created",
            result.job_id,
            landed.bucket,
            manifest_key,
            token,
        )
        return Submission(
            rule.name, f"{landed.bucket}/{manifest_key}", token, result.job_id, result.duplicate
        )

    def _checksum_matches(self, landed: LandedObject, manifest_etag: str) -> bool:
        body = self._s3.get_object(Bucket=landed.bucket, Key=landed.key)["Body"].read(1024)
        expected = body.decode("ascii", errors="replace").split()[0] if body.strip() else ""
        return normalize_etag(manifest_etag).strip('"').lower() == expected.lower()

    def _filtered(self, rule: Rule, bucket: str, key: str, etag: str) -> tuple[str, str, str, str | None]:
        assert rule.filters is not None and rule.filtered_bucket is not None
        inventory = parse_inventory_manifest(read_small_object(self._s3, bucket, key, etag, None))
        records = iter_inventory_records(
            inventory, inventory_file_opener(self._s3, inventory.destination_bucket)
        )
        digest = hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()[:16]
        target_key = f"{rule.filtered_prefix.rstrip('/')}/{rule.name}/{digest}.csv".lstrip("/")
        written = write_filtered_manifest(
            self._s3, records, matcher(rule.filters, self._clock()), rule.filtered_bucket, target_key
        )
        return written.bucket, written.key, written.etag, written.version_id
