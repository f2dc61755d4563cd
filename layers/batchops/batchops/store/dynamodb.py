"""DynamoDB job store: the deployed store (table from `JOBS_TABLE`).

Key design (one table, string keys ``pk``/``sk``, one global secondary index):

=====================================  ========  ==========================================
pk                                     sk        holds
=====================================  ========  ==========================================
``JOB#<job_id>``                       ``JOB``   the job: indexed fields, ``version``, ``body``
``TOKEN#<appid>#<ClientRequestToken>`` ``TOKEN`` ``job_id``: the claim on the token
``APPID#<appid>``                      ``ACTIVE`` ``active``: how many of the appid's jobs are not terminal
=====================================  ========  ==========================================

Index ``ByAppid`` (``gsi1pk`` = ``APPID#<appid>``, ``gsi1sk`` = ``<creation time>#<job_id>``,
projection ALL) serves ListJobs newest first. Jobs are keyed by their own id so that the job
items spread over partitions; only CreateJob and terminal transitions touch the per-appid counter.

Retention: when a job becomes terminal its item and its token get ``expires_at`` (epoch seconds,
the table's TTL attribute) ``retention_days`` later, 90 by default as in S3 Batch Operations;
DynamoDB then deletes both. Until then the token keeps refusing a second job. DeleteJob removes
the job, then the token's claim if the job still holds it; a claim left behind by a job that is
gone (TTL removed the job first, or a delete stopped halfway) is released by the next CreateJob
that meets it.

Atomicity: CreateJob is one transaction {put token if absent, put job if absent, add 1 to the
counter if below the limit}; a change of status is a put conditioned on ``version``, in the same
transaction as the counter change when the job becomes terminal. Appids and tokens may not hold
``#`` ambiguity: appids are restricted by the API to ``[A-Za-z0-9_-]``, and the token is last.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from batchops.store.base import (
    ActiveLimitReachedError,
    DuplicateTokenError,
    JobPage,
    JobRecord,
    StoreUnavailableError,
    UnknownJobError,
    VersionConflictError,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

INDEX_BY_APPID = "ByAppid"
INDEX_OPEN = "Open"
OPEN_SHARDS = 4
TTL_ATTRIBUTE = "expires_at"
DEFAULT_RETENTION_DAYS = 90
MAX_TRANSACTION_ATTEMPTS = 4
# Errors that mean "the store is not answering", as opposed to a bug in our request.
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "AccessDeniedException",
        "LimitExceededException",
        # botocore retries a transaction with the same ClientRequestToken; these answers mean
        # the first attempt's fate is not known yet.
        "TransactionInProgressException",
        "IdempotentParameterMismatchException",
    }
)
Item = dict[str, Any]


class DynamoDBJobStore:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._client = client
        self._retention_seconds = retention_days * 86_400
        self._clock = clock

    def insert_job(self, record: JobRecord, max_active: int) -> None:
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _token_item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._job_item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": _counter_key(record.appid),
                    "UpdateExpression": "ADD active :one",
                    "ConditionExpression": "attribute_not_exists(active) OR active < :limit",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(max_active)}},
                }
            },
        ]
        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            reasons = self._transact(actions)
            if reasons is None:
                return
            if reasons[0] == "ConditionalCheckFailed":
                existing = self._get(_token_key(record.appid, record.client_request_token))
                holder = existing.get("job_id", {}).get("S") if existing else None
                if holder and self._live(self._get(_job_key(holder))):
                    raise DuplicateTokenError(holder)
                # A claim outliving its job (TTL deleted the job first, or a delete stopped halfway):
                # release it and try again.
                if holder:
                    self._release_token(record.appid, record.client_request_token, holder)
                continue
            if reasons[2] == "ConditionalCheckFailed":
                raise ActiveLimitReachedError(max_active)
            if reasons[1] == "ConditionalCheckFailed":
                raise StoreUnavailableError(f"job id {record.job_id} already exists")
        raise StoreUnavailableError("CreateJob transaction kept conflicting")

    def get_job(self, appid: str, job_id: str, consistent: bool = True) -> JobRecord | None:
        item = self._get(_job_key(job_id), consistent)
        if not self._live(item) or item is None or item["appid"]["S"] != appid:
            return None
        return _record(item)

    def list_jobs(
        self, appid: str, statuses: frozenset[str] | None, limit: int, after_job_id: str | None
    ) -> JobPage:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": INDEX_BY_APPID,
            "KeyConditionExpression": "gsi1pk = :appid",
            "ExpressionAttributeValues": {":appid": {"S": _appid_key(appid)}},
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if statuses is not None:
            names = [f":s{i}" for i in range(len(statuses))]
            query["FilterExpression"] = f"#status IN ({', '.join(names)})"
            query["ExpressionAttributeNames"] = {"#status": "status"}
            query["ExpressionAttributeValues"].update(
                {name: {"S": status} for name, status in zip(names, sorted(statuses), strict=True)}
            )
        if after_job_id is not None:
            after = self.get_job(appid, after_job_id)
            if after is None:
                raise UnknownJobError(after_job_id)
            query["ExclusiveStartKey"] = {
                k: v for k, v in self._job_item(after).items() if k in ("pk", "sk", "gsi1pk", "gsi1sk")
            }
        found: list[JobRecord] = []
        with unavailable_on_error():
            while len(found) <= limit:
                page = self._client.query(**query)
                found.extend(_record(item) for item in page.get("Items", []) if self._live(item))
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        records = found[:limit]
        more = len(found) > limit
        return JobPage(records=records, next_after_job_id=records[-1].job_id if more and records else None)

    def replace_job(self, old: JobRecord, new: JobRecord) -> None:
        put: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._table,
                "Item": self._job_item(new),
                "ConditionExpression": "version = :version",
                "ExpressionAttributeValues": {":version": {"N": str(old.version)}},
            }
        }
        actions = [put]
        if old.active != new.active:
            actions.append(self._count(old.appid, +1 if new.active else -1))
        if old.active and not new.active:
            actions.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _token_key(new.appid, new.client_request_token),
                        "UpdateExpression": (
                            f"SET {TTL_ATTRIBUTE} = :expires, job_id = if_not_exists(job_id, :job)"
                        ),
                        "ExpressionAttributeValues": {
                            ":expires": {"N": str(self._expiry())},
                            ":job": {"S": new.job_id},
                        },
                    }
                }
            )
        reasons = self._transact(actions)
        if reasons is not None:
            raise VersionConflictError(old.job_id)

    def delete_job(self, record: JobRecord) -> None:
        actions: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _job_key(record.job_id),
                    "ConditionExpression": "version = :version",
                    "ExpressionAttributeValues": {":version": {"N": str(record.version)}},
                }
            },
        ]
        if record.active:
            actions.append(self._count(record.appid, -1))
        if self._transact(actions) is not None:
            raise VersionConflictError(record.job_id)
        self._release_token(record.appid, record.client_request_token, record.job_id)

    def close(self) -> None:
        self._client.close()

    def _release_token(self, appid: str, token: str, job_id: str) -> None:
        """Delete the token's claim if ``job_id`` still holds it (never another job's claim)."""
        try:
            with unavailable_on_error():
                self._client.delete_item(
                    TableName=self._table,
                    Key=_token_key(appid, token),
                    ConditionExpression="job_id = :job",
                    ExpressionAttributeValues={":job": {"S": job_id}},
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _live(self, item: Mapping[str, Any] | None) -> bool:
        """False for a missing item, and for one past its TTL that DynamoDB has not removed yet."""
        if item is None:
            return False
        expires = item.get(TTL_ATTRIBUTE)
        return expires is None or int(expires["N"]) > self._clock()

    def _job_item(self, record: JobRecord) -> Item:
        item = _job_item(record)
        if record.active:
            # The sparse "Open" index lists the jobs that have not ended, by when they last changed.
            changed = datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds")
            item["gsi2pk"] = {"S": f"OPEN#{_open_shard(record.job_id)}"}
            item["gsi2sk"] = {"S": f"{changed}#{record.job_id}"}
        else:
            item[TTL_ATTRIBUTE] = {"N": str(self._expiry())}
        return item

    def open_jobs(self, changed_before: float, limit: int = 1000) -> list[JobRecord]:
        """Jobs that have not ended and have not changed since ``changed_before`` (epoch seconds),
        of every appid (the deployed sweeper's view)."""
        before = datetime.fromtimestamp(changed_before, UTC).isoformat(timespec="milliseconds")
        found: list[JobRecord] = []
        for shard in range(OPEN_SHARDS):
            query: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": INDEX_OPEN,
                "KeyConditionExpression": "gsi2pk = :shard AND gsi2sk < :before",
                "ExpressionAttributeValues": {":shard": {"S": f"OPEN#{shard}"}, ":before": {"S": before}},
            }
            while len(found) < limit:
                with unavailable_on_error():
                    page = self._client.query(**query)
                found.extend(_record(item) for item in page.get("Items", []) if self._live(item))
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def _expiry(self) -> int:
        return int(self._clock()) + self._retention_seconds

    def _count(self, appid: str, delta: int) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self._table,
                "Key": _counter_key(appid),
                "UpdateExpression": "ADD active :delta",
                "ExpressionAttributeValues": {":delta": {"N": str(delta)}},
            }
        }

    def _get(self, key: Item, consistent: bool = True) -> Item | None:
        with unavailable_on_error():
            response = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=consistent)
        return response.get("Item")

    def _transact(self, actions: list[TransactWriteItemTypeDef]) -> list[str] | None:
        """Run a transaction; None if it committed, else the cancellation code of each action.

        A TransactionConflict (another transaction on the same items) is retried here; a failed
        condition is the caller's to interpret.
        """
        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            try:
                with unavailable_on_error():
                    self._client.transact_write_items(TransactItems=actions)
                return None
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [
                    str(reason.get("Code", "None")) for reason in exc.response.get("CancellationReasons", [])
                ]
                if "TransactionConflict" in reasons:
                    continue
                return reasons + ["None"] * (len(actions) - len(reasons))
        raise StoreUnavailableError("transaction kept conflicting")


