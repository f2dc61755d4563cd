"""What only the DynamoDB ledger does with batches: dropping a ledger page by page as it queries,
and sending again, after growing pauses, what BatchWriteItem leaves unprocessed."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from batchops.store.base import ChunkRecord, StoreUnavailableError
from batchops.store.dynamodb_ledger import BATCH_WRITE_ATTEMPTS, DynamoDBLedger
from tests.contract.test_chunk_ledger import chunks, segment
from tests.faults import inject, response

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

JOB = "job-0001"
OTHER = "job-0002"


def items_of(dynamodb: DynamoDBClient, table: str, job_id: str) -> list[str]:
    """Every item of the job in the table, ledger and progress shards alike (a scan, test-only)."""
    found: list[str] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        found.extend(
            f"{item['pk']['S']} {item['sk']['S']}"
            for item in page.get("Items", [])
            if job_id in item["pk"]["S"]
        )
    return found


def test_a_ledger_bigger_than_one_query_page_is_deleted_as_the_pages_come(
    dynamodb: DynamoDBClient, jobs_table: str
) -> None:
    # GIVEN a job whose ledger is about 1.3 MB (80 chunks of 16 KB: more than one 1 MB query
    # page), with segments, and another job's ledger
    ledger = DynamoDBLedger(jobs_table, dynamodb)
    big = [ChunkRecord(n, n * 1000, 1000, os.urandom(16_000)) for n in range(80)]
    ledger.put_chunks(JOB, big)
    for index in range(0, 80, 8):
        ledger.record_segment(JOB, segment(index, 0, 10, failed=1))
    ledger.put_chunks(OTHER, chunks(3))
    ledger.record_segment(OTHER, segment(1, 0, 10))
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    # WHEN the job's ledger is dropped
    ledger.drop_chunks(JOB)
    # THEN deleting began before the last page (of the job's 17 partitions) was asked for: the
    # keys were never all listed
    queries = [n for n, name in enumerate(calls) if name == "Query"]
    assert len(queries) >= 17
    assert "BatchWriteItem" in calls[queries[0] : queries[-1]]
    # AND nothing of the job is left, and the other job is untouched
    assert items_of(dynamodb, jobs_table, JOB) == []
    assert ledger.progress(JOB) == (0, 0)
    assert ledger.get_chunk(OTHER, 2) == chunks(3)[2]
    assert ledger.progress(OTHER) == (10, 0)


def leave_unprocessed(how_many: int, calls: int) -> tuple[list[dict[str, Any]], Any]:
    """An answer to BatchWriteItem for the first ``calls`` calls: the last ``how_many`` requests
    of each call left unprocessed and the rest not written either (DynamoDB would have written
    them; the test only looks at what is sent again). Also returns the request bodies seen."""
    sent: list[dict[str, Any]] = []

    def decide(request: AWSPreparedRequest, count: int) -> AWSResponse | None:
        body = request.body
        items: dict[str, Any] = json.loads(body if isinstance(body, (bytes, str)) else b"{}")["RequestItems"]
        sent.append(items)
        if count > calls:
            return None
        left = {table: requests[-how_many:] for table, requests in items.items()}
        return response(
            200,
            json.dumps({"UnprocessedItems": left}).encode(),
            {"Content-Type": "application/x-amz-json-1.0"},
        )

    return sent, decide


def test_unprocessed_items_are_sent_again_after_growing_jittered_pauses(
    dynamodb: DynamoDBClient, jobs_table: str
) -> None:
    # GIVEN a DynamoDB that leaves 10 of a batch's writes unprocessed three times in a row
    sleeps: list[float] = []
    ledger = DynamoDBLedger(jobs_table, dynamodb, sleep=sleeps.append)
    sent, decide = leave_unprocessed(10, calls=3)
    inject(dynamodb, "BatchWriteItem", decide)
    # WHEN 25 chunks are stored
    ledger.put_chunks(JOB, chunks(25))
    # THEN after the first call only the 10 left over were sent again, each time after a pause
    # drawn from a range that doubles (0.05 s, 0.1 s, 0.2 s)
    assert [len(each[jobs_table]) for each in sent] == [25, 10, 10, 10]
    assert len(sleeps) == 3
    assert all(0 <= pause <= 0.05 * 2**n for n, pause in enumerate(sleeps))
    # AND every chunk is stored (the fourth call wrote the last 10; the first 15 are written
    # here again, as DynamoDB would have written them on the first call)
    ledger.put_chunks(JOB, chunks(15))
    assert [ledger.get_chunk(JOB, n) for n in range(25)] == chunks(25)


@pytest.mark.parametrize("operation", ["put_chunks", "drop_chunks"])
def test_writes_left_unprocessed_for_good_fail_as_an_unavailable_store(
    dynamodb: DynamoDBClient, jobs_table: str, operation: str
) -> None:
    # GIVEN a DynamoDB that never processes a batch (its partition stays throttled)
    sleeps: list[float] = []
    ledger = DynamoDBLedger(jobs_table, dynamodb, sleep=sleeps.append)
    ledger.put_chunks(JOB, chunks(3))
    sent, decide = leave_unprocessed(25, calls=1000)
    inject(dynamodb, "BatchWriteItem", decide)
    # WHEN chunks are stored or the ledger dropped
    # THEN the store answers unavailable after a bounded number of paced attempts, not never
    with pytest.raises(StoreUnavailableError, match="unprocessed"):
        if operation == "put_chunks":
            ledger.put_chunks(JOB, chunks(3))
        else:
            ledger.drop_chunks(JOB)
    assert len(sent) == BATCH_WRITE_ATTEMPTS
    assert len(sleeps) == BATCH_WRITE_ATTEMPTS - 1
    assert sum(sleeps) <= sum(min(2.0, 0.05 * 2**n) for n in range(BATCH_WRITE_ATTEMPTS - 1))
