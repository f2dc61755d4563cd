"""Task outcomes as a segment stores them, and as report rows (pure)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from batchops.manifest.tasks import ManifestTask
from batchops.ops.outcome import TaskOutcome
from batchops.report.rows import (
    TASK_STATUS_FAILED,
    TASK_STATUS_SUCCEEDED,
    ReportRow,
    encode_key,
    quote_field,
    row_tail,
)

if TYPE_CHECKING:
    from batchops.report.writer import ReportWriter

# A segment is one DynamoDB item (400 KB at most, with its keys and counters): messages are
# shortened until the encoded outcomes fit this budget, whatever their language.
MAX_ENCODED_BYTES = 300_000
_MESSAGE_CHARS = (200, 60, 16, 0)


def encode_outcomes(outcomes: Sequence[TaskOutcome]) -> bytes:
    # When the outcomes are a few objects repeated (a DeleteObjects request's successes are
    # one), each one's row is encoded once and the rows joined: the same JSON.
    distinct = {id(o): o for o in outcomes}
    for chars in _MESSAGE_CHARS:
        if len(distinct) * 4 <= len(outcomes):
            rows = {
                key: json.dumps(
                    [int(o.succeeded), o.http_status, o.error_code[:64], o.message[:chars]],
                    separators=(",", ":"),
                    ensure_ascii=False,
                )
                for key, o in distinct.items()
            }
            text = "[" + ",".join([rows[id(o)] for o in outcomes]) + "]"
        else:
            listed = [
                [int(o.succeeded), o.http_status, o.error_code[:64], o.message[:chars]] for o in outcomes
            ]
            text = json.dumps(listed, separators=(",", ":"), ensure_ascii=False)
        encoded = zlib.compress(text.encode(), 6)
        if len(encoded) <= MAX_ENCODED_BYTES:
            return encoded
    raise ValueError(f"the outcomes of {len(outcomes)} tasks do not fit in {MAX_ENCODED_BYTES} bytes")


def decode_outcomes(data: bytes) -> list[TaskOutcome]:
    return [
        TaskOutcome(bool(ok), int(status), str(code), str(message))
        for ok, status, code, message in json.loads(zlib.decompress(data))
    ]


def report_rows(
    tasks: Sequence[ManifestTask], start: int, outcomes: Sequence[TaskOutcome]
) -> Iterator[ReportRow]:
    """Rows for ``outcomes`` of tasks ``start``, ``start + 1``, ... of a chunk."""
    for task, outcome in zip(tasks[start : start + len(outcomes)], outcomes, strict=True):
        yield ReportRow(
            bucket=task.bucket,
            key=task.key,
            version_id=task.version_id,
            succeeded=outcome.succeeded,
            http_status=outcome.http_status,
            error_code=outcome.error_code,
            message=outcome.message,
        )


def write_report_rows(
    writer: ReportWriter, tasks: Sequence[ManifestTask], start: int, results: bytes
) -> None:
    """Add the rows of a segment (its ``results``, of tasks ``start``, ``start + 1``, ... of a
    chunk) to a report: the lines ``report_rows`` and ``writer.add`` would write, made a segment
    at a time (each distinct outcome's end of line once, a status's lines in one block)."""
    outcomes = json.loads(zlib.decompress(results))
    lines: dict[bool, list[str]] = {True: [], False: []}
    tails: dict[tuple[bool, int, str, str], str] = {}
    buckets: dict[str, str] = {}
    failed_only = writer.failed_only
    for task, (ok, status, code, message) in zip(tasks[start : start + len(outcomes)], outcomes, strict=True):
        succeeded = bool(ok)
        if succeeded and failed_only:
            continue
        outcome = (succeeded, int(status), str(code), str(message))
        tail = tails.get(outcome)
        if tail is None:
            tail = tails[outcome] = row_tail(*outcome)
        bucket = buckets.get(task.bucket)
        if bucket is None:
            bucket = buckets[task.bucket] = quote_field(task.bucket)
        version = "" if task.version_id is None else quote_field(task.version_id)
        lines[succeeded].append(f"{bucket},{encode_key(task.key)},{version},{tail}")
    writer.add_lines(TASK_STATUS_SUCCEEDED, lines[True])
    writer.add_lines(TASK_STATUS_FAILED, lines[False])