@contextmanager
def unavailable_on_error() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise StoreUnavailableError(f"DynamoDB job store: {code or status}") from exc
        raise
    except BotoCoreError as exc:
        raise StoreUnavailableError(f"DynamoDB job store: {exc}") from exc


def _open_shard(job_id: str) -> int:
    return int(hashlib.sha1(job_id.encode()).hexdigest()[:4], 16) % OPEN_SHARDS  # noqa: S324 - a shard, not secrecy


def _job_key(job_id: str) -> Item:
    return {"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}}


def _token_key(appid: str, token: str) -> Item:
    return {"pk": {"S": f"TOKEN#{appid}#{token}"}, "sk": {"S": "TOKEN"}}


def _counter_key(appid: str) -> Item:
    return {"pk": {"S": _appid_key(appid)}, "sk": {"S": "ACTIVE"}}


def _appid_key(appid: str) -> str:
    return f"APPID#{appid}"


def _token_item(record: JobRecord) -> Item:
    return {**_token_key(record.appid, record.client_request_token), "job_id": {"S": record.job_id}}


def _job_item(record: JobRecord) -> Item:
    created = record.creation_time.isoformat(timespec="milliseconds")
    return {
        **_job_key(record.job_id),
        "gsi1pk": {"S": _appid_key(record.appid)},
        "gsi1sk": {"S": f"{created}#{record.job_id}"},
        "appid": {"S": record.appid},
        "job_id": {"S": record.job_id},
        "client_request_token": {"S": record.client_request_token},
        "status": {"S": record.status},
        "priority": {"N": str(record.priority)},
        "creation_time": {"S": created},
        "active": {"BOOL": record.active},
        "version": {"N": str(record.version)},
        "body": {"S": record.body},
    }


def _record(item: Mapping[str, Any]) -> JobRecord:
    return JobRecord(
        appid=item["appid"]["S"],
        job_id=item["job_id"]["S"],
        client_request_token=item["client_request_token"]["S"],
        status=item["status"]["S"],
        priority=int(item["priority"]["N"]),
        creation_time=datetime.fromisoformat(item["creation_time"]["S"]),
        active=bool(item["active"]["BOOL"]),
        version=int(item["version"]["N"]),
        body=item["body"]["S"],
    )
