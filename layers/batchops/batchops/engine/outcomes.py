"""Task outcomes as a segment stores them, and as report rows (pure)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence

from batchops.manifest.tasks import ManifestTask
from batchops.ops.outcome import TaskOutcome
from batchops.report.rows import ReportRow

# Kept short so that a segment of 1,000 tasks stays well inside one DynamoDB item.
STORED_MESSAGE_CHARS = 200


def encode_outcomes(outcomes: Sequence[TaskOutcome]) -> bytes:
    rows = [
        [int(o.succeeded), o.http_status, o.error_code, o.message[:STORED_MESSAGE_CHARS]] for o in outcomes
    ]
    return zlib.compress(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode(), 6)


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
