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
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
DEFAULT_SWEEP_MAX_AGE = timedelta(hours=48)
_PLAIN_MD5 = re.compile(r"[0-9a-f]{32}")


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
        sweep_max_age: timedelta = DEFAULT_SWEEP_MAX_AGE,
    ) -> None:
        self._rules = rules
        self._s3 = s3
        self._target = target
        self._clock = clock
        self._sweep_max_age = sweep_max_age

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
        """For each rule and each inventory configuration under its location, submit the newest
        complete inventory landed within the sweep's age (the safety net for lost notifications;
        one already submitted answers as a duplicate; an old one is left alone, even if its job
        was deleted since)."""
        outcomes: list[Outcome] = []
        for rule in self._rules:
            if rule.bucket is None or rule.trigger != "checksum":
                continue
            try:
                newest = self._newest_checksums(rule)
                outcomes.extend(self._submit(rule, LandedObject(rule.bucket, key)) for key in newest)
            except (ClientError, BotoCoreError, RuntimeError) as exc:
                log.warning("rule %s: sweep failed: %s", rule.name, exc)
                outcomes.append(Skipped(f"s3://{rule.bucket}/{rule.prefix}", f"sweep failed: {exc}"))
        return outcomes

    def _newest_checksums(self, rule: Rule) -> list[str]:
        """The newest recent manifest.checksum of each inventory configuration (the folder that
        holds the dated folders)."""
        assert rule.bucket is not None
        oldest = self._clock() - self._sweep_max_age
        newest: dict[str, tuple[datetime, str]] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=rule.bucket, Prefix=rule.prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if not rule.matches(rule.bucket, key) or item["LastModified"] < oldest:
                    continue
                config = key.rsplit("/", 2)[0] if key.count("/") >= 2 else ""
                # Ties in LastModified (one-second resolution) go to the later key: inventory keys
                # carry their date.
                if config not in newest or (item["LastModified"], key) > newest[config]:
                    newest[config] = (item["LastModified"], key)
        return [key for _, key in newest.values()]

    def _submit(self, rule: Rule, landed: LandedObject) -> Outcome:
        manifest_key = rule.manifest_key(landed.key)
        try:
            head = self._s3.head_object(Bucket=landed.bucket, Key=manifest_key)
            etag, version_id = head["ETag"], head.get("VersionId")
            if landed.key.endswith(CHECKSUM) and not self._checksum_matches(landed, manifest_key, etag):
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
            landed_key=manifest_key,
        )
        # The rule's appid, always: an event and a sweep of one manifest must make the same token.
        result = self._target.submit(rule.appid, request)
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

    def _checksum_matches(self, landed: LandedObject, manifest_key: str, manifest_etag: str) -> bool:
        body = self._s3.get_object(Bucket=landed.bucket, Key=landed.key)["Body"].read(1024)
        expected = body.decode("ascii", errors="replace").split()[0].lower() if body.strip() else ""
        etag = normalize_etag(manifest_etag).strip('"').lower()
        if etag == expected:
            return True
        if _PLAIN_MD5.fullmatch(etag):
            return False
        # A multipart or SSE-KMS ETag is not the MD5: read manifest.json and compute it.
        data = read_small_object(self._s3, landed.bucket, manifest_key, manifest_etag, None)
        return hashlib.md5(data).hexdigest() == expected  # noqa: S324 - the checksum is an MD5

    def _filtered(self, rule: Rule, bucket: str, key: str, etag: str) -> tuple[str, str, str, str | None]:
        assert rule.filters is not None and rule.filtered_bucket is not None
        inventory = parse_inventory_manifest(read_small_object(self._s3, bucket, key, etag, None))
        records = iter_inventory_records(
            inventory, inventory_file_opener(self._s3, inventory.destination_bucket)
        )
        digest = hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()[:16]
        target_key = f"{rule.filtered_prefix.rstrip('/')}/{rule.name}/{digest}.csv".lstrip("/")
        try:
            # Written already (a redelivered event, a sweep): its job is pinned to this ETag.
            head = self._s3.head_object(Bucket=rule.filtered_bucket, Key=target_key)
            return rule.filtered_bucket, target_key, head["ETag"], head.get("VersionId")
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise
        written = write_filtered_manifest(
            self._s3, records, matcher(rule.filters, self._clock()), rule.filtered_bucket, target_key
        )
        return written.bucket, written.key, written.etag, written.version_id
