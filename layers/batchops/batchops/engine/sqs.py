"""The deployed dispatcher: work travels as SQS messages, run_job Lambdas do it.

Status changes set work off (``on_job_change``, the JobService hook in both functions):

=============================  ==========================================================
the job became                 message
=============================  ==========================================================
New                            ``prepare``; a prepare that reaches its deadline stores a
                               checkpoint and sends another ``prepare`` (ids only)
Ready                          ``activate`` (Ready -> Active)
Active                         ``fanout`` from chunk 0: sends ``chunk`` messages, 1,000
                               per fanout, and a fanout for the rest
Completing, Failing,           ``finalize`` (delayed for Cancelling, so running chunks see
Cancelling                     the status and stop; it waits again while any still runs);
                               a finalize that reaches its deadline stores a checkpoint
                               and sends another ``finalize`` (ids only)
=============================  ==========================================================

A ``chunk`` message names (chunk, start). Its worker runs the tasks from ``start`` until done or
until the Lambda deadline nears, records them as one segment, and sends the chunk on from
where that segment ends. SQS delivers at least once; the ledger makes a repeated message a
no-op (the segment at that start already stands: its worker just passes the chunk on).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from batchops.engine.finalized import Finalized
from batchops.jobs.model import Job
from batchops.jobs.status import JobStatus, is_terminal
from batchops.store.base import ChunkClaim

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

    # Only the worker needs the engine; the jobs API and the submit function, which only send
    # work, then import none of it (manifests, operations, reports) at cold start.
    from batchops.engine.phases import Engine

log = logging.getLogger(__name__)

Kind = Literal["prepare", "activate", "fanout", "chunk", "finalize"]
FANOUT_CHUNKS = 1000
SEND_BATCH = 10
SEND_ATTEMPTS = 3
FINALIZE_RETRY_SECONDS = 10
PREPARE_ATTEMPTS = 4
_DEPTH = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
_ENDING = frozenset({JobStatus.COMPLETING, JobStatus.FAILING, JobStatus.CANCELLING})


class BadMessageError(ValueError):
    """A queue message batchops cannot read; it goes to the DLQ after its retries."""


@dataclass(frozen=True)
class WorkMessage:
    kind: Kind
    appid: str
    job_id: str
    index: int = 0
    start: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> WorkMessage:
        try:
            data = json.loads(body)
            message = cls(
                kind=data["kind"],
                appid=str(data["appid"]),
                job_id=str(data["job_id"]),
                index=int(data.get("index", 0)),
                start=int(data.get("start", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadMessageError(f"not a batchops work message: {body[:200]!r}") from exc
        if message.kind not in get_args(Kind) or message.index < 0 or message.start < 0:
            raise BadMessageError(f"not a batchops work message: {body[:200]!r}")
        return message


class SqsDispatcher:
    def __init__(self, sqs: SQSClient, queue_url: str, cancel_grace_seconds: int = 5) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._cancel_grace = cancel_grace_seconds

    def send(self, messages: Sequence[WorkMessage], delay_seconds: int = 0) -> None:
        for start in range(0, len(messages), SEND_BATCH):
            entries: list[Any] = [
                {"Id": str(n), "MessageBody": m.to_json(), "DelaySeconds": delay_seconds}
                for n, m in enumerate(messages[start : start + SEND_BATCH])
            ]
            for _ in range(SEND_ATTEMPTS):
                failed = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries).get(
                    "Failed", []
                )
                # An entry SQS failed on its side is sent again; one it refused is a bug to surface.
                entries = [e for e in entries if e["Id"] in {f["Id"] for f in failed}]
                if not entries:
                    break
            if entries:
                raise RuntimeError(f"SQS did not take {len(entries)} work message(s)")

    def queue_depth(self) -> int:
        """Messages waiting, in flight or delayed on the work queue (approximate, as SQS counts)."""
        response = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["All"])
        attributes = {str(name): value for name, value in response.get("Attributes", {}).items()}
        return sum(int(attributes.get(name, "0")) for name in _DEPTH)

    def on_job_change(self, before: Job | None, after: Job) -> None:
        """Turn a change of status (``before`` is None for a new job) into the work it calls for."""
        if before is not None and before.status is after.status:
            return
        message = WorkMessage("prepare", after.appid, after.job_id)
        if after.status is JobStatus.NEW:
            self.send([message])
        elif after.status is JobStatus.READY:
            self.send([replace_kind(message, "activate")])
        elif after.status is JobStatus.ACTIVE:
            self.send([replace_kind(message, "fanout")])
        elif after.status in _ENDING:
            delay = self._cancel_grace if after.status is JobStatus.CANCELLING else 0
            self.send([replace_kind(message, "finalize")], delay_seconds=delay)
        elif is_terminal(after.status) and before is not None and before.status not in _ENDING:
            # Ended without running (cancelled, or failed while preparing): drop what was planned.
            self.send([replace_kind(message, "finalize")])


def replace_kind(message: WorkMessage, kind: Kind, index: int = 0, start: int = 0) -> WorkMessage:
    return WorkMessage(kind, message.appid, message.job_id, index, start)


class SqsWorker:
    """Does the work one message asks for; raising leaves the message for SQS to deliver again."""

    def __init__(
        self, engine: Engine, dispatcher: SqsDispatcher, deadline_margin_seconds: float = 60.0
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.deadline_margin = deadline_margin_seconds

    def handle(
        self, message: WorkMessage, worker: str, remaining_ms: Callable[[], int], receive_count: int = 1
    ) -> None:
        engine = self.engine
        if message.kind == "prepare":
            self._prepare(message, remaining_ms, receive_count)
        elif message.kind == "activate":
            engine.activate(message.appid, message.job_id)
        elif message.kind == "fanout":
            self._fanout(message)
        elif message.kind == "chunk":
            self._chunk(message, worker, remaining_ms)
        else:
            self._finalize(message, worker, remaining_ms)

    def _prepare(self, message: WorkMessage, remaining_ms: Callable[[], int], receive_count: int) -> None:
        engine = self.engine
        deadline = engine.clock() + remaining_ms() / 1000 - self.deadline_margin
        # Before SQS gives up on the message (maxReceiveCount 5), a manifest that keeps not
        # answering fails the job, saying why, instead of leaving it Preparing.
        if engine.prepare(
            message.appid, message.job_id, last_attempt=receive_count >= PREPARE_ATTEMPTS, deadline=deadline
        ):
            # The deadline came first: the checkpoint is in the ledger, the next message goes on.
            self.dispatcher.send([replace_kind(message, "prepare")])

    def _fanout(self, message: WorkMessage) -> None:
        job = self.engine.service.get(message.appid, message.job_id)
        if job.status is not JobStatus.ACTIVE:
            return
        end = min(message.index + FANOUT_CHUNKS, job.chunk_count)
        chunks = [replace_kind(message, "chunk", index) for index in range(message.index, end)]
        if end < job.chunk_count:
            chunks.append(replace_kind(message, "fanout", end))
        self.dispatcher.send(chunks)
        if job.chunk_count == 0:
            self.engine.settle(message.appid, message.job_id)

    def _chunk(self, message: WorkMessage, worker: str, remaining_ms: Callable[[], int]) -> None:
        engine = self.engine
        # A cheap look first: run_chunk looks again, consistently, once it holds the chunk.
        if not engine.is_active(message.appid, message.job_id):
            return  # cancelled, failed or paused: finalize takes it from here
        chunk = engine.ledger.get_chunk(message.job_id, message.index)
        if chunk is None:
            return  # the job ended and its ledger was dropped
        standing = engine.ledger.segment_at(message.job_id, message.index, message.start)
        ran = standing is None
        if standing is None:
            now = engine.clock()
            deadline = now + remaining_ms() / 1000 - self.deadline_margin
            if not engine.ledger.hold_chunk(
                message.job_id, chunk.index, worker, now, now + engine.settings.lease_seconds
            ):
                return  # another worker runs this chunk now; it hands the chunk on when it stops
            claim = ChunkClaim(message.appid, message.job_id, chunk, message.start)
            standing = engine.run_chunk(claim, worker, deadline)
        next_start = standing.end if standing is not None else message.start
        if next_start < chunk.task_count:
            if engine.service.get(message.appid, message.job_id).status is JobStatus.ACTIVE:
                # The deadline came first: hand the rest of the chunk on.
                self.dispatcher.send([replace_kind(message, "chunk", chunk.index, next_start)])
        elif not ran:  # (run_chunk settles the job itself)
            engine.settle(message.appid, message.job_id)

    def _finalize(self, message: WorkMessage, worker: str, remaining_ms: Callable[[], int]) -> None:
        engine = self.engine
        if engine.ledger.busy_chunks(message.job_id, engine.clock()) > 0:
            # Chunks still running: look again a little later.
            self.dispatcher.send([message], delay_seconds=FINALIZE_RETRY_SECONDS)
            return
        deadline = engine.clock() + remaining_ms() / 1000 - self.deadline_margin
        done = engine.finalize(message.appid, message.job_id, worker, deadline)
        if done is Finalized.MORE:
            # The deadline came first: the checkpoint is in the ledger, the next message goes on.
            self.dispatcher.send([replace_kind(message, "finalize")])
        elif done is Finalized.BUSY:
            # Another finalizer at work: look again a little later.
            self.dispatcher.send([message], delay_seconds=FINALIZE_RETRY_SECONDS)
