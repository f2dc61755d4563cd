"""What only the DynamoDB store does: its key layout, the active counter, and retention by TTL."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

from batchops.store.base import PrepareCheckpoint
from batchops.store.dynamodb import DEFAULT_RETENTION_DAYS, TTL_ATTRIBUTE, DynamoDBJobStore
from batchops.store.dynamodb_ledger import LEDGER_SHARDS, DynamoDBLedger
from tests.conftest import template
from tests.contract.test_chunk_ledger import chunks, segment
from tests.contract.test_job_store import APPID, record
from tests.faults import count_only, inject

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

NOW = 1_795_000_000


def item(client: DynamoDBClient, table: str, pk: str, sk: str) -> dict[str, object]:
    found = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
    assert found is not None, pk
    return dict(found)


def test_terminal_jobs_and_their_tokens_expire_after_the_retention(
    dynamodb: DynamoDBClient, jobs_table: str
) -> None:
    # GIVEN a job in the DynamoDB store
    store = DynamoDBJobStore(jobs_table, dynamodb, clock=lambda: NOW)
    job = record(1, token="tok")
    store.insert_job(job, max_active=10)
    assert TTL_ATTRIBUTE not in item(dynamodb, jobs_table, "JOB#job-0001", "JOB")
    assert item(dynamodb, jobs_table, f"APPID#{APPID}", "ACTIVE")["active"] == {"N": "1"}
    # WHEN it ends
    store.replace_job(job, replace(job, status="Complete", active=False, version=2))
    # THEN job and token expire together, and the job no longer counts as active
    expires = {"N": str(NOW + DEFAULT_RETENTION_DAYS * 86_400)}
    assert item(dynamodb, jobs_table, "JOB#job-0001", "JOB")[TTL_ATTRIBUTE] == expires
    assert item(dynamodb, jobs_table, f"TOKEN#{APPID}#tok", "TOKEN")[TTL_ATTRIBUTE] == expires
    assert item(dynamodb, jobs_table, f"APPID#{APPID}", "ACTIVE")["active"] == {"N": "0"}


def test_the_template_enables_ttl_on_the_store_attribute() -> None:
    ttl = template()["Resources"]["JobsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_a_claim_outliving_its_job_is_released_by_the_next_create(
    dynamodb: DynamoDBClient, jobs_table: str
) -> None:
    # GIVEN a token whose job is gone (TTL removed the job item first)
    store = DynamoDBJobStore(jobs_table, dynamodb, clock=lambda: NOW)
    store.insert_job(record(1, token="tok"), max_active=10)
    dynamodb.delete_item(TableName=jobs_table, Key={"pk": {"S": "JOB#job-0001"}, "sk": {"S": "JOB"}})
    # WHEN a job is created with the token THEN it is created, holding the token
    store.insert_job(record(2, token="tok"), max_active=10)
    assert item(dynamodb, jobs_table, f"TOKEN#{APPID}#tok", "TOKEN")["job_id"] == {"S": "job-0002"}


def test_jobs_past_their_retention_are_gone_before_dynamodb_removes_them(
    dynamodb: DynamoDBClient, jobs_table: str
) -> None:
    now = [float(NOW)]
    store = DynamoDBJobStore(jobs_table, dynamodb, clock=lambda: now[0])
    job = record(1, token="tok")
    store.insert_job(job, max_active=10)
    store.replace_job(job, replace(job, status="Complete", active=False, version=2))
    now[0] += DEFAULT_RETENTION_DAYS * 86_400 + 1
    assert store.get_job(APPID, job.job_id) is None
    assert store.list_jobs(APPID, None, 10, None).records == []
    store.insert_job(record(2, token="tok"), max_active=10)


def test_deleting_a_job_never_releases_another_jobs_claim(dynamodb: DynamoDBClient, jobs_table: str) -> None:
    store = DynamoDBJobStore(jobs_table, dynamodb, clock=lambda: NOW)
    job = record(1, token="tok", status="Complete")
    store.insert_job(job, max_active=10)
    # the token now belongs to another job (its first claim expired and was taken again)
    dynamodb.put_item(
        TableName=jobs_table,
        Item={"pk": {"S": f"TOKEN#{APPID}#tok"}, "sk": {"S": "TOKEN"}, "job_id": {"S": "job-0002"}},
    )
    store.delete_job(job)
    assert item(dynamodb, jobs_table, f"TOKEN#{APPID}#tok", "TOKEN")["job_id"] == {"S": "job-0002"}


def sort_keys(client: DynamoDBClient, table: str, pk: str) -> list[str]:
    query = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ProjectionExpression="sk",
    )
    assert "LastEvaluatedKey" not in query
    return [item["sk"]["S"] for item in query["Items"]]


def test_a_jobs_ledger_is_spread_evenly_over_its_shards(dynamodb: DynamoDBClient, jobs_table: str) -> None:
    # GIVEN a job prepared into 64 chunks, every chunk run as one segment, 16 chunks running
    ledger = DynamoDBLedger(jobs_table, dynamodb)
    ledger.put_chunks("job-0001", chunks(64))
    ledger.advance_prepare("job-0001", None, PrepareCheckpoint(64, 640, "", True, 1.0))
    for index in range(64):
        ledger.record_segment("job-0001", segment(index, 0, 10))
    for index in range(16, 32):
        ledger.hold_chunk("job-0001", index, "w", now=0.0, until=10.0)
    # THEN every shard's partition key holds the same share: a chunk, its segment and its hold
    # under the key of its index modulo the shard count
    per_shard = 64 // LEDGER_SHARDS
    for shard in range(LEDGER_SHARDS):
        keys = sort_keys(dynamodb, jobs_table, f"LEDGER#job-0001#{shard}")
        indexes = [int(key.split("#")[1]) for key in keys]
        assert len(keys) == per_shard * 2 + 16 // LEDGER_SHARDS, keys
        assert {index % LEDGER_SHARDS for index in indexes} == {shard}
    # AND the job-wide partition holds only the job-wide items
    assert sort_keys(dynamodb, jobs_table, "LEDGER#job-0001") == ["PREPARE"]


def test_a_look_that_may_be_stale_is_an_eventually_consistent_read(
    dynamodb: DynamoDBClient, jobs_table: str
) -> None:
    store = DynamoDBJobStore(jobs_table, dynamodb, clock=lambda: NOW)
    job = record(1)
    store.insert_job(job, max_active=10)
    reads = inject(dynamodb, "GetItem", count_only())
    assert store.get_job(APPID, job.job_id, consistent=False) == job
    assert store.get_job(APPID, job.job_id) == job
    bodies = [r.body for r in reads.seen]
    assert [json.loads(b)["ConsistentRead"] for b in bodies if isinstance(b, bytes)] == [False, True]
