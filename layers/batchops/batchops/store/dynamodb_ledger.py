"""The chunk ledger in DynamoDB (deployed mode), in the jobs table beside the jobs.

=====================================  ============================  =================================
pk                                     sk                            holds
=====================================  ============================  =================================
``LEDGER#<job_id>#<shard>``            ``CHUNK#<index>``             first_ordinal, task_count, payload
``LEDGER#<job_id>#<shard>``            ``SEG#<index>#<start>``       end, succeeded, failed, results
``LEDGER#<job_id>#<shard>``            ``HOLD#<index>``              worker, until: the chunk is running
``LEDGER#<job_id>``                    ``FINALIZE``                  worker, until: the job's finalizer
``LEDGER#<job_id>``                    ``PREPARE``                   next_index, next_ordinal, position,
                                                                     done, updated: prepare's checkpoint
``LEDGER#<job_id>``                    ``REPORT``                    step, state, updated: finalize's
                                                                     checkpoint (how far the report is)
``PROGRESS#<job_id>#<shard>``          ``PROGRESS``                  succeeded, failed (ADD)
=====================================  ============================  =================================

**Ledger shards.** A chunk, its segments and its hold live under the partition key of shard
``index mod LEDGER_SHARDS``. One partition key takes at most 1,000 WCU/s and 3,000 RCU/s, and a
job's ledger is written hardest exactly where its indexes are neighbours: prepare appends chunks
0, 1, 2, ... and the chunks running at once are consecutive. Sharding by the index modulo the
shard count spreads both evenly, so a job's ledger takes ``LEDGER_SHARDS`` times the rate of one
key (see docs/SCALE.md §3). Everything about one chunk stays in one partition, so the segment
transaction's ConditionCheck and a chunk's segments are in the chunk's own shard. The job-wide
items stay unsharded: the finalize claim is written once per finalize attempt, the prepare
checkpoint once per ``CHUNKS_PER_WRITE`` chunks (a few times a second at most), the report
checkpoint once per finalize step and once per results file started. (A ledger written before
the ``REPORT`` item existed simply has none: its finalize starts from the first segment.)

What needs every chunk reads every shard: ``segments`` queries each shard in sort-key order and
merges them by (index, start), holding a page of chunks and one of segments per shard;
``busy_chunks`` counts the holds of all shards; ``drop_chunks`` deletes what every partition holds.

Indexes and starts are zero-padded so that sort-key order is manifest order. A segment is a put
conditioned on its absence, in one transaction with the ADD to its progress shard, so a task is
counted once however often its chunk runs. Progress is spread over ``PROGRESS_SHARDS`` items (by
chunk index) so that a thousand workers finishing chunks do not all write one item; reading it
is one BatchGetItem.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from batchops.store.base import (
    ChunkRecord,
    FinalizeCheckpoint,
    PrepareCheckpoint,
    Segment,
    StoreUnavailableError,
)
from batchops.store.dynamodb import unavailable_on_error

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

PROGRESS_SHARDS = 16
LEDGER_SHARDS = 16
TRANSACTION_ATTEMPTS = 6
BATCH_WRITE_ATTEMPTS = 10
"""BatchWriteItem calls for one batch whose items DynamoDB keeps leaving unprocessed (throttled),
pausing a random 0..min(2 s, 0.05 s x 2^n) between them: at most about 9 s before giving up."""
_BATCH_WRITE = 25
_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 2.0
_PREPARE = "PREPARE"
_REPORT = "REPORT"
_FINALIZE = "FINALIZE"
_LAST = "~"
"""Sorts after every digit: the upper end of a zero-padded sort-key range."""
Item = dict[str, Any]


class DynamoDBLedger:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        clock: Callable[[], float] = time.time,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table_name
        self._client = client
        self._clock = clock
        self._sleep = sleep

    def put_chunks(self, job_id: str, chunks: Sequence[ChunkRecord]) -> None:
        # Chunks never change once planned, so rewriting one (a prepare that runs again) is harmless.
        for start in range(0, len(chunks), _BATCH_WRITE):
            self._batch_write(
                [
                    {"PutRequest": {"Item": _chunk_item(job_id, chunk)}}
                    for chunk in chunks[start : start + _BATCH_WRITE]
                ]
            )

    def get_chunk(self, job_id: str, index: int) -> ChunkRecord | None:
        item = self._get(_shard(job_id, index), _chunk_sk(index))
        return None if item is None else _chunk(item)

    def prepare_checkpoint(self, job_id: str) -> PrepareCheckpoint | None:
        item = self._get(_ledger(job_id), _PREPARE)
        if item is None:
            return None
        return PrepareCheckpoint(
            next_index=int(item["next_index"]["N"]),
            next_ordinal=int(item["next_ordinal"]["N"]),
            position=item["position"]["S"],
            done=bool(item["done"]["BOOL"]),
            updated=float(item["updated"]["N"]),
        )

    def advance_prepare(
        self, job_id: str, expected: PrepareCheckpoint | None, checkpoint: PrepareCheckpoint
    ) -> bool:
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if expected is not None:
            condition = {
                "ConditionExpression": "next_index = :index AND done = :done",
                "ExpressionAttributeValues": {
                    ":index": {"N": str(expected.next_index)},
                    ":done": {"BOOL": expected.done},
                },
            }
        try:
            with unavailable_on_error():
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        "pk": {"S": _ledger(job_id)},
                        "sk": {"S": _PREPARE},
                        "next_index": {"N": str(checkpoint.next_index)},
                        "next_ordinal": {"N": str(checkpoint.next_ordinal)},
                        "position": {"S": checkpoint.position},
                        "done": {"BOOL": checkpoint.done},
                        "updated": {"N": repr(checkpoint.updated)},
                    },
                    **condition,
                )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

    def hold_chunk(self, job_id: str, index: int, worker: str, now: float, until: float) -> bool:
        return self._claim(_shard(job_id, index), _hold_sk(index), worker, now, until)

    def claim_finalize(self, job_id: str, worker: str, now: float, until: float) -> bool:
        return self._claim(_ledger(job_id), _FINALIZE, worker, now, until)

    def finalize_claimed(self, job_id: str, now: float) -> bool:
        item = self._get(_ledger(job_id), _FINALIZE)
        return item is not None and float(item["until"]["N"]) >= now

    def finalize_checkpoint(self, job_id: str) -> FinalizeCheckpoint | None:
        item = self._get(_ledger(job_id), _REPORT)
        if item is None:
            return None
        return FinalizeCheckpoint(
            step=int(item["step"]["N"]), state=item["state"]["S"], updated=float(item["updated"]["N"])
        )

    def advance_finalize(
        self, job_id: str, expected: FinalizeCheckpoint | None, checkpoint: FinalizeCheckpoint
    ) -> bool:
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                "pk": {"S": _ledger(job_id)},
                "sk": {"S": _REPORT},
                "step": {"N": str(checkpoint.step)},
                "state": {"S": checkpoint.state},
                "updated": {"N": repr(checkpoint.updated)},
            },
        }
        if expected is None:
            # The first one only while a finalizer's claim stands (once per job): a job whose
            # ledger was dropped keeps none.
            return self._first_report_checkpoint(job_id, put)
        try:
            with unavailable_on_error():
                self._client.put_item(
                    **put,
                    ConditionExpression="step = :step",
                    ExpressionAttributeValues={":step": {"N": str(expected.step)}},
                )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

    def _first_report_checkpoint(self, job_id: str, put: dict[str, Any]) -> bool:
        first: Any = {"Put": {**put, "ConditionExpression": "attribute_not_exists(pk)"}}
        claim_stands: Any = {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": {"pk": {"S": _ledger(job_id)}, "sk": {"S": _FINALIZE}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                with unavailable_on_error():
                    self._client.transact_write_items(TransactItems=[first, claim_stands])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return False
                if "TransactionConflict" not in reasons:
                    raise StoreUnavailableError(
                        f"the report checkpoint of job {job_id} was not stored: {reasons}"
                    ) from exc
                # The claim's renewal wrote the FINALIZE item at the same moment: try again.
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not secrecy
                continue
            return True
        raise StoreUnavailableError(f"the report checkpoint of job {job_id} kept conflicting")

    def _claim(self, pk: str, sk: str, worker: str, now: float, until: float) -> bool:
        try:
            with unavailable_on_error():
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        "pk": {"S": pk},
                        "sk": {"S": sk},
                        "worker": {"S": worker},
                        "until": {"N": repr(until)},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR #until < :now OR worker = :worker",
                    ExpressionAttributeNames={"#until": "until"},
                    ExpressionAttributeValues={":now": {"N": repr(now)}, ":worker": {"S": worker}},
                )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

    def renew_lease(self, job_id: str, index: int, worker: str, until: float) -> bool:
        try:
            with unavailable_on_error():
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": _shard(job_id, index)}, "sk": {"S": _hold_sk(index)}},
                    UpdateExpression="SET #until = :until",
                    ConditionExpression="worker = :worker",
                    ExpressionAttributeNames={"#until": "until"},
                    ExpressionAttributeValues={":until": {"N": repr(until)}, ":worker": {"S": worker}},
                )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

    def release_chunk(self, job_id: str, index: int, worker: str) -> None:
        try:
            with unavailable_on_error():
                self._client.delete_item(
                    TableName=self._table,
                    Key={"pk": {"S": _shard(job_id, index)}, "sk": {"S": _hold_sk(index)}},
                    ConditionExpression="worker = :worker",
                    ExpressionAttributeValues={":worker": {"S": worker}},
                )
        except ClientError as exc:
            if not _conditional(exc):
                raise

    def record_segment(self, job_id: str, segment: Segment) -> Segment | None:
        key = {
            "pk": {"S": _shard(job_id, segment.index)},
            "sk": {"S": _segment_sk(segment.index, segment.start)},
        }
        for attempt in range(TRANSACTION_ATTEMPTS):
            reasons = self._record(job_id, key, segment)
            if reasons is None:
                return segment
            if reasons[0] == "ConditionalCheckFailed":
                standing = self._get(key["pk"]["S"], key["sk"]["S"])
                if standing is not None:
                    return _segment(standing)
            elif reasons[1] == "ConditionalCheckFailed":
                return None  # the chunk is gone: the job ended
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not secrecy
        raise StoreUnavailableError(f"recording a segment of job {job_id} kept conflicting")

    def _record(self, job_id: str, key: Item, segment: Segment) -> list[str] | None:
        """Write the segment; None if it committed, else the cancellation code of each action."""
        try:
            with unavailable_on_error():
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": {
                                    **key,
                                    "end": {"N": str(segment.end)},
                                    "succeeded": {"N": str(segment.succeeded)},
                                    "failed": {"N": str(segment.failed)},
                                    "results": {"B": segment.results},
                                },
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "ConditionCheck": {
                                "TableName": self._table,
                                "Key": {
                                    "pk": {"S": _shard(job_id, segment.index)},
                                    "sk": {"S": _chunk_sk(segment.index)},
                                },
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        },
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": _progress_key(job_id, segment.index % PROGRESS_SHARDS),
                                "UpdateExpression": "ADD succeeded :s, failed :f",
                                "ExpressionAttributeValues": {
                                    ":s": {"N": str(segment.succeeded)},
                                    ":f": {"N": str(segment.failed)},
                                },
                            }
                        },
                    ]
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]
            return reasons + ["None"] * (3 - len(reasons))
        return None

    def segment_at(self, job_id: str, index: int, start: int) -> Segment | None:
        item = self._get(_shard(job_id, index), _segment_sk(index, start))
        return None if item is None else _segment(item)

    def progress(self, job_id: str) -> tuple[int, int]:
        keys: list[Any] = [_progress_key(job_id, shard) for shard in range(PROGRESS_SHARDS)]
        succeeded = failed = 0
        with unavailable_on_error():
            pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while pending:
                response = self._client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._table, []):
                    succeeded += int(item.get("succeeded", {}).get("N", "0"))
                    failed += int(item.get("failed", {}).get("N", "0"))
                pending = dict(response.get("UnprocessedKeys") or {})
        return succeeded, failed

    def segments(self, job_id: str, start: tuple[int, int] = (0, 0)) -> Iterator[tuple[Segment, ChunkRecord]]:
        shards = [self._shard_segments(_shard_key(job_id, shard), start) for shard in range(LEDGER_SHARDS)]
        return heapq.merge(*shards, key=lambda pair: (pair[0].index, pair[0].start))

    def _shard_segments(self, pk: str, start: tuple[int, int]) -> Iterator[tuple[Segment, ChunkRecord]]:
        """One shard's segments from ``start`` on with their chunks, in (index, start) order."""
        chunks = self._query_partition(pk, "CHUNK#", from_sk=_chunk_sk(start[0]))
        chunk = next(chunks, None)
        for item in self._query_partition(pk, "SEG#", from_sk=_segment_sk(*start)):
            segment = _segment(item)
            while chunk is not None and _chunk(chunk).index < segment.index:
                chunk = next(chunks, None)
            assert chunk is not None, f"segment {segment.index} in {pk} has no chunk"
            yield segment, _chunk(chunk)

    def busy_chunks(self, job_id: str, now: float) -> int:
        # Holds live only in the shards (not in the job-wide partition).
        return sum(
            1
            for shard in range(LEDGER_SHARDS)
            for item in self._query_partition(_shard_key(job_id, shard), "HOLD#")
            if float(item["until"]["N"]) >= now
        )

    def drop_chunks(self, job_id: str) -> None:
        # Deleting as the query pages go: a billion-task job has millions of ledger items, never
        # all in memory at once. (Deleting behind the query does not disturb its paging.)
        batch: list[Any] = []
        for item in self._query(job_id, "", keys_only=True):
            batch.append({"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}})
            if len(batch) == _BATCH_WRITE:
                self._batch_write(batch)
                batch = []
        if batch:
            self._batch_write(batch)
        self._batch_write(
            [{"DeleteRequest": {"Key": _progress_key(job_id, shard)}} for shard in range(PROGRESS_SHARDS)]
        )

    def _batch_write(self, requests: list[Any]) -> None:
        """One BatchWriteItem of at most 25 requests, sending again what DynamoDB left unprocessed.

        DynamoDB leaves items unprocessed when their partition is throttled; asking again at once
        only adds to the throttling, so each retry waits a random, growing pause (full jitter).
        """
        pending: dict[str, Any] = {self._table: requests}
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            if attempt:
                bound = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
                self._sleep(random.uniform(0, bound))  # noqa: S311 - jitter, not secrecy
            with unavailable_on_error():
                response = self._client.batch_write_item(RequestItems=pending)
            pending = dict(response.get("UnprocessedItems") or {})
            if not pending:
                return
        left = sum(len(each) for each in pending.values())
        raise StoreUnavailableError(
            f"DynamoDB left {left} ledger writes unprocessed after {BATCH_WRITE_ATTEMPTS} attempts"
        )

    def _get(self, pk: str, sk: str) -> Item | None:
        with unavailable_on_error():
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
            )
        return response.get("Item")

    def _query(self, job_id: str, prefix: str, keys_only: bool = False) -> Iterator[Item]:
        """Every item of the job's ledger whose sort key starts with ``prefix``, partition by
        partition (the job-wide one, then each shard): in sort-key order within a partition only."""
        for pk in (_ledger(job_id), *(_shard_key(job_id, shard) for shard in range(LEDGER_SHARDS))):
            yield from self._query_partition(pk, prefix, keys_only)

    def _query_partition(
        self, pk: str, prefix: str, keys_only: bool = False, from_sk: str | None = None
    ) -> Iterator[Item]:
        """Items of one partition whose sort key starts with ``prefix`` (and is at least
        ``from_sk``, a key of that prefix), in sort-key order."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if from_sk is not None:
            query["KeyConditionExpression"] += " AND sk BETWEEN :from AND :last"
            query["ExpressionAttributeValues"][":from"] = {"S": from_sk}
            query["ExpressionAttributeValues"][":last"] = {"S": prefix + _LAST}
        elif prefix:
            query["KeyConditionExpression"] += " AND begins_with(sk, :prefix)"
            query["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        if keys_only:
            query["ProjectionExpression"] = "pk, sk"
        while True:
            with unavailable_on_error():
                page = self._client.query(**query)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _conditional(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _ledger(job_id: str) -> str:
    """The job-wide partition: the finalize claim and the prepare and finalize checkpoints."""
    return f"LEDGER#{job_id}"


def _shard(job_id: str, index: int) -> str:
    """The partition of chunk ``index``: its chunk, segments and hold."""
    return _shard_key(job_id, index % LEDGER_SHARDS)


def _shard_key(job_id: str, shard: int) -> str:
    return f"LEDGER#{job_id}#{shard}"


def _hold_sk(index: int) -> str:
    return f"HOLD#{index:010d}"


def _chunk_sk(index: int) -> str:
    return f"CHUNK#{index:010d}"


def _segment_sk(index: int, start: int) -> str:
    return f"SEG#{index:010d}#{start:010d}"


def _progress_key(job_id: str, shard: int) -> Item:
    return {"pk": {"S": f"PROGRESS#{job_id}#{shard:02d}"}, "sk": {"S": "PROGRESS"}}


def _chunk_item(job_id: str, chunk: ChunkRecord) -> Item:
    return {
        "pk": {"S": _shard(job_id, chunk.index)},
        "sk": {"S": _chunk_sk(chunk.index)},
        "first_ordinal": {"N": str(chunk.first_ordinal)},
        "task_count": {"N": str(chunk.task_count)},
        "payload": {"B": chunk.payload},
    }


def _chunk(item: Mapping[str, Any]) -> ChunkRecord:
    return ChunkRecord(
        index=int(item["sk"]["S"].split("#")[1]),
        first_ordinal=int(item["first_ordinal"]["N"]),
        task_count=int(item["task_count"]["N"]),
        payload=bytes(item["payload"]["B"]),
    )


def _segment(item: Mapping[str, Any]) -> Segment:
    _, index, start = item["sk"]["S"].split("#")
    return Segment(
        index=int(index),
        start=int(start),
        end=int(item["end"]["N"]),
        succeeded=int(item["succeeded"]["N"]),
        failed=int(item["failed"]["N"]),
        results=bytes(item["results"]["B"]),
    )
